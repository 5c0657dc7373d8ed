//! `krake-api`: the Krake API server binary.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args as ClapArgs, CommandFactory, FromArgMatches, Parser, Subcommand};
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
    /// Write a development PKI for the API server and its clients (not for production).
    ///
    /// A CA (`ca.pem`, `ca-key.pem`; an existing one in DIR is reused), a server
    /// certificate (`server.pem`, `server-key.pem`) valid for `localhost`, `127.0.0.1` and
    /// every `--host`, and a client certificate per Krake user (`admin.pem`,
    /// `scheduler.pem`, ... with their `-key.pem`).
    Pki(PkiArgs),
    /// Write the API's OpenAPI 3.1 document (the one served at `/openapi/v3`) to FILE, or
    /// to standard output.
    Openapi {
        /// Output file (`api-server/openapi.json` is the checked-in copy).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, ClapArgs)]
struct PkiArgs {
    /// Output directory (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Extra DNS name or IP address of the API server certificate (repeatable).
    // The id of the server option `--host`, so that this flag replaces it here.
    #[arg(id = "host", long = "host", value_name = "NAME")]
    hosts: Vec<String>,
}

/// The parser. Server options are global, so that `krake-api bootstrap --data-dir D FILE`
/// works too.
fn command() -> clap::Command {
    Args::command()
        .mut_args(|arg| {
            if arg.is_positional() {
                arg
            } else {
                arg.global(true)
            }
        })
        .mut_subcommand("pki", |pki| {
            // The server options mean nothing to `pki`: hidden copies keep them out of its
            // help (a subcommand's own argument takes the place of a global one).
            let hidden: Vec<clap::Arg> = Cli::command()
                .get_arguments()
                .filter(|arg| arg.get_id() != "host")
                .map(|arg| arg.clone().hide(true))
                .collect();
            pki.args(hidden)
        })
}

fn parse_args() -> Args {
    Args::from_arg_matches(&command().get_matches()).unwrap_or_else(|e| e.exit())
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
    if let Some(Command::Pki(pki)) = &args.command {
        // Needs no server configuration: a missing or invalid one must not stop it.
        std::process::exit(write_pki(pki));
    }
    if let Some(Command::Openapi { out }) = &args.command {
        // Needs no server configuration either.
        let document = krake_api_server::render_openapi_document();
        let written = match out {
            Some(path) => std::fs::write(path, document),
            None => std::io::Write::write_all(&mut std::io::stdout(), document.as_bytes()),
        };
        if let Err(e) = written {
            eprintln!("krake-api openapi: {e}");
            std::process::exit(1);
        }
        return;
    }
    krake_api_server::config::raise_open_file_limit();
    let config = match Config::load(&args.server) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("krake-api: {e}");
            std::process::exit(2);
        }
    };
    init_logging(&config);
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let outcome = match args.command {
        None => run(config).await,
        Some(Command::Bootstrap { force, files }) => bootstrap(config, force, files).await,
        Some(Command::Pki(_) | Command::Openapi { .. }) => {
            unreachable!("handled before the configuration is loaded")
        }
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

    let documents = bootstrap::load_files(&files).await?;
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

/// `krake-api pki`: the exit status.
fn write_pki(args: &PkiArgs) -> i32 {
    match krake_api_server::pki::write_dev_pki(&args.out, &args.hosts) {
        Ok(pki) => {
            println!("CA certificate:     {}", pki.ca_cert.display());
            println!(
                "server certificate: {} (key {})",
                pki.server.cert.display(),
                pki.server.key.display()
            );
            for (user, files) in &pki.clients {
                println!("client {user}: {}", files.cert.display());
            }
            0
        }
        Err(e) => {
            eprintln!("krake-api pki: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parser_is_consistent() {
        command().debug_assert();
    }

    fn parse(args: &[&str]) -> Args {
        let matches = command().try_get_matches_from(args).unwrap();
        Args::from_arg_matches(&matches).unwrap()
    }

    #[test]
    fn server_options_apply_to_subcommands() {
        let args = parse(&["krake-api", "bootstrap", "--data-dir", "d", "f.yaml"]);
        assert_eq!(args.server.data_dir, Some(PathBuf::from("d")));
        assert!(matches!(args.command, Some(Command::Bootstrap { .. })));
    }

    #[test]
    fn pki_takes_the_options_of_the_former_krake_pki() {
        let args = parse(&[
            "krake-api",
            "pki",
            "--out",
            "dir",
            "--host",
            "a.example",
            "--host",
            "10.0.0.1",
        ]);
        let Some(Command::Pki(pki)) = args.command else {
            panic!("not the pki subcommand: {args:?}");
        };
        assert_eq!(pki.out, PathBuf::from("dir"));
        assert_eq!(pki.hosts, ["a.example", "10.0.0.1"]);
    }
}
