//! `krake-api`: the Krake API server binary.

use std::path::PathBuf;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use krake_api_server::config::{Cli, Config, LogFormat};

/// `krake-api [OPTIONS] [COMMAND]`: the server options (flags, environment, `api.yaml`)
/// apply to the server and to every subcommand, before or after its name.
#[derive(Debug, Parser)]
#[command(name = "krake-api", version, about = "The Krake API server")]
struct Args {
    #[command(flatten)]
    server: Cli,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Load core objects (Roles, RoleBindings, metrics, metrics providers) from YAML files
    /// into the configured storage, all or nothing (upstream's `krake_bootstrap_db`).
    Bootstrap {
        /// Replace objects that already exist instead of failing.
        #[arg(short, long)]
        force: bool,
        /// Multi-document YAML files; `-` reads standard input.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
}

fn parse_args() -> Args {
    // Server options are global, so that `krake-api bootstrap --data-dir D FILE` works too.
    let matches = Args::command()
        .mut_args(|arg| {
            if arg.is_positional() {
                arg
            } else {
                arg.global(true)
            }
        })
        .get_matches();
    Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

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
    let args = parse_args();
    let config = match Config::load(&args.server) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("krake-api: {e}");
            std::process::exit(2);
        }
    };
    init_logging(&config);
    let outcome = match args.command {
        None => run(config).await,
        Some(Command::Bootstrap { force, files }) => bootstrap(config, force, files).await,
    };
    if let Err(e) = outcome {
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

/// `krake-api bootstrap`: validate every document, then write all or nothing.
async fn bootstrap(config: Config, force: bool, files: Vec<PathBuf>) -> anyhow::Result<()> {
    use krake_api_server::bootstrap;
    use tokio::io::AsyncReadExt;

    let mut documents = Vec::new();
    for file in &files {
        let (origin, text) = if file.as_os_str() == "-" {
            let mut text = String::new();
            tokio::io::stdin()
                .read_to_string(&mut text)
                .await
                .context("cannot read standard input")?;
            ("-".to_string(), text)
        } else {
            let text = tokio::fs::read_to_string(file)
                .await
                .with_context(|| format!("cannot read {}", file.display()))?;
            (file.display().to_string(), text)
        };
        documents.extend(bootstrap::parse_documents(&origin, &text)?);
    }
    // Validation first: an invalid document never needs the storage.
    let prepared = bootstrap::prepare_all(&documents)?;
    let store = krake_api_server::server::open_store(&config)
        .await
        .context("cannot open the storage")?;
    let written = bootstrap::write_all(&*store, prepared, force).await?;
    for w in &written {
        println!("{w}");
    }
    Ok(())
}
