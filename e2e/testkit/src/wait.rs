//! Polling until a condition holds, for tests that observe asynchronous effects (a
//! controller reconciling, a watch cache catching up, a process becoming ready).

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// Time between two probes: short enough not to slow tests down, long enough not to
/// flood a server with requests on a two-core machine.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// What one probe of [`eventually`] observed: done with a value, or not yet with a
/// description of what was seen instead (reported if the wait times out).
pub trait Probe {
    /// The value [`eventually`] returns once the condition holds.
    type Value;
    /// `Ok(value)` when the condition holds, `Err(observed)` otherwise.
    fn check(self) -> Result<Self::Value, String>;
}

impl Probe for bool {
    type Value = ();
    fn check(self) -> Result<(), String> {
        if self { Ok(()) } else { Err("false".into()) }
    }
}

impl<T> Probe for Option<T> {
    type Value = T;
    fn check(self) -> Result<T, String> {
        self.ok_or_else(|| "None".into())
    }
}

impl<T, E: Debug> Probe for Result<T, E> {
    type Value = T;
    fn check(self) -> Result<T, String> {
        self.map_err(|observed| format!("{observed:?}"))
    }
}

/// Run `probe` every [`POLL_INTERVAL`] until it reports success, and return its value.
///
/// A probe returns `bool`, `Option<T>` or `Result<T, E>`; an `Err` carries what was
/// observed instead (any `Debug` value, e.g. the current state of an object), so that a
/// timeout says not only what was awaited but also what was last seen.
///
/// Uses Tokio's clock, so it also works in tests with paused time.
///
/// # Panics
/// When `timeout` passes first: `timed out after {timeout} waiting for {what}; last
/// observed: {observed}`.
pub async fn eventually<P, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> P::Value
where
    P: Probe,
    F: FnMut() -> Fut,
    Fut: Future<Output = P>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let observed = match probe().await.check() {
            Ok(value) => return value,
            Err(observed) => observed,
        };
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}; last observed: {observed}"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_the_first_success() {
        let mut calls = 0;
        let value = eventually("the third call", Duration::from_secs(1), || {
            calls += 1;
            std::future::ready((calls >= 3).then_some(calls))
        })
        .await;
        assert_eq!(value, 3);
    }

    #[tokio::test]
    #[should_panic(expected = "waiting for a state; last observed: \"Pending\"")]
    async fn reports_the_last_observation_on_timeout() {
        eventually("a state", Duration::from_millis(200), || async {
            Err::<(), _>("Pending")
        })
        .await;
    }

    #[tokio::test]
    async fn accepts_plain_conditions() {
        let start = Instant::now();
        eventually("time to pass", Duration::from_secs(5), || async {
            start.elapsed() >= Duration::from_millis(120)
        })
        .await;
    }
}
