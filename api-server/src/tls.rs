//! HTTPS serving (upstream's `tls` section): the server certificate and key (PEM) are loaded at
//! start-up and reloaded when they change on disk; client certificates are requested but
//! optional, and verified against `tls.client_ca` when present.
//!
//! Every rustls object is built with the `ring` provider explicitly; no process-wide
//! default provider is installed or relied upon. Key material is never logged: errors
//! name the file and the reason only.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::config::TlsConfig;

/// How often the certificate and key files are checked for changes.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// Why the TLS configuration cannot be used. Messages are one line and name the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read.
    #[error("cannot read {what} {}: {source}", path.display())]
    Read {
        /// What the file should hold.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file does not hold what it should.
    #[error("invalid {what} {}: {reason}", path.display())]
    Invalid {
        /// What the file should hold.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong (never key material).
        reason: String,
    },
    /// The private key does not belong to the certificate.
    #[error("private key {} does not match certificate {}", key.display(), cert.display())]
    KeyMismatch {
        /// Certificate file.
        cert: PathBuf,
        /// Key file.
        key: PathBuf,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
}

impl From<TlsError> for crate::error::Error {
    fn from(e: TlsError) -> Self {
        crate::error::Error::Internal(e.to_string())
    }
}

/// The crypto provider of every TLS object of the server.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

async fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    tokio::fs::read(path)
        .await
        .map_err(|source| TlsError::Read {
            what,
            path: path.to_path_buf(),
            source,
        })
}

fn invalid(what: &'static str, path: &Path, reason: impl Into<String>) -> TlsError {
    TlsError::Invalid {
        what,
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// The certificates of a PEM file; each must be a parseable X.509 certificate.
fn parse_certificates(
    what: &'static str,
    path: &Path,
    bytes: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(what, path, format!("malformed PEM: {e}")))?;
    if certs.is_empty() {
        return Err(invalid(
            what,
            path,
            "no certificate found (expected PEM \"CERTIFICATE\" blocks)",
        ));
    }
    for (i, cert) in certs.iter().enumerate() {
        if let Err(e) = x509_parser::parse_x509_certificate(cert) {
            return Err(invalid(
                what,
                path,
                format!("certificate {} is not valid X.509: {e}", i + 1),
            ));
        }
    }
    Ok(certs)
}

/// The first private key of a PEM file (PKCS#8, PKCS#1 RSA or SEC1 EC).
fn parse_private_key(path: &Path, bytes: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    const WHAT: &str = "private key";
    PrivateKeyDer::from_pem_slice(bytes).map_err(|e| match e {
        pem::Error::NoItemsFound => invalid(
            WHAT,
            path,
            "no private key found (expected PEM \"PRIVATE KEY\", \"RSA PRIVATE KEY\" or \"EC PRIVATE KEY\")",
        ),
        // Other PEM errors may quote parts of the file: say nothing about its content.
        _ => invalid(WHAT, path, "malformed PEM"),
    })
}

/// The first subject Common Name of a DER certificate.
pub fn common_name(cert: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert).ok()?;
    cert.subject()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()
        .map(str::to_string)
}

/// The user of a TLS connection: the first subject Common Name of the (verified) client
/// certificate, `None` without one.
pub fn peer_common_name(connection: &rustls::ServerConnection) -> Option<String> {
    common_name(connection.peer_certificates()?.first()?)
}

/// Load and check a certificate chain and its key.
pub async fn load_certified_key(
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let certs = parse_certificates(
        "certificate",
        cert_path,
        &read("certificate", cert_path).await?,
    )?;
    let key = parse_private_key(key_path, &read("private key", key_path).await?)?;
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| invalid("private key", key_path, format!("unusable key: {e}")))?;
    let certified = CertifiedKey::new(certs, signing_key);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(certified)
        }
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::KeyMismatch {
            cert: cert_path.to_path_buf(),
            key: key_path.to_path_buf(),
        }),
        Err(e) => Err(invalid("certificate", cert_path, e.to_string())),
    }
}

/// Log what was loaded (subject, serial, expiry; never the key) and warn about a
/// certificate that is not valid now.
fn log_loaded(certified: &CertifiedKey, path: &Path, reloaded: bool) {
    let Some(Ok((_, cert))) = certified
        .cert
        .first()
        .map(|c| x509_parser::parse_x509_certificate(c))
    else {
        return;
    };
    let subject = cert.subject().to_string();
    let serial = cert.raw_serial_as_string();
    let not_after = cert.validity().not_after.to_string();
    if reloaded {
        tracing::info!(path = %path.display(), %subject, %serial, %not_after, "reloaded the server certificate");
    } else {
        tracing::info!(path = %path.display(), %subject, %serial, %not_after, "loaded the server certificate");
    }
    if !cert.validity().is_valid() {
        tracing::warn!(path = %path.display(), %subject, %not_after, "the server certificate is not valid now");
    }
}

/// The server certificate in use, replaced when the files change.
pub struct ReloadingCertResolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl fmt::Debug for ReloadingCertResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadingCertResolver")
            .finish_non_exhaustive()
    }
}

impl ReloadingCertResolver {
    /// A resolver serving `key`.
    pub fn new(key: CertifiedKey) -> Self {
        ReloadingCertResolver {
            current: RwLock::new(Arc::new(key)),
        }
    }

    /// The certificate and key new connections get.
    pub fn current(&self) -> Arc<CertifiedKey> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Serve `key` to new connections.
    pub fn replace(&self, key: CertifiedKey) {
        let key = Arc::new(key);
        match self.current.write() {
            Ok(mut guard) => *guard = key,
            Err(poisoned) => *poisoned.into_inner() = key,
        }
    }
}

impl ResolvesServerCert for ReloadingCertResolver {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// What identifies a version of a file: modification time, length and (on Unix) inode.
type FileStamp = Option<(SystemTime, u64, u64)>;

async fn stamp(path: &Path) -> FileStamp {
    let meta = tokio::fs::metadata(path).await.ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some((meta.modified().ok()?, meta.len(), inode))
}

async fn stamps(cert: &Path, key: &Path) -> (FileStamp, FileStamp) {
    (stamp(cert).await, stamp(key).await)
}

/// The server side of TLS: the acceptor for new connections and the certificate they get.
pub struct ServerTls {
    acceptor: TlsAcceptor,
    resolver: Arc<ReloadingCertResolver>,
    cert_path: PathBuf,
    key_path: PathBuf,
    loaded_stamps: (FileStamp, FileStamp),
    provider: Arc<CryptoProvider>,
    client_auth: bool,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .field("client_auth", &self.client_auth)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Load the certificate, key and client CA bundle of `config`.
    pub async fn load(config: &TlsConfig) -> Result<ServerTls, TlsError> {
        let provider = provider();
        // Stamps before reading: a change during the load is seen by the next check.
        let loaded_stamps = stamps(&config.cert, &config.key).await;
        let certified = load_certified_key(&config.cert, &config.key, &provider).await?;
        log_loaded(&certified, &config.cert, false);
        let resolver = Arc::new(ReloadingCertResolver::new(certified));

        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = match &config.client_ca {
            Some(path) => {
                const WHAT: &str = "client CA bundle";
                let certs = parse_certificates(WHAT, path, &read(WHAT, path).await?)?;
                let mut roots = RootCertStore::empty();
                for cert in certs {
                    roots
                        .add(cert)
                        .map_err(|e| invalid(WHAT, path, e.to_string()))?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .allow_unauthenticated()
                        .build()
                        .map_err(|e| invalid(WHAT, path, e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut server_config = builder.with_cert_resolver(resolver.clone());
        server_config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(ServerTls {
            acceptor: TlsAcceptor::from(Arc::new(server_config)),
            resolver,
            cert_path: config.cert.clone(),
            key_path: config.key.clone(),
            loaded_stamps,
            provider,
            client_auth: config.client_ca.is_some(),
        })
    }

    /// The acceptor for new connections.
    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// The certificate chain new connections get.
    #[cfg(test)]
    fn current_certificate(&self) -> Vec<CertificateDer<'static>> {
        self.resolver.current().cert.clone()
    }

    /// Check the certificate and key files every `interval` until `shutdown`; when they
    /// changed and hold a valid pair, new connections get it. An invalid new pair is
    /// logged and the previous one kept.
    pub fn spawn_reloader(
        &self,
        interval: Duration,
        shutdown: CancellationToken,
    ) -> JoinHandle<()> {
        let resolver = self.resolver.clone();
        let provider = self.provider.clone();
        let cert = self.cert_path.clone();
        let key = self.key_path.clone();
        let mut last = self.loaded_stamps;
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = ticker.tick() => {}
                }
                let now = stamps(&cert, &key).await;
                if now == last {
                    continue;
                }
                last = now;
                match load_certified_key(&cert, &key, &provider).await {
                    Ok(certified) => {
                        log_loaded(&certified, &cert, true);
                        resolver.replace(certified);
                    }
                    Err(e) => tracing::error!(
                        error = %e,
                        "cannot reload the server certificate; new connections keep getting the previous one"
                    ),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(cn: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    async fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
        let path = dir.join(name);
        tokio::fs::write(&path, contents).await.unwrap();
        path
    }

    #[tokio::test]
    async fn loads_pkcs8_and_reports_bad_files_by_path() {
        let dir = tempfile::tempdir().unwrap();
        let (cert_pem, key_pem) = self_signed("one");
        let cert = write(dir.path(), "cert.pem", &cert_pem).await;
        let key = write(dir.path(), "key.pem", &key_pem).await;
        let provider = provider();
        let loaded = load_certified_key(&cert, &key, &provider).await.unwrap();
        assert_eq!(common_name(&loaded.cert[0]).as_deref(), Some("one"));

        let missing = dir.path().join("missing.pem");
        let e = load_certified_key(&missing, &key, &provider)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("cannot read certificate {}", missing.display())),
            "{e}"
        );

        let garbage = write(dir.path(), "garbage.pem", "not a certificate\n").await;
        let e = load_certified_key(&garbage, &key, &provider)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("invalid certificate {}", garbage.display())),
            "{e}"
        );
        let e = load_certified_key(&cert, &garbage, &provider)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("invalid private key {}", garbage.display())),
            "{e}"
        );

        let (_, other_key) = self_signed("two");
        let other = write(dir.path(), "other-key.pem", &other_key).await;
        let e = load_certified_key(&cert, &other, &provider)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not match"), "{e}");
        assert!(!e.contains("PRIVATE KEY"), "{e}");
    }

    /// SEC1 (`EC PRIVATE KEY`) and PKCS#1 (`RSA PRIVATE KEY`) keys, as written by OpenSSL.
    #[tokio::test]
    async fn loads_sec1_and_pkcs1_keys() {
        let provider = provider();
        let dir = tempfile::tempdir().unwrap();
        for (name, key_pem) in [("ec", EC_SEC1_KEY), ("rsa", RSA_PKCS1_KEY)] {
            let key_pair = rcgen::KeyPair::from_pem(&pkcs8_of(name)).unwrap();
            let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, name);
            let cert = params.self_signed(&key_pair).unwrap();
            let cert = write(dir.path(), &format!("{name}.pem"), &cert.pem()).await;
            let key = write(dir.path(), &format!("{name}-key.pem"), key_pem).await;
            let loaded = load_certified_key(&cert, &key, &provider).await.unwrap();
            assert_eq!(common_name(&loaded.cert[0]).as_deref(), Some(name));
        }
    }

    fn pkcs8_of(name: &str) -> String {
        match name {
            "ec" => EC_PKCS8_KEY.to_string(),
            _ => RSA_PKCS8_KEY.to_string(),
        }
    }

    #[tokio::test]
    async fn reloader_swaps_in_a_changed_pair_and_keeps_the_old_one_on_errors() {
        let dir = tempfile::tempdir().unwrap();
        let (cert_pem, key_pem) = self_signed("first");
        let cert = write(dir.path(), "cert.pem", &cert_pem).await;
        let key = write(dir.path(), "key.pem", &key_pem).await;
        let tls = ServerTls::load(&TlsConfig {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: None,
        })
        .await
        .unwrap();
        let shutdown = CancellationToken::new();
        let task = tls.spawn_reloader(Duration::from_millis(20), shutdown.clone());
        let cn = || common_name(&tls.current_certificate()[0]);

        // A broken key: the old pair stays.
        write(dir.path(), "key.pem", "garbage").await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(cn().as_deref(), Some("first"));

        let (cert_pem, key_pem) = self_signed("second");
        write(dir.path(), "key.pem", &key_pem).await;
        write(dir.path(), "cert.pem", &cert_pem).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while cn().as_deref() != Some("second") {
            assert!(tokio::time::Instant::now() < deadline, "not reloaded");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        shutdown.cancel();
        task.await.unwrap();
    }

    const EC_SEC1_KEY: &str = include_str!("../testdata/tls/ec-sec1-key.pem");
    const EC_PKCS8_KEY: &str = include_str!("../testdata/tls/ec-pkcs8-key.pem");
    const RSA_PKCS1_KEY: &str = include_str!("../testdata/tls/rsa-pkcs1-key.pem");
    const RSA_PKCS8_KEY: &str = include_str!("../testdata/tls/rsa-pkcs8-key.pem");
}
