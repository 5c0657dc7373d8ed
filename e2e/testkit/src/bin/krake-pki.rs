//! `krake-pki`: write a development PKI for the Krake API server and its clients.
//!
//! ```text
//! krake-pki --out DIR [--host NAME]...
//! ```
//!
//! Writes `ca.pem`, `ca-key.pem`, `server.pem`, `server-key.pem` (valid for `localhost`,
//! `127.0.0.1` and every `--host`), and a client certificate per user (`admin.pem`,
//! `scheduler.pem`, ... with their `-key.pem`). An existing CA in DIR is reused.

use std::path::PathBuf;

use clap::Parser;
use krake_testkit::pki::write_dev_pki;

/// Write a development PKI (CA, API server certificate, client certificates).
#[derive(Debug, Parser)]
#[command(name = "krake-pki", version)]
struct Args {
    /// Output directory (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Extra DNS name or IP address of the API server certificate (repeatable).
    #[arg(long = "host", value_name = "NAME")]
    hosts: Vec<String>,
}

fn main() {
    let args = Args::parse();
    match write_dev_pki(&args.out, &args.hosts) {
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
        }
        Err(e) => {
            eprintln!("krake-pki: {e}");
            std::process::exit(1);
        }
    }
}
