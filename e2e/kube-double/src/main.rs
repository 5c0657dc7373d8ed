//! `kube-double`: start the Kubernetes API test double and write a kubeconfig for it.
//!
//! ```text
//! kube-double --listen 127.0.0.1:6443 --kubeconfig-out ./kubeconfig --tls
//! kubectl --kubeconfig ./kubeconfig get nodes
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

/// A strict Kubernetes API test double.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on (port 0: any free port; the kubeconfig says which).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Where to write the admin kubeconfig.
    #[arg(long)]
    kubeconfig_out: PathBuf,
    /// Serve HTTPS (own CA, server certificate with IP SAN, client certificates accepted).
    #[arg(long)]
    tls: bool,
    /// The admin bearer token (random when not given).
    #[arg(long, env = "KUBE_DOUBLE_TOKEN")]
    token: Option<String>,
    /// How many changes watches can replay (older resourceVersions get 410).
    #[arg(long, default_value_t = 1000)]
    history: usize,
    /// Seconds between watch bookmarks.
    #[arg(long, default_value_t = 1)]
    bookmark_seconds: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "kube_double=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let double = kube_double::KubeDouble::start(kube_double::Options {
        listen: args.listen,
        tls: args.tls,
        token: args.token,
        history: args.history,
        bookmark_interval: Duration::from_secs(args.bookmark_seconds.max(1)),
    })
    .await
    .context("cannot start")?;
    double
        .write_kubeconfig(&args.kubeconfig_out)
        .with_context(|| format!("cannot write {}", args.kubeconfig_out.display()))?;
    println!("{}", double.url());
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    double.shutdown().await;
    Ok(())
}
