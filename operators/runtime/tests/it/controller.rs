//! Controller timing logic against the in-memory fake API, with a paused clock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{FakeApi, role};
use krake_crds::core::{Role, RoleBinding};
use krake_runtime::prometheus_client;
use krake_runtime::{
    Action, Backoff, CancellationToken, Change, Controller, ControllerConfig, Metrics, ObjectRef,
    ReconcileError, Reflector, ReflectorConfig, default_error_policy,
};
use tokio::sync::Notify;
use tokio::time::Instant;

#[derive(Debug)]
struct TestError(&'static str);

impl std::fmt::Display for TestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl ReconcileError for TestError {
    fn kind(&self) -> String {
        self.0.to_string()
    }
}

fn reflector<R: krake_crds::Resource>(api: &FakeApi<R>) -> Reflector<R> {
    Reflector::new(
        api.clone(),
        ReflectorConfig {
            backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(30)).without_jitter(),
            relist_interval: None,
            healthy_watch: Duration::from_secs(10),
        },
    )
}

/// Exact backoff delays, so that tests can check instants.
fn config(concurrency: usize) -> ControllerConfig {
    ControllerConfig {
        concurrency,
        resync_interval: None,
        backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(4)).without_jitter(),
        shutdown_grace: Duration::from_secs(30),
    }
}

/// What reconciles saw: per name, the instants of each call (relative to `start`).
#[derive(Default)]
struct Log {
    calls: Mutex<HashMap<String, Vec<Duration>>>,
    in_flight: Mutex<HashMap<String, usize>>,
    max_per_key: AtomicUsize,
    running: AtomicUsize,
    max_running: AtomicUsize,
}

impl Log {
    fn enter(&self, name: &str, start: Instant) {
        self.calls
            .lock()
            .unwrap()
            .entry(name.to_string())
            .or_default()
            .push(start.elapsed());
        let mut in_flight = self.in_flight.lock().unwrap();
        let n = in_flight.entry(name.to_string()).or_default();
        *n += 1;
        self.max_per_key.fetch_max(*n, Ordering::SeqCst);
        let running = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(running, Ordering::SeqCst);
    }

    fn leave(&self, name: &str) {
        *self.in_flight.lock().unwrap().get_mut(name).unwrap() -= 1;
        self.running.fetch_sub(1, Ordering::SeqCst);
    }

    fn count(&self, name: &str) -> usize {
        self.calls.lock().unwrap().get(name).map_or(0, Vec::len)
    }

    fn times(&self, name: &str) -> Vec<u64> {
        self.calls
            .lock()
            .unwrap()
            .get(name)
            .map(|v| v.iter().map(|d| d.as_millis() as u64).collect())
            .unwrap_or_default()
    }
}

#[tokio::test(start_paused = true)]
async fn events_for_a_key_in_flight_are_coalesced_and_never_concurrent() {
    let api = FakeApi::<Role>::new();
    for name in ["a", "b", "c"] {
        api.put(role(name, "0"));
    }
    let log = Arc::new(Log::default());
    let started = Arc::new(Notify::new());
    let start = Instant::now();
    let shutdown = CancellationToken::new();
    let controller = Controller::new("dedup", reflector(&api), config(4));
    let task = tokio::spawn({
        let log = log.clone();
        let started = started.clone();
        let shutdown = shutdown.clone();
        controller
            .graceful_shutdown_on(shutdown.clone().cancelled_owned())
            .run(
                move |obj: Arc<Role>, _ctx: Arc<()>| {
                    let log = log.clone();
                    let started = started.clone();
                    async move {
                        log.enter(&obj.metadata.name, start);
                        if obj.metadata.name == "a" {
                            started.notify_one();
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        log.leave(&obj.metadata.name);
                        Ok::<_, TestError>(Action::await_change())
                    }
                },
                default_error_policy,
                Arc::new(()),
            )
    });

    started.notified().await;
    // Five changes of "a" while its first reconcile runs.
    for i in 1..=5 {
        api.put(role("a", &i.to_string()));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(log.count("a"), 2, "one reconcile plus one for all changes");
    assert_eq!(log.count("b"), 1);
    assert_eq!(log.count("c"), 1);
    assert_eq!(log.max_per_key.load(Ordering::SeqCst), 1);
    // The second reconcile of "a" starts right after the first ended.
    assert_eq!(log.times("a"), vec![0, 1000]);
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn concurrency_is_bounded_by_the_worker_count() {
    let api = FakeApi::<Role>::new();
    for i in 0..10 {
        api.put(role(&format!("r{i}"), "0"));
    }
    let log = Arc::new(Log::default());
    let start = Instant::now();
    let shutdown = CancellationToken::new();
    let controller = Controller::new("bounded", reflector(&api), config(3));
    let task = tokio::spawn({
        let log = log.clone();
        controller
            .graceful_shutdown_on(shutdown.clone().cancelled_owned())
            .run(
                move |obj: Arc<Role>, _ctx: Arc<()>| {
                    let log = log.clone();
                    async move {
                        log.enter(&obj.metadata.name, start);
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        log.leave(&obj.metadata.name);
                        Ok::<_, TestError>(Action::await_change())
                    }
                },
                default_error_policy,
                Arc::new(()),
            )
    });
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(log.max_running.load(Ordering::SeqCst), 3);
    for i in 0..10 {
        assert_eq!(log.count(&format!("r{i}")), 1);
    }
    // 10 reconciles of 1 s on 3 workers: 4 rounds.
    let last = (0..10)
        .flat_map(|i| log.times(&format!("r{i}")))
        .max()
        .unwrap();
    assert_eq!(last, 3000);
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn failures_back_off_exponentially_up_to_the_cap_and_reset_on_success() {
    let api = FakeApi::<Role>::new();
    api.put(role("a", "0"));
    let log = Arc::new(Log::default());
    let failures_left = Arc::new(AtomicU32::new(5));
    let start = Instant::now();
    let shutdown = CancellationToken::new();
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Metrics::new(&mut registry);
    let controller = Controller::new("backoff", reflector(&api), config(2)).with_metrics(&metrics);
    let task = tokio::spawn({
        let log = log.clone();
        let failures_left = failures_left.clone();
        controller
            .graceful_shutdown_on(shutdown.clone().cancelled_owned())
            .run(
                move |obj: Arc<Role>, _ctx: Arc<()>| {
                    let log = log.clone();
                    let failures_left = failures_left.clone();
                    async move {
                        log.enter(&obj.metadata.name, start);
                        log.leave(&obj.metadata.name);
                        if failures_left
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                            .is_ok()
                        {
                            Err(TestError("boom"))
                        } else {
                            Ok(Action::await_change())
                        }
                    }
                },
                default_error_policy,
                Arc::new(()),
            )
    });

    tokio::time::sleep(Duration::from_secs(30)).await;
    // Fails at 0, retried after 1, 2, 4, 4 (cap) s; the sixth attempt succeeds.
    assert_eq!(log.times("a"), vec![0, 1000, 3000, 7000, 11000, 15000]);

    // Another failure after the success starts from the initial delay again.
    failures_left.store(1, Ordering::SeqCst);
    api.put(role("a", "1"));
    tokio::time::sleep(Duration::from_secs(10)).await;
    let times = log.times("a");
    assert_eq!(times.len(), 8);
    assert_eq!(times[7] - times[6], 1000);

    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(
        text.contains(
            r#"krake_controller_reconcile_errors_total{controller="backoff",kind="boom"} 6"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"krake_controller_reconciles_total{controller="backoff",result="success"} 2"#
        ),
        "{text}"
    );
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn changes_during_backoff_wait_for_the_retry() {
    let api = FakeApi::<Role>::new();
    api.put(role("a", "0"));
    let log = Arc::new(Log::default());
    let start = Instant::now();
    let shutdown = CancellationToken::new();
    let mut cfg = config(1);
    cfg.backoff = Backoff::new(Duration::from_secs(10), Duration::from_secs(60)).without_jitter();
    let controller = Controller::new("deferred", reflector(&api), cfg);
    let task = tokio::spawn({
        let log = log.clone();
        controller
            .graceful_shutdown_on(shutdown.clone().cancelled_owned())
            .run(
                move |obj: Arc<Role>, _ctx: Arc<()>| {
                    let log = log.clone();
                    async move {
                        log.enter(&obj.metadata.name, start);
                        log.leave(&obj.metadata.name);
                        Err::<Action, _>(TestError("always"))
                    }
                },
                default_error_policy,
                Arc::new(()),
            )
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    // A change (e.g. the controller's own status write) does not cut the 10 s wait.
    api.put(role("a", "1"));
    tokio::time::sleep(Duration::from_secs(9)).await;
    assert_eq!(log.times("a"), vec![0, 10000]);
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn requeue_after_reconciles_again() {
    let api = FakeApi::<Role>::new();
    api.put(role("a", "0"));
    let log = Arc::new(Log::default());
    let start = Instant::now();
    let shutdown = CancellationToken::new();
    let controller = Controller::new("requeue", reflector(&api), config(1));
    let task = tokio::spawn({
        let log = log.clone();
        controller
            .graceful_shutdown_on(shutdown.clone().cancelled_owned())
            .run(
                move |obj: Arc<Role>, _ctx: Arc<()>| {
                    let log = log.clone();
                    async move {
                        log.enter(&obj.metadata.name, start);
                        log.leave(&obj.metadata.name);
                        Ok::<_, TestError>(Action::requeue(Duration::from_secs(10)))
                    }
                },
                default_error_policy,
                Arc::new(()),
            )
    });
    tokio::time::sleep(Duration::from_secs(25)).await;
    assert_eq!(log.times("a"), vec![0, 10000, 20000]);
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn resync_applies_state_no_event_announced() {
    let api = FakeApi::<Role>::new();
    api.put(role("a", "0"));
    api.put(role("b", "0"));
    // The desired state lives outside the watched objects: only a resync notices that
    // it changed.
    let desired = Arc::new(AtomicU32::new(1));
    let applied = Arc::new(Mutex::new(HashMap::<String, u32>::new()));
    let shutdown = CancellationToken::new();
    let mut cfg = config(2);
    cfg.resync_interval = Some(Duration::from_secs(60));
    let controller = Controller::new("resync", reflector(&api), cfg);
    let task = tokio::spawn({
        let applied = applied.clone();
        controller
            .graceful_shutdown_on(shutdown.clone().cancelled_owned())
            .run(
                move |obj: Arc<Role>, desired: Arc<AtomicU32>| {
                    let applied = applied.clone();
                    async move {
                        applied
                            .lock()
                            .unwrap()
                            .insert(obj.metadata.name.clone(), desired.load(Ordering::SeqCst));
                        Ok::<_, TestError>(Action::await_change())
                    }
                },
                default_error_policy,
                desired.clone(),
            )
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(applied.lock().unwrap()["a"], 1);
    desired.store(2, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(50)).await;
    assert_eq!(applied.lock().unwrap()["a"], 1, "no event, no resync yet");
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(applied.lock().unwrap()["a"], 2);
    assert_eq!(applied.lock().unwrap()["b"], 2);
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn shutdown_lets_running_reconciles_finish_and_starts_no_new_ones() {
    let api = FakeApi::<Role>::new();
    api.put(role("a", "0"));
    api.put(role("b", "0"));
    let finished = Arc::new(Mutex::new(Vec::<String>::new()));
    let started = Arc::new(Notify::new());
    let shutdown = CancellationToken::new();
    let controller = Controller::new("shutdown", reflector(&api), config(1));
    let start = Instant::now();
    let task = tokio::spawn({
        let finished = finished.clone();
        let started = started.clone();
        controller
            .graceful_shutdown_on(shutdown.clone().cancelled_owned())
            .run(
                move |obj: Arc<Role>, _ctx: Arc<()>| {
                    let finished = finished.clone();
                    let started = started.clone();
                    async move {
                        started.notify_one();
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        finished.lock().unwrap().push(obj.metadata.name.clone());
                        Ok::<_, TestError>(Action::await_change())
                    }
                },
                default_error_policy,
                Arc::new(()),
            )
    });
    started.notified().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    shutdown.cancel();
    task.await.unwrap();
    // The run returned once the running reconcile (5 s) ended; the queued key was not
    // started.
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    assert_eq!(finished.lock().unwrap().as_slice(), ["a".to_string()]);
}

#[tokio::test(start_paused = true)]
async fn shutdown_grace_cancels_stuck_reconciles() {
    let api = FakeApi::<Role>::new();
    api.put(role("a", "0"));
    let finished = Arc::new(AtomicBool::new(false));
    let started = Arc::new(Notify::new());
    let shutdown = CancellationToken::new();
    let mut cfg = config(1);
    cfg.shutdown_grace = Duration::from_secs(10);
    let controller = Controller::new("stuck", reflector(&api), cfg);
    let task = tokio::spawn({
        let finished = finished.clone();
        let started = started.clone();
        controller
            .graceful_shutdown_on(shutdown.clone().cancelled_owned())
            .run(
                move |_obj: Arc<Role>, _ctx: Arc<()>| {
                    let finished = finished.clone();
                    let started = started.clone();
                    async move {
                        started.notify_one();
                        tokio::time::sleep(Duration::from_secs(1000)).await;
                        finished.store(true, Ordering::SeqCst);
                        Ok::<_, TestError>(Action::await_change())
                    }
                },
                default_error_policy,
                Arc::new(()),
            )
    });
    started.notified().await;
    let cancelled_at = Instant::now();
    shutdown.cancel();
    task.await.unwrap();
    assert_eq!(cancelled_at.elapsed(), Duration::from_secs(10));
    assert!(!finished.load(Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn workers_wait_for_the_first_list_and_readiness_follows() {
    let api = FakeApi::<Role>::new();
    api.put(role("a", "0"));
    api.fail_lists(2); // backoff 1 s + 2 s
    let log = Arc::new(Log::default());
    let start = Instant::now();
    let shutdown = CancellationToken::new();
    let controller = Controller::new("ready", reflector(&api), config(1));
    let readiness = controller.readiness();
    assert!(!controller.ready());
    let task = tokio::spawn({
        let log = log.clone();
        controller
            .graceful_shutdown_on(shutdown.clone().cancelled_owned())
            .run(
                move |obj: Arc<Role>, _ctx: Arc<()>| {
                    let log = log.clone();
                    async move {
                        log.enter(&obj.metadata.name, start);
                        log.leave(&obj.metadata.name);
                        Ok::<_, TestError>(Action::await_change())
                    }
                },
                default_error_policy,
                Arc::new(()),
            )
    });
    tokio::time::sleep(Duration::from_millis(2900)).await;
    assert!(!readiness.is_ready());
    assert_eq!(log.count("a"), 0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(readiness.is_ready());
    assert_eq!(log.times("a"), vec![3000]);
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn panics_are_retried_with_backoff() {
    let api = FakeApi::<Role>::new();
    api.put(role("a", "0"));
    let log = Arc::new(Log::default());
    let start = Instant::now();
    let shutdown = CancellationToken::new();
    let controller = Controller::new("panics", reflector(&api), config(1));
    let metrics = controller.metrics().clone();
    let task = tokio::spawn({
        let log = log.clone();
        controller
            .graceful_shutdown_on(shutdown.clone().cancelled_owned())
            .run(
                move |obj: Arc<Role>, _ctx: Arc<()>| {
                    let log = log.clone();
                    async move {
                        log.enter(&obj.metadata.name, start);
                        log.leave(&obj.metadata.name);
                        if log.count("a") < 3 {
                            panic!("reconcile bug");
                        }
                        Ok::<_, TestError>(Action::await_change())
                    }
                },
                default_error_policy,
                Arc::new(()),
            )
    });
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(log.times("a"), vec![0, 1000, 3000]);
    let (success, errors, _) = metrics.counts();
    assert_eq!((success, errors), (1, 2));
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn vanished_objects_are_skipped() {
    let api = FakeApi::<Role>::new();
    api.put(role("a", "0"));
    let log = Arc::new(Log::default());
    let start = Instant::now();
    let shutdown = CancellationToken::new();
    let controller = Controller::new("skip", reflector(&api), config(1));
    let queue = controller.queue();
    let metrics = controller.metrics().clone();
    let task = tokio::spawn({
        let log = log.clone();
        controller
            .graceful_shutdown_on(shutdown.clone().cancelled_owned())
            .run(
                move |obj: Arc<Role>, _ctx: Arc<()>| {
                    let log = log.clone();
                    async move {
                        log.enter(&obj.metadata.name, start);
                        log.leave(&obj.metadata.name);
                        Ok::<_, TestError>(Action::await_change())
                    }
                },
                default_error_policy,
                Arc::new(()),
            )
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    queue.add(ObjectRef::new("ghost"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(log.count("ghost"), 0);
    assert_eq!(metrics.counts(), (1, 0, 1));
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn changes_of_a_watched_kind_queue_the_mapped_keys() {
    let roles = FakeApi::<Role>::new();
    roles.put(role("admin", "0"));
    roles.put(role("viewer", "0"));
    let bindings = FakeApi::<RoleBinding>::new();
    bindings.fail_lists(1); // the controller waits for this reflector too
    let log = Arc::new(Log::default());
    let start = Instant::now();
    let shutdown = CancellationToken::new();
    let controller = Controller::new("secondary", reflector(&roles), config(2)).watches(
        reflector(&bindings),
        |change: &Change<RoleBinding>| {
            change
                .object()
                .roles
                .iter()
                .map(|r| ObjectRef::new(r))
                .collect()
        },
    );
    let task = tokio::spawn({
        let log = log.clone();
        controller
            .graceful_shutdown_on(shutdown.clone().cancelled_owned())
            .run(
                move |obj: Arc<Role>, _ctx: Arc<()>| {
                    let log = log.clone();
                    async move {
                        log.enter(&obj.metadata.name, start);
                        log.leave(&obj.metadata.name);
                        Ok::<_, TestError>(Action::await_change())
                    }
                },
                default_error_policy,
                Arc::new(()),
            )
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(log.count("admin"), 0, "waits for the bindings reflector");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(log.times("admin"), vec![1000]);

    let binding: RoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "b1"}, "users": ["u"], "roles": ["viewer"]
    }))
    .unwrap();
    bindings.put(binding);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(log.count("viewer"), 2);
    assert_eq!(log.count("admin"), 1);
    shutdown.cancel();
    task.await.unwrap();
}

/// Run `controller` until `shutdown`, logging every reconcile of a role in `log`.
fn spawn_logged(
    controller: Controller<Role>,
    log: &Arc<Log>,
    start: Instant,
    shutdown: &CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let log = log.clone();
    tokio::spawn(
        controller
            .graceful_shutdown_on(shutdown.clone().cancelled_owned())
            .run(
                move |obj: Arc<Role>, _ctx: Arc<()>| {
                    let log = log.clone();
                    async move {
                        log.enter(&obj.metadata.name, start);
                        log.leave(&obj.metadata.name);
                        Ok::<_, TestError>(Action::await_change())
                    }
                },
                default_error_policy,
                Arc::new(()),
            ),
    )
}

#[tokio::test(start_paused = true)]
async fn the_error_policy_chooses_what_follows_a_failure() {
    let api = FakeApi::<Role>::new();
    api.put(role("fixed", "0"));
    api.put(role("never", "0"));
    let log = Arc::new(Log::default());
    let policy_calls = Arc::new(Mutex::new(Vec::<String>::new()));
    let start = Instant::now();
    let shutdown = CancellationToken::new();
    // The backoff would retry after 1, 2, 4 s: the policy overrides it.
    let controller = Controller::new("policy", reflector(&api), config(2));
    let task = tokio::spawn({
        let log = log.clone();
        let policy_calls = policy_calls.clone();
        controller
            .graceful_shutdown_on(shutdown.clone().cancelled_owned())
            .run(
                move |obj: Arc<Role>, _ctx: Arc<u64>| {
                    let log = log.clone();
                    async move {
                        log.enter(&obj.metadata.name, start);
                        log.leave(&obj.metadata.name);
                        Err::<Action, _>(TestError("boom"))
                    }
                },
                move |obj: Arc<Role>, error: &TestError, ctx: Arc<u64>| {
                    policy_calls
                        .lock()
                        .unwrap()
                        .push(format!("{} {error} {ctx}", obj.metadata.name));
                    match obj.metadata.name.as_str() {
                        "fixed" => Action::requeue(Duration::from_secs(*ctx)),
                        _ => Action::await_change(),
                    }
                },
                Arc::new(3),
            )
    });
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(log.times("fixed"), vec![0, 3000, 6000, 9000]);
    assert_eq!(log.times("never"), vec![0], "await_change: no retry");
    assert!(
        policy_calls
            .lock()
            .unwrap()
            .contains(&"never boom 3".to_string())
    );
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_default_error_policy_backs_off_with_jitter_within_bounds() {
    let api = FakeApi::<Role>::new();
    api.put(role("a", "0"));
    let log = Arc::new(Log::default());
    let start = Instant::now();
    let shutdown = CancellationToken::new();
    let mut cfg = config(1);
    cfg.backoff = Backoff::new(Duration::from_secs(8), Duration::from_secs(64));
    let controller = Controller::new("jitter", reflector(&api), cfg);
    let task = tokio::spawn({
        let log = log.clone();
        controller
            .graceful_shutdown_on(shutdown.clone().cancelled_owned())
            .run(
                move |obj: Arc<Role>, _ctx: Arc<()>| {
                    let log = log.clone();
                    async move {
                        log.enter(&obj.metadata.name, start);
                        log.leave(&obj.metadata.name);
                        Err::<Action, _>(TestError("boom"))
                    }
                },
                default_error_policy,
                Arc::new(()),
            )
    });
    tokio::time::sleep(Duration::from_secs(120)).await;
    let times = log.times("a");
    assert!(times.len() >= 4, "{times:?}");
    for (i, ceiling) in [8000, 16000, 32000].into_iter().enumerate() {
        let waited = times[i + 1] - times[i];
        assert!(
            waited >= ceiling / 2 && waited <= ceiling,
            "retry {i} after {waited} ms: {times:?}"
        );
    }
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn used_reflectors_gate_the_start_without_queueing_keys() {
    let roles = FakeApi::<Role>::new();
    roles.put(role("admin", "0"));
    let bindings = FakeApi::<RoleBinding>::new();
    bindings.fail_lists(1);
    let binding_reflector = reflector(&bindings);
    let log = Arc::new(Log::default());
    let start = Instant::now();
    let shutdown = CancellationToken::new();
    let controller =
        Controller::new("uses", reflector(&roles), config(2)).uses(binding_reflector.clone());
    let readiness = controller.readiness();
    let task = spawn_logged(controller, &log, start, &shutdown);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!readiness.is_ready());
    assert_eq!(log.count("admin"), 0, "waits for the bindings reflector");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(readiness.is_ready());
    assert_eq!(log.times("admin"), vec![1000]);

    let binding: RoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "b1"}, "users": ["u"], "roles": ["admin"]
    }))
    .unwrap();
    bindings.put(binding);
    tokio::time::sleep(Duration::from_secs(1)).await;
    // The reflector runs (its store follows), but its changes queue nothing.
    assert_eq!(binding_reflector.store().len(), 1);
    assert_eq!(log.count("admin"), 1);
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn changes_of_owned_children_queue_their_owners() {
    let roles = FakeApi::<Role>::new();
    for name in ["owner", "other", "previous"] {
        roles.put(role(name, "0"));
    }
    let bindings = FakeApi::<RoleBinding>::new();
    let log = Arc::new(Log::default());
    let start = Instant::now();
    let shutdown = CancellationToken::new();
    let controller =
        Controller::new("owns", reflector(&roles), config(2)).owns(reflector(&bindings));
    let task = spawn_logged(controller, &log, start, &shutdown);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(log.count("owner"), 1);

    let binding = |owners: serde_json::Value| -> RoleBinding {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "b1", "owners": owners}, "users": ["u"], "roles": ["x"]
        }))
        .unwrap()
    };
    // Owned by a role, and by an object of another kind named like a role.
    bindings.put(binding(serde_json::json!([
        {"api": "core", "kind": "Role", "name": "previous", "namespace": null},
        {"api": "kubernetes", "kind": "Cluster", "name": "other", "namespace": "ns"}
    ])));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(log.count("previous"), 2);
    assert_eq!(log.count("other"), 1, "owners of another kind are not ours");
    // The owner changes: the new owner and the former one are both concerned.
    bindings.put(binding(serde_json::json!([
        {"api": "core", "kind": "Role", "name": "owner", "namespace": null}
    ])));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(log.count("owner"), 2);
    assert_eq!(log.count("previous"), 3);
    // Deletion of the child.
    bindings.remove("b1");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(log.count("owner"), 3);
    assert_eq!(log.count("other"), 1);
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn predicates_filter_modifications_of_the_primary() {
    let api = FakeApi::<Role>::new();
    api.put(role("a", "0"));
    let log = Arc::new(Log::default());
    let start = Instant::now();
    let shutdown = CancellationToken::new();
    let controller = Controller::new("predicate", reflector(&api), config(1))
        .with_predicate(|_old: &Role, new: &Role| new.metadata.labels["v"] != "quiet");
    let task = spawn_logged(controller, &log, start, &shutdown);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(log.count("a"), 1, "additions are not filtered");
    api.put(role("a", "quiet"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(log.count("a"), 1);
    api.put(role("a", "loud"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(log.count("a"), 2);
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn status_only_changes_can_be_ignored() {
    use krake_crds::kubernetes::{Application, ApplicationState};
    use krake_runtime::predicates::ignore_status_changes;

    let api = FakeApi::<Application>::new();
    let app: Application = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "app", "namespace": "ns"},
        "spec": {"manifest": [], "constraints": {"cluster": {}}}
    }))
    .unwrap();
    api.put(app.clone());
    let count = Arc::new(AtomicUsize::new(0));
    let shutdown = CancellationToken::new();
    let controller =
        Controller::new("status", reflector(&api), config(1)).with_predicate(ignore_status_changes);
    let task = tokio::spawn({
        let count = count.clone();
        controller
            .graceful_shutdown_on(shutdown.clone().cancelled_owned())
            .run(
                move |_obj: Arc<Application>, _ctx: Arc<()>| {
                    count.fetch_add(1, Ordering::SeqCst);
                    async { Ok::<_, TestError>(Action::await_change()) }
                },
                default_error_policy,
                Arc::new(()),
            )
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(count.load(Ordering::SeqCst), 1);
    // The controller's own status write (new resource version, same spec and metadata).
    let mut status_only = app.clone();
    status_only.status.state = ApplicationState::Running;
    api.put(status_only.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        count.load(Ordering::SeqCst),
        1,
        "status-only change ignored"
    );
    let mut relabelled = status_only;
    relabelled
        .metadata
        .labels
        .insert("tier".into(), serde_json::json!("gold"));
    api.put(relabelled);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(count.load(Ordering::SeqCst), 2);
    shutdown.cancel();
    task.await.unwrap();
}
