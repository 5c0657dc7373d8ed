//! `krake-api`: the Krake API server binary.

use anyhow::Context;
use clap::Parser;
use krake_api_server::config::{Cli, Config, LogFormat};

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::new(&config.log_level);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

async fn terminated() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let config = match Config::load(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("krake-api: {e}");
            std::process::exit(2);
        }
    };
    init_logging(&config);
    if let Err(e) = run(config).await {
        eprintln!("krake-api: {e:#}");
        std::process::exit(1);
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    let server = krake_api_server::start(config)
        .await
        .context("cannot start")?;
    let token = server.shutdown_token();
    tokio::spawn(async move {
        terminated().await;
        tracing::info!("shutting down: closing watch streams and draining requests");
        token.cancel();
    });
    server
        .wait()
        .await
        .context("server stopped with an error")?;
    tracing::info!("stopped");
    Ok(())
}
