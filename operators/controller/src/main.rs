//! `krake-controller`: the Krake controllers binary.
//!
//! `krake-controller garbage-collector | scheduler | kubernetes-cluster | all [OPTIONS]` runs the chosen
//! controllers against the Krake API, serves `/livez`, `/readyz` (200 once every
//! controller's caches are synced) and `/metrics` on `--ops-address`, and stops
//! gracefully on SIGTERM or Ctrl-C (running reconciles finish). A configuration it
//! cannot use stops it at start with a one-line reason (exit status 2).

use clap::Parser;
use clap::error::ErrorKind;
use krake_client::Client;
use krake_runtime::CancellationToken;

use krake_controller::cli::{Args, Common, LogFormat};
use krake_controller::manager::Manager;

/// Print `krake-controller: <reason>` on one line and exit with `code`.
fn fail(reason: &str, code: i32) -> ! {
    let line = reason.split_whitespace().collect::<Vec<_>>().join(" ");
    eprintln!("krake-controller: {line}");
    std::process::exit(code);
}

/// The error and its causes, `: `-separated, without causes that the message before
/// already quotes.
fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

fn parse_args() -> Args {
    match Args::try_parse() {
        Ok(args) => args,
        Err(e) => match e.kind() {
            ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
            _ => {
                let rendered = e.to_string();
                let first = rendered.lines().next().unwrap_or("invalid arguments");
                fail(first.trim_start_matches("error: "), 2)
            }
        },
    }
}

fn init_logging(common: &Common) {
    let filter = tracing_subscriber::EnvFilter::new(&common.log_level);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match common.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

async fn terminated() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "no SIGTERM handler; only Ctrl-C stops the process");
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    if let Err(reason) = args.common.validate() {
        fail(&reason, 2);
    }
    // Certificate files and the URL are checked here, before anything runs.
    let client = match Client::new(args.common.client_config()) {
        Ok(client) => client,
        Err(e) => fail(&e.to_string(), 2),
    };
    init_logging(&args.common);
    if let Err(e) = run(args, client).await {
        fail(&one_line(&e), 1);
    }
}

async fn run(args: Args, client: Client) -> anyhow::Result<()> {
    let Args { common, command } = args;
    let shutdown = CancellationToken::new();
    if client.base_url().starts_with("http://") && common.tls_client_cert.is_some() {
        tracing::warn!(url = %client.base_url(), "client certificate configured for a plain HTTP API URL");
    }
    let running = Manager::new(command, &common, &client, shutdown.clone())?
        .start(common.ops_address)
        .await?;
    tracing::info!(
        api = %client.base_url(),
        ops = %running.ops_address(),
        command = ?command,
        "starting"
    );
    // The signal is awaited here, not in a task of its own: it ends with the controllers.
    let wait = running.wait();
    tokio::pin!(wait);
    tokio::select! {
        result = &mut wait => return Ok(result?),
        () = terminated() => {
            tracing::info!("shutting down: letting running reconciles finish");
            shutdown.cancel();
        }
    }
    Ok(wait.await?)
}
