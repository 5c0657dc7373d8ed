//! Faults the tests inject into every API request: a delay, an error status, or a hang
//! that lasts until the fault is cleared. (Unreachability is the server's: it stops
//! listening, see [`crate::KubeDouble::set_reachable`].)

use std::time::Duration;

use tokio::sync::watch;

use crate::error::{Error, Reason};

/// A fault applied to every API request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    /// Requests are served normally.
    #[default]
    None,
    /// Each request waits this long first.
    Slow(Duration),
    /// Each request fails with this HTTP status (500, 503 or 504: `InternalError`,
    /// `ServiceUnavailable`, `Timeout`).
    Status(u16),
    /// Requests get no answer until the fault changes.
    Hang,
}

/// The current fault, shared by the server and the test.
#[derive(Debug)]
pub struct Faults {
    current: watch::Sender<Fault>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            current: watch::Sender::new(Fault::None),
        }
    }
}

impl Faults {
    /// Inject `fault` (replacing the previous one).
    pub fn set(&self, fault: Fault) {
        self.current.send_replace(fault);
    }

    /// The fault in force.
    pub fn get(&self) -> Fault {
        *self.current.borrow()
    }

    /// Apply the fault in force to one request: wait, fail, or hang until cleared.
    pub async fn before_request(&self) -> Result<(), Error> {
        let mut changes = self.current.subscribe();
        loop {
            let fault = *changes.borrow_and_update();
            match fault {
                Fault::None => return Ok(()),
                Fault::Slow(delay) => {
                    tokio::time::sleep(delay).await;
                    return Ok(());
                }
                Fault::Status(code) => {
                    let reason = match code {
                        503 => Reason::ServiceUnavailable,
                        504 => Reason::Timeout,
                        _ => Reason::InternalError,
                    };
                    return Err(Error::status(
                        reason,
                        format!("injected fault: the server answers {}", reason.code()),
                    ));
                }
                Fault::Hang => {
                    if changes.changed().await.is_err() {
                        return Ok(());
                    }
                }
            }
        }
    }
}
