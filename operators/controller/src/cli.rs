//! Command line: flags (with environment variables), their validation, and the
//! configurations derived from them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use krake_client::ClientConfig;

/// `krake-controller [OPTIONS] <COMMAND>`: the options apply to every command, before
/// or after its name.
#[derive(Debug, Parser)]
#[command(
    name = "krake-controller",
    version,
    about = "Krake controllers: the garbage collector, the scheduler and the Kubernetes cluster controller, alone or together"
)]
pub struct Args {
    /// Options of every command.
    #[command(flatten)]
    pub common: Common,
    /// The controllers to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Which controllers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Cascading deletion along `metadata.owners` (the `cascade_deletion` finalizer).
    GarbageCollector,
    /// Binds Applications to Clusters, Clusters to Clouds, MagnumClusters to Projects.
    Scheduler,
    /// Follows every member cluster's nodes and reachability into its Cluster's status.
    KubernetesCluster,
    /// Every controller above in one process (local use).
    All,
}

impl Command {
    /// Whether the garbage collector runs.
    pub fn garbage_collector(self) -> bool {
        matches!(self, Command::GarbageCollector | Command::All)
    }

    /// Whether the scheduler runs.
    pub fn scheduler(self) -> bool {
        matches!(self, Command::Scheduler | Command::All)
    }

    /// Whether the Kubernetes cluster controller runs.
    pub fn kubernetes_cluster(self) -> bool {
        matches!(self, Command::KubernetesCluster | Command::All)
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Options shared by every command.
#[derive(Debug, clap::Args)]
pub struct Common {
    /// Base URL of the Krake API.
    #[arg(
        long,
        global = true,
        env = "KRAKE_CONTROLLER_API_URL",
        default_value = "http://localhost:8080"
    )]
    pub api_url: String,
    /// CA bundle (PEM) trusted for the API server's certificate (default: the system's).
    #[arg(
        long,
        global = true,
        env = "KRAKE_CONTROLLER_TLS_CA",
        value_name = "FILE"
    )]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM); its common name is the Krake user (e.g. `system:gc`).
    #[arg(
        long,
        global = true,
        env = "KRAKE_CONTROLLER_TLS_CLIENT_CERT",
        value_name = "FILE"
    )]
    pub tls_client_cert: Option<PathBuf>,
    /// Private key (PEM) of the client certificate.
    #[arg(
        long,
        global = true,
        env = "KRAKE_CONTROLLER_TLS_CLIENT_KEY",
        value_name = "FILE"
    )]
    pub tls_client_key: Option<PathBuf>,
    /// Objects each controller processes at once.
    #[arg(
        long,
        global = true,
        env = "KRAKE_CONTROLLER_WORKERS",
        default_value_t = 5,
        value_name = "N"
    )]
    pub workers: usize,
    /// How often every object is examined again whatever events arrived (`300`, `90s`,
    /// `5m`, `1h`; `0` disables). Applies to the garbage collector.
    #[arg(
        long,
        global = true,
        env = "KRAKE_CONTROLLER_RESYNC_PERIOD",
        default_value = "5m",
        value_parser = parse_duration,
        value_name = "DURATION"
    )]
    pub resync_period: Duration,
    /// How long the scheduler reuses the metric values of a namespace's clusters for
    /// later decisions (`0`: query the providers for every decision). Any change of a
    /// cluster, cloud, metric or metrics provider invalidates them at once.
    #[arg(
        long,
        global = true,
        env = "KRAKE_CONTROLLER_METRICS_MAX_AGE",
        default_value = "10s",
        value_parser = parse_duration,
        value_name = "DURATION"
    )]
    pub metrics_max_age: Duration,
    /// Time between two reachability probes of each member cluster by the Kubernetes
    /// cluster controller (an unreachable cluster is OFFLINE within two; node changes
    /// show at once through a watch, whatever the interval).
    #[arg(
        long,
        global = true,
        env = "KRAKE_CONTROLLER_PROBE_INTERVAL",
        default_value = "10s",
        value_parser = parse_duration,
        value_name = "DURATION"
    )]
    pub probe_interval: Duration,
    /// How long one probe may take (default: half the probe interval, at most 5 s);
    /// must be shorter than the interval.
    #[arg(
        long,
        global = true,
        env = "KRAKE_CONTROLLER_PROBE_TIMEOUT",
        value_parser = parse_duration,
        value_name = "DURATION"
    )]
    pub probe_timeout: Option<Duration>,
    /// Log format.
    #[arg(
        long,
        global = true,
        env = "KRAKE_CONTROLLER_LOG_FORMAT",
        default_value = "text"
    )]
    pub log_format: LogFormat,
    /// Log level or `tracing` filter (`info`, `debug`, `krake_garbage_collector=debug,info`).
    #[arg(
        long,
        global = true,
        env = "KRAKE_CONTROLLER_LOG_LEVEL",
        default_value = "info"
    )]
    pub log_level: String,
    /// Address of the operations endpoints `/livez`, `/readyz`, `/metrics`.
    #[arg(
        long,
        global = true,
        env = "KRAKE_CONTROLLER_OPS_ADDRESS",
        default_value = "0.0.0.0:8081",
        value_name = "ADDR"
    )]
    pub ops_address: SocketAddr,
}

/// `300`, `300s`, `500ms`, `5m`, `1h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (e.g. 300, 90s, 5m, 1h)"))?;
    let factor = match unit.trim() {
        "" | "s" => 1000,
        "ms" => 1,
        "m" => 60_000,
        "h" => 3_600_000,
        other => return Err(format!("unknown duration unit {other:?} (ms, s, m, h)")),
    };
    value
        .checked_mul(factor)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{text:?} is too long"))
}

impl Common {
    /// Checks that clap cannot express; the message is one line.
    pub fn validate(&self) -> Result<(), String> {
        if self.workers == 0 {
            return Err("--workers must be at least 1".into());
        }
        match (&self.tls_client_cert, &self.tls_client_key) {
            (Some(_), None) => {
                return Err("--tls-client-cert needs --tls-client-key".into());
            }
            (None, Some(_)) => {
                return Err("--tls-client-key needs --tls-client-cert".into());
            }
            _ => {}
        }
        self.kubernetes_cluster()
            .validate()
            .map_err(|e| {
                e.to_string()
                    .replace("invalid cluster controller configuration: ", "")
            })
            .map_err(|e| format!("--probe-interval/--probe-timeout: {e}"))?;
        tracing_subscriber::EnvFilter::try_new(&self.log_level)
            .map_err(|e| format!("invalid --log-level {:?}: {e}", self.log_level))?;
        Ok(())
    }

    /// The API client configuration.
    pub fn client_config(&self) -> ClientConfig {
        ClientConfig {
            ca: self.tls_ca.clone(),
            client_cert: self.tls_client_cert.clone(),
            client_key: self.tls_client_key.clone(),
            ..ClientConfig::new(self.api_url.clone())
        }
    }

    /// The garbage collector configuration.
    pub fn garbage_collector(&self) -> krake_garbage_collector::Config {
        krake_garbage_collector::Config {
            controller: krake_runtime::ControllerConfig {
                concurrency: self.workers,
                resync_interval: (!self.resync_period.is_zero()).then_some(self.resync_period),
                ..krake_runtime::ControllerConfig::default()
            },
            ..krake_garbage_collector::Config::default()
        }
    }

    /// The Kubernetes cluster controller configuration.
    pub fn kubernetes_cluster(&self) -> krake_kubernetes_cluster::Config {
        krake_kubernetes_cluster::Config {
            controller: krake_runtime::ControllerConfig {
                concurrency: self.workers,
                resync_interval: (!self.resync_period.is_zero()).then_some(self.resync_period),
                ..krake_runtime::ControllerConfig::default()
            },
            probe_interval: self.probe_interval,
            probe_timeout: self.probe_timeout,
            ..krake_kubernetes_cluster::Config::default()
        }
    }

    /// The scheduler configuration.
    pub fn scheduler(&self) -> krake_scheduler::Config {
        krake_scheduler::Config {
            worker_count: self.workers,
            metrics_max_age: self.metrics_max_age,
            ..krake_scheduler::Config::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("300"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("99999999999999999h").is_err());
    }

    #[test]
    fn flags_before_or_after_the_command() {
        let args = Args::try_parse_from([
            "krake-controller",
            "--workers",
            "3",
            "all",
            "--resync-period",
            "0",
            "--log-format",
            "json",
            "--metrics-max-age",
            "2s",
        ])
        .unwrap();
        assert_eq!(args.command, Command::All);
        assert_eq!(
            args.common.scheduler().metrics_max_age,
            Duration::from_secs(2)
        );
        assert!(args.command.garbage_collector() && args.command.scheduler());
        assert_eq!(args.common.workers, 3);
        assert!(args.command.kubernetes_cluster());
        assert_eq!(
            args.common.kubernetes_cluster().probe_interval,
            Duration::from_secs(10)
        );
        assert_eq!(args.common.log_format, LogFormat::Json);
        assert_eq!(
            args.common.garbage_collector().controller.resync_interval,
            None
        );
        assert_eq!(args.common.scheduler().worker_count, 3);
        assert_eq!(args.common.api_url, "http://localhost:8080");
        assert!(args.common.validate().is_ok());
        let defaults = Args::try_parse_from(["krake-controller", "scheduler"]).unwrap();
        assert_eq!(
            defaults.common.scheduler(),
            krake_scheduler::Config {
                worker_count: 5,
                ..krake_scheduler::Config::default()
            }
        );

        let args =
            Args::try_parse_from(["krake-controller", "garbage-collector", "--workers", "0"])
                .unwrap();
        assert!(!args.command.scheduler());
        assert_eq!(
            args.common.validate().unwrap_err(),
            "--workers must be at least 1"
        );
        let args = Args::try_parse_from([
            "krake-controller",
            "scheduler",
            "--tls-client-cert",
            "c.pem",
        ])
        .unwrap();
        assert!(
            args.common
                .validate()
                .unwrap_err()
                .contains("--tls-client-key")
        );
        assert!(Args::try_parse_from(["krake-controller"]).is_err());

        let args = Args::try_parse_from([
            "krake-controller",
            "kubernetes-cluster",
            "--probe-interval",
            "2s",
        ])
        .unwrap();
        assert!(args.command.kubernetes_cluster() && !args.command.scheduler());
        let config = args.common.kubernetes_cluster();
        assert_eq!(config.probe_interval, Duration::from_secs(2));
        assert_eq!(config.probe_timeout(), Duration::from_secs(1));
        assert!(args.common.validate().is_ok());
        let args = Args::try_parse_from([
            "krake-controller",
            "kubernetes-cluster",
            "--probe-interval",
            "2s",
            "--probe-timeout",
            "2s",
        ])
        .unwrap();
        let reason = args.common.validate().unwrap_err();
        assert!(
            reason.contains("shorter than the probe interval"),
            "{reason}"
        );
    }
}
