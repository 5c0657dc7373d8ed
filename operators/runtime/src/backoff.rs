//! Exponential backoff policy, jittered.

use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Exponential backoff: the `n`-th consecutive failure waits up to `initial · 2^(n-1)`,
/// capped at `max`.
///
/// With `jitter` (the default of [`Backoff::new`]), each delay is that ceiling
/// multiplied by a random factor in `[0.5, 1.0]`. Without it, the fourteen reflectors of
/// one process (and the work queues of every controller) that failed together after an
/// API restart would all retry at the same instants, hitting the API in bursts; half the
/// delay is spread enough to break that lockstep. The factor scales *down* so that `max`
/// stays a true upper bound and no retry comes later than it would without jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Ceiling of the delay after the first failure.
    pub initial: Duration,
    /// Longest delay.
    pub max: Duration,
    /// Whether delays are randomised in `[ceiling / 2, ceiling]`.
    pub jitter: bool,
}

impl Backoff {
    /// A jittered policy from `initial` doubling up to `max`.
    pub const fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            jitter: true,
        }
    }

    /// The same policy without jitter: every delay is its ceiling (for tests that check
    /// exact instants, or callers that need predictable delays).
    pub const fn without_jitter(self) -> Self {
        Backoff {
            jitter: false,
            ..self
        }
    }

    /// The longest delay after `failures` consecutive failures (`0` gives zero):
    /// `initial · 2^(failures-1)` capped at `max`.
    pub fn ceiling(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(31));
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The delay to wait after `failures` consecutive failures: [`Backoff::ceiling`],
    /// or with jitter a random duration in `[ceiling / 2, ceiling]`.
    pub fn delay(&self, failures: u32) -> Duration {
        let ceiling = self.ceiling(failures);
        if !self.jitter {
            return ceiling;
        }
        // A factor in [0.5, 1.0] with 2^-16 granularity.
        let fraction = (random_u64() >> 48) as f64 / 65536.0;
        ceiling.mul_f64(0.5 + fraction / 2.0).min(ceiling)
    }
}

impl Default for Backoff {
    /// 500 ms doubling up to 60 s, jittered.
    fn default() -> Self {
        Backoff::new(Duration::from_millis(500), Duration::from_secs(60))
    }
}

/// A random number from std alone: `RandomState` is seeded from the operating system
/// (once per thread, then varied per instance), and hashing a process-wide counter with
/// it gives a different value at every call. Not for cryptography.
fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_and_caps() {
        let b = Backoff::new(Duration::from_secs(1), Duration::from_secs(10)).without_jitter();
        let delays: Vec<u64> = (0..8).map(|n| b.delay(n).as_secs()).collect();
        assert_eq!(delays, vec![0, 1, 2, 4, 8, 10, 10, 10]);
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(10));
        assert!(!b.jitter);
    }

    #[test]
    fn jitter_stays_between_half_the_ceiling_and_the_ceiling() {
        let b = Backoff::new(Duration::from_secs(1), Duration::from_secs(10));
        assert!(b.jitter && Backoff::default().jitter);
        for failures in 0..8 {
            let ceiling = b.ceiling(failures);
            let delays: Vec<Duration> = (0..200).map(|_| b.delay(failures)).collect();
            for d in &delays {
                assert!(*d <= ceiling && *d >= ceiling / 2, "{d:?} vs {ceiling:?}");
            }
            if failures > 0 {
                // Randomised: 200 draws are not all equal, and they cover both halves
                // of the range.
                let min = delays.iter().min().unwrap();
                let max = delays.iter().max().unwrap();
                assert!(
                    *min < ceiling * 3 / 4 && *max > ceiling * 3 / 4,
                    "{delays:?}"
                );
            }
        }
        assert_eq!(b.delay(0), Duration::ZERO);
        assert!(b.delay(u32::MAX) <= Duration::from_secs(10));
    }
}
