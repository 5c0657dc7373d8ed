//! A deduplicating work queue with per-key exclusivity, delayed adds and per-key
//! exponential backoff (controller-runtime's rate-limited queue, without global rate
//! limit).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::backoff::Backoff;

struct State<K> {
    /// Keys ready to be handed out, in order.
    ready: VecDeque<K>,
    /// The keys in `ready`.
    queued: HashSet<K>,
    /// Keys handed out and not yet `done`.
    processing: HashSet<K>,
    /// Keys added while processing: queued again at `done`.
    dirty: HashSet<K>,
    /// Pending delayed adds by deadline (the `u64` orders equal deadlines).
    delayed: BTreeMap<(Instant, u64), K>,
    /// The pending delayed add of each key (at most one: the earliest).
    delayed_at: HashMap<K, (Instant, u64)>,
    /// Consecutive failures per key.
    failures: HashMap<K, u32>,
    /// Until when a failed key waits: adds before that are deferred to it.
    backoff_until: HashMap<K, Instant>,
    seq: u64,
    closed: bool,
    depth: Option<Gauge>,
}

/// A queue of keys to process (object keys for controllers).
///
/// * A key is queued at most once (adding a queued key is a no-op).
/// * A key handed out by [`WorkQueue::get`] is not handed out again before
///   [`WorkQueue::done`]; adding it meanwhile queues it again right after `done`.
/// * [`WorkQueue::add_after`] adds a key later; of several pending delayed adds of one
///   key the earliest wins.
/// * [`WorkQueue::requeue_with_backoff`] retries a failed key after an exponentially
///   growing delay (capped); until then, adds of that key are deferred to the retry
///   time, so that a failing key cannot spin on its own status writes.
///   [`WorkQueue::forget`] (after a success) resets it.
/// * [`WorkQueue::close`] stops handing out keys: `get` returns `None`.
///
/// Clones share the queue. Time is `tokio::time`, so tests can pause the clock.
pub struct WorkQueue<K> {
    shared: Arc<Shared<K>>,
}

struct Shared<K> {
    state: Mutex<State<K>>,
    notify: Notify,
    backoff: Backoff,
}

impl<K> Clone for WorkQueue<K> {
    fn clone(&self) -> Self {
        WorkQueue {
            shared: self.shared.clone(),
        }
    }
}

impl<K: fmt::Debug> fmt::Debug for WorkQueue<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.lock();
        f.debug_struct("WorkQueue")
            .field("ready", &st.ready)
            .field("processing", &st.processing.len())
            .field("delayed", &st.delayed.len())
            .field("closed", &st.closed)
            .finish()
    }
}

impl<K> WorkQueue<K> {
    fn lock(&self) -> MutexGuard<'_, State<K>> {
        // Every critical section leaves the state consistent before it could panic.
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<K: Clone + Eq + Hash> WorkQueue<K> {
    /// An empty queue whose failed keys back off with `backoff`.
    pub fn new(backoff: Backoff) -> Self {
        WorkQueue {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    ready: VecDeque::new(),
                    queued: HashSet::new(),
                    processing: HashSet::new(),
                    dirty: HashSet::new(),
                    delayed: BTreeMap::new(),
                    delayed_at: HashMap::new(),
                    failures: HashMap::new(),
                    backoff_until: HashMap::new(),
                    seq: 0,
                    closed: false,
                    depth: None,
                }),
                notify: Notify::new(),
                backoff,
            }),
        }
    }

    /// Report the number of ready keys in `gauge` from now on.
    pub fn set_depth_gauge(&self, gauge: Gauge) {
        let mut st = self.lock();
        gauge.set(st.ready.len() as i64);
        st.depth = Some(gauge);
    }

    /// Queue `key` now (deferred to its backoff deadline if it is backing off).
    pub fn add(&self, key: K) {
        let mut st = self.lock();
        if st.closed {
            return;
        }
        let now = Instant::now();
        self.add_locked(&mut st, key, now);
    }

    /// Queue `key` after `delay` (not before its backoff deadline). The earliest of
    /// several pending delayed adds wins.
    pub fn add_after(&self, key: K, delay: Duration) {
        let mut st = self.lock();
        if st.closed {
            return;
        }
        let now = Instant::now();
        let mut deadline = now + delay;
        if let Some(until) = st.backoff_until.get(&key) {
            deadline = deadline.max(*until);
        }
        if deadline <= now {
            self.enqueue_now(&mut st, key);
        } else {
            self.schedule(&mut st, key, deadline, false);
        }
    }

    /// Record a failure of `key` and queue it again after its backoff delay, which
    /// doubles with each consecutive failure up to the cap (jittered if the queue's
    /// [`Backoff`] is). Returns the delay.
    pub fn requeue_with_backoff(&self, key: K) -> Duration {
        let mut st = self.lock();
        let failures = {
            let n = st.failures.entry(key.clone()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        };
        let delay = self.shared.backoff.delay(failures);
        if st.closed {
            return delay;
        }
        let until = Instant::now() + delay;
        st.backoff_until.insert(key.clone(), until);
        if st.queued.remove(&key) {
            st.ready.retain(|k| k != &key);
            Self::update_depth(&st);
        }
        self.schedule(&mut st, key, until, true);
        delay
    }

    /// Forget the failures of `key` (call after a success): its next failure starts
    /// the backoff from the initial delay again, and adds are no longer deferred.
    pub fn forget(&self, key: &K) {
        let mut st = self.lock();
        st.failures.remove(key);
        st.backoff_until.remove(key);
    }

    /// Consecutive failures recorded for `key`.
    pub fn failures(&self, key: &K) -> u32 {
        self.lock().failures.get(key).copied().unwrap_or(0)
    }

    /// Wait for the next key to process; `None` once the queue is closed. The key
    /// must be given back with [`WorkQueue::done`].
    pub async fn get(&self) -> Option<K> {
        loop {
            let notified = self.shared.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let next_deadline = {
                let mut st = self.lock();
                if st.closed {
                    return None;
                }
                self.promote_due(&mut st, Instant::now());
                if let Some(key) = st.ready.pop_front() {
                    st.queued.remove(&key);
                    st.processing.insert(key.clone());
                    Self::update_depth(&st);
                    return Some(key);
                }
                st.delayed.keys().next().map(|(at, _)| *at)
            };
            match next_deadline {
                Some(at) => {
                    tokio::select! {
                        _ = &mut notified => {}
                        _ = tokio::time::sleep_until(at) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Give back a key obtained from [`WorkQueue::get`]; if it was added meanwhile it
    /// is queued again.
    pub fn done(&self, key: &K) {
        let mut st = self.lock();
        st.processing.remove(key);
        if st.dirty.remove(key) && !st.closed {
            let now = Instant::now();
            self.add_locked(&mut st, key.clone(), now);
        }
    }

    /// Stop handing out keys: pending and future [`WorkQueue::get`] calls return `None`,
    /// adds are ignored. Keys being processed can still be given back.
    pub fn close(&self) {
        self.lock().closed = true;
        self.shared.notify.notify_waiters();
    }

    /// Whether [`WorkQueue::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Number of keys ready to be handed out.
    pub fn len(&self) -> usize {
        self.lock().ready.len()
    }

    /// Whether no key is ready.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of pending delayed adds.
    pub fn delayed_len(&self) -> usize {
        self.lock().delayed.len()
    }

    /// Number of keys handed out and not yet given back.
    pub fn in_flight(&self) -> usize {
        self.lock().processing.len()
    }

    fn add_locked(&self, st: &mut State<K>, key: K, now: Instant) {
        match st.backoff_until.get(&key) {
            Some(until) if *until > now => {
                let until = *until;
                self.schedule(st, key, until, false);
            }
            _ => self.enqueue_now(st, key),
        }
    }

    fn enqueue_now(&self, st: &mut State<K>, key: K) {
        if st.processing.contains(&key) {
            st.dirty.insert(key);
        } else if !st.queued.contains(&key) {
            st.queued.insert(key.clone());
            st.ready.push_back(key);
            Self::update_depth(st);
            self.shared.notify.notify_waiters();
        }
    }

    /// Schedule a delayed add; keeps an earlier pending one unless `replace`.
    fn schedule(&self, st: &mut State<K>, key: K, at: Instant, replace: bool) {
        if let Some(existing) = st.delayed_at.get(&key).copied() {
            if !replace && existing.0 <= at {
                return;
            }
            st.delayed.remove(&existing);
        }
        st.seq += 1;
        let slot = (at, st.seq);
        st.delayed.insert(slot, key.clone());
        st.delayed_at.insert(key, slot);
        // Waiters may have to wake earlier now.
        self.shared.notify.notify_waiters();
    }

    fn promote_due(&self, st: &mut State<K>, now: Instant) {
        while let Some((&slot, _)) = st.delayed.first_key_value() {
            if slot.0 > now {
                break;
            }
            let key = st.delayed.remove(&slot).expect("first key exists");
            st.delayed_at.remove(&key);
            self.enqueue_now(st, key);
        }
    }

    fn update_depth(st: &State<K>) {
        if let Some(g) = &st.depth {
            g.set(st.ready.len() as i64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Exact delays, so that tests can check instants.
    fn queue() -> WorkQueue<&'static str> {
        WorkQueue::new(
            Backoff::new(Duration::from_secs(1), Duration::from_secs(8)).without_jitter(),
        )
    }

    /// The next key if one is ready without waiting.
    async fn try_get(q: &WorkQueue<&'static str>) -> Option<&'static str> {
        tokio::time::timeout(Duration::ZERO, q.get())
            .await
            .ok()
            .flatten()
    }

    #[tokio::test(start_paused = true)]
    async fn deduplicates_and_keeps_order() {
        let q = queue();
        q.add("a");
        q.add("b");
        q.add("a");
        q.add("c");
        assert_eq!(q.len(), 3);
        assert_eq!(q.get().await, Some("a"));
        assert_eq!(q.get().await, Some("b"));
        assert_eq!(q.get().await, Some("c"));
        assert_eq!(try_get(&q).await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn key_in_flight_is_not_handed_out_twice_and_is_redone() {
        let q = queue();
        q.add("a");
        let first = q.get().await.unwrap();
        q.add("a");
        q.add("a");
        // Another worker gets nothing while "a" is in flight.
        assert_eq!(try_get(&q).await, None);
        assert_eq!(q.in_flight(), 1);
        q.done(&first);
        // ...and "a" exactly once right after.
        assert_eq!(try_get(&q).await, Some("a"));
        q.done(&"a");
        assert_eq!(try_get(&q).await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn delayed_add_fires_after_delay_and_earliest_wins() {
        let q = queue();
        q.add_after("a", Duration::from_secs(10));
        q.add_after("a", Duration::from_secs(30));
        q.add_after("a", Duration::from_secs(5));
        assert_eq!(q.delayed_len(), 1);
        let start = Instant::now();
        assert_eq!(q.get().await, Some("a"));
        assert_eq!(start.elapsed(), Duration::from_secs(5));
        q.done(&"a");
        assert_eq!(q.delayed_len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_worker_wakes_for_a_new_earlier_deadline() {
        let q = queue();
        q.add_after("late", Duration::from_secs(100));
        let waiter = tokio::spawn({
            let q = q.clone();
            async move {
                let start = Instant::now();
                (q.get().await, start.elapsed())
            }
        });
        tokio::task::yield_now().await;
        q.add_after("early", Duration::from_secs(1));
        let (key, waited) = waiter.await.unwrap();
        assert_eq!(key, Some("early"));
        assert_eq!(waited, Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_grows_caps_and_resets() {
        let q = queue();
        let mut delays = Vec::new();
        q.add("a");
        for _ in 0..6 {
            let key = q.get().await.unwrap();
            let start = Instant::now();
            let delay = q.requeue_with_backoff(key);
            q.done(&key);
            delays.push(delay.as_secs());
            // Retried exactly after the delay.
            assert_eq!(q.get().await, Some("a"));
            assert_eq!(start.elapsed(), delay);
            q.done(&"a");
            q.add("a");
        }
        assert_eq!(delays, vec![1, 2, 4, 8, 8, 8]);
        assert_eq!(q.failures(&"a"), 6);

        // Success resets the counter: the next failure waits the initial delay again.
        let key = q.get().await.unwrap();
        q.forget(&key);
        assert_eq!(q.failures(&"a"), 0);
        let delay = q.requeue_with_backoff(key);
        q.done(&key);
        assert_eq!(delay, Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn jittered_backoff_retries_within_bounds_at_the_returned_delay() {
        let q = WorkQueue::new(Backoff::new(Duration::from_secs(1), Duration::from_secs(8)));
        q.add("a");
        let mut ceilings = Vec::new();
        for _ in 0..6 {
            let key = q.get().await.unwrap();
            let start = Instant::now();
            let delay = q.requeue_with_backoff(key);
            q.done(&key);
            assert_eq!(q.get().await, Some("a"));
            // Retried after the returned delay (the timer rounds up to the millisecond).
            let waited = start.elapsed();
            assert!(
                waited >= delay && waited <= delay + Duration::from_millis(1),
                "{waited:?} vs {delay:?}"
            );
            q.done(&"a");
            q.add("a");
            ceilings.push(delay);
        }
        let bounds = [1, 2, 4, 8, 8, 8].map(Duration::from_secs);
        for (delay, ceiling) in ceilings.iter().zip(bounds) {
            assert!(
                *delay <= ceiling && *delay >= ceiling / 2,
                "{delay:?} vs {ceiling:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn adds_during_backoff_are_deferred_to_the_retry() {
        let q = queue();
        q.add("a");
        let key = q.get().await.unwrap();
        q.requeue_with_backoff(key); // 1 s
        q.add("a"); // while in flight: dirty
        q.done(&key);
        let key = q.get().await.unwrap();
        q.requeue_with_backoff(key); // 2 s
        q.done(&key);
        let start = Instant::now();
        q.add("a");
        q.add_after("a", Duration::from_millis(10));
        assert_eq!(try_get(&q).await, None);
        assert_eq!(q.get().await, Some("a"));
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        q.done(&"a");
        // Nothing else pending: the deferred adds were coalesced into the retry.
        assert_eq!(q.delayed_len(), 0);
        assert_eq!(try_get(&q).await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn close_releases_waiters_and_ignores_adds() {
        let q = queue();
        let waiter = tokio::spawn({
            let q = q.clone();
            async move { q.get().await }
        });
        tokio::task::yield_now().await;
        q.close();
        assert_eq!(waiter.await.unwrap(), None);
        q.add("a");
        assert!(q.is_closed());
        assert_eq!(q.len(), 0);
        assert_eq!(q.get().await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn depth_gauge_follows_ready_keys() {
        let q = queue();
        let gauge = Gauge::default();
        q.set_depth_gauge(gauge.clone());
        q.add("a");
        q.add("b");
        assert_eq!(gauge.get(), 2);
        let key = q.get().await.unwrap();
        assert_eq!(gauge.get(), 1);
        q.done(&key);
        q.add_after("c", Duration::from_secs(1));
        assert_eq!(gauge.get(), 1);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let _ = q.get().await;
        assert_eq!(gauge.get(), 1);
    }
}
