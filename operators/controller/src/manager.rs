//! Runs the chosen controllers in one process: builds them from the command line's
//! configuration, serves `/livez`, `/readyz` and `/metrics` for all of them, and stops
//! them together.
//!
//! Like upstream, one controller ending ends the process: the others are stopped
//! gracefully (running reconciles finish) and the first failure is returned.
//!
//! ```no_run
//! # async fn example(common: krake_controller::cli::Common) -> Result<(), krake_controller::Error> {
//! use krake_client::Client;
//! use krake_controller::cli::Command;
//! use krake_controller::manager::Manager;
//! use krake_runtime::CancellationToken;
//!
//! let client = Client::new(common.client_config())?;
//! let shutdown = CancellationToken::new();
//! let running = Manager::new(Command::All, &common, &client, shutdown.clone())?
//!     .start(common.ops_address)
//!     .await?;
//! println!("ready at http://{}/readyz", running.ops_address());
//! running.wait().await?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use krake_client::Client;
use krake_garbage_collector::GarbageCollector;
use krake_kubernetes_cluster::ClusterController;
use krake_runtime::prometheus_client::registry::Registry;
use krake_runtime::{CancellationToken, Metrics, OpsServer, Readiness};
use krake_scheduler::Scheduler;
use tokio::task::JoinSet;

use crate::cli::{Command, Common};
use crate::error::Error;

/// A controller's run, boxed so that different controllers share one task set.
type BoxedRun = Pin<Box<dyn Future<Output = Result<(), Error>> + Send>>;

/// The controllers of one process, built but not running yet.
pub struct Manager {
    controllers: Vec<(&'static str, BoxedRun)>,
    readiness: Readiness,
    registry: Registry,
    shutdown: CancellationToken,
}

impl fmt::Debug for Manager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = self.controllers.iter().map(|(name, _)| *name).collect();
        f.debug_struct("Manager")
            .field("controllers", &names)
            .finish_non_exhaustive()
    }
}

impl Manager {
    /// The controllers `command` selects, configured from `common`, talking to the API
    /// through `client`; all of them stop when `shutdown` is cancelled.
    pub fn new(
        command: Command,
        common: &Common,
        client: &Client,
        shutdown: CancellationToken,
    ) -> Result<Self, Error> {
        let mut registry = Registry::default();
        let metrics = Metrics::new(&mut registry);
        let readiness = Readiness::new();
        let mut controllers: Vec<(&'static str, BoxedRun)> = Vec::new();
        if command.garbage_collector() {
            let gc =
                GarbageCollector::new(client, common.garbage_collector()).with_metrics(&metrics);
            readiness.add(&gc.readiness());
            let token = shutdown.clone();
            controllers.push((
                krake_garbage_collector::NAME,
                Box::pin(async move { gc.run(token).await.map_err(Error::from) }),
            ));
        }
        if command.scheduler() {
            let scheduler = Scheduler::new(client.clone(), common.scheduler())
                .map_err(Error::Scheduler)?
                .with_metrics(&metrics);
            readiness.add(&scheduler.readiness());
            let token = shutdown.clone();
            controllers.push((
                "scheduler",
                Box::pin(async move {
                    scheduler.run(token).await;
                    Ok(())
                }),
            ));
        }
        if command.kubernetes_cluster() {
            let controller = ClusterController::new(client, common.kubernetes_cluster())
                .map_err(Error::KubernetesCluster)?
                .with_metrics(&metrics, &mut registry);
            readiness.add(&controller.readiness());
            let token = shutdown.clone();
            controllers.push((
                krake_kubernetes_cluster::NAME,
                Box::pin(async move {
                    controller.run(token).await;
                    Ok(())
                }),
            ));
        }
        Ok(Manager {
            controllers,
            readiness,
            registry,
            shutdown,
        })
    }

    /// Serve the operations endpoints on `ops_address` (port 0 for any), then start the
    /// controllers. Readiness covers every controller before the endpoints answer.
    pub async fn start(self, ops_address: SocketAddr) -> Result<Running, Error> {
        let ops = OpsServer::start(
            ops_address,
            self.readiness,
            Arc::new(self.registry),
            self.shutdown.clone(),
        )
        .await?;
        let mut tasks = JoinSet::new();
        for (name, run) in self.controllers {
            tasks.spawn(async move { (name, run.await) });
        }
        Ok(Running {
            tasks,
            ops,
            shutdown: self.shutdown,
        })
    }
}

/// Controllers running with their operations endpoints.
#[derive(Debug)]
pub struct Running {
    tasks: JoinSet<(&'static str, Result<(), Error>)>,
    ops: OpsServer,
    shutdown: CancellationToken,
}

impl Running {
    /// Where `/livez`, `/readyz` and `/metrics` are served.
    pub fn ops_address(&self) -> SocketAddr {
        self.ops.local_addr()
    }

    /// Wait until every controller stopped: after the shutdown token is cancelled, or
    /// after one controller ended (the others are then stopped). Returns the first
    /// failure; a controller ending before shutdown is one.
    pub async fn wait(mut self) -> Result<(), Error> {
        let mut failure = None;
        while let Some(joined) = self.tasks.join_next().await {
            let (name, result) = match joined {
                Ok(done) => done,
                Err(e) => ("a controller", Err(Error::Panicked(e.to_string()))),
            };
            match result {
                Ok(()) if self.shutdown.is_cancelled() => {
                    tracing::info!(controller = name, "stopped");
                }
                Ok(()) => {
                    tracing::error!(controller = name, "stopped unexpectedly; shutting down");
                    failure.get_or_insert(Error::StoppedUnexpectedly(name));
                }
                Err(e) => {
                    tracing::error!(controller = name, error = %e, "failed; shutting down");
                    failure.get_or_insert(Error::Failed {
                        controller: name,
                        source: Box::new(e),
                    });
                }
            }
            self.shutdown.cancel();
        }
        self.shutdown.cancel();
        self.ops.wait().await?;
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
