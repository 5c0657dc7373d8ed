//! A development and test PKI: a certificate authority, a server certificate for the API
//! server and client certificates whose Common Name is the Krake user, written as PEM files.
//!
//! Not for production: keys are ECDSA P-256 generated in memory, certificates are valid for
//! a long time, and key files are written unencrypted (mode `0600` on Unix).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// The administrator's user name.
pub const ADMIN_USER: &str = "system:admin";

/// The user names of the controllers, one client certificate each: each has a role and a
/// role binding of the same name in the base roles (`bootstrap/base_roles.yaml`).
pub const CONTROLLER_USERS: [&str; 8] = [
    "system:scheduler",
    "system:gc",
    "system:kubernetes-application",
    "system:kubernetes-cluster",
    "system:infrastructure",
    "system:complete-hook",
    "system:shutdown-hook",
    "system:magnum",
];

/// Names every server certificate is valid for, before the extra ones.
pub const DEFAULT_SERVER_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// What can go wrong while making or writing certificates.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Key generation, a name or the signature failed.
    #[error("cannot create certificate {what}: {source}")]
    Certificate {
        /// Which certificate.
        what: String,
        /// The cause.
        source: rcgen::Error,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

fn cert_error(what: &str) -> impl FnOnce(rcgen::Error) -> PkiError + '_ {
    move |source| PkiError::Certificate {
        what: what.to_string(),
        source,
    }
}

/// A certificate and its private key, both PEM.
#[derive(Clone)]
pub struct Issued {
    /// The certificate (PEM).
    pub cert_pem: String,
    /// The certificate (DER).
    pub cert_der: Vec<u8>,
    /// The private key (PKCS#8 PEM).
    pub key_pem: String,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key stays out of debug output.
        f.debug_struct("Issued")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

impl Issued {
    /// Write `<dir>/<name>.pem` (certificate) and `<dir>/<name>-key.pem` (key, mode 0600
    /// on Unix); returns both paths.
    pub fn write(&self, dir: &Path, name: &str) -> Result<CertFiles, PkiError> {
        let files = CertFiles {
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}-key.pem")),
        };
        write_file(&files.cert, &self.cert_pem, false)?;
        write_file(&files.key, &self.key_pem, true)?;
        Ok(files)
    }
}

/// Where a certificate and its key were written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// Certificate file (PEM).
    pub cert: PathBuf,
    /// Private key file (PEM).
    pub key: PathBuf,
}

/// Write `contents` to `path` (replacing it); private files are created with mode 0600.
pub fn write_file(path: &Path, contents: &str, private: bool) -> Result<(), PkiError> {
    let io_error = |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(path).map_err(io_error)?;
    #[cfg(unix)]
    if private {
        // `mode` only applies to new files; tighten an existing one too.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(io_error)?;
    }
    io::Write::write_all(&mut file, contents.as_bytes()).map_err(io_error)
}

fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "Krake");
    name.push(DnType::CommonName, common_name);
    name
}

/// A certificate authority that issues server and client certificates.
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    cert_der: Vec<u8>,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// A new self-signed CA with this Common Name.
    pub fn new(common_name: &str) -> Result<Self, PkiError> {
        let key = KeyPair::generate().map_err(cert_error(common_name))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).map_err(cert_error(common_name))?;
        Ok(CertificateAuthority {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            issuer: Issuer::new(params, key),
        })
    }

    /// An existing CA from its certificate and key (PEM).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, PkiError> {
        let key = KeyPair::from_pem(key_pem).map_err(cert_error("CA key"))?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key).map_err(cert_error("CA"))?;
        let cert_der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|_| PkiError::Certificate {
                what: "CA".into(),
                source: rcgen::Error::CouldNotParseCertificate,
            })?
            .to_vec();
        Ok(CertificateAuthority {
            issuer,
            cert_pem: cert_pem.to_string(),
            cert_der,
        })
    }

    /// The CA certificate (PEM): the `client_ca` bundle of the API server and the trust
    /// anchor of clients.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate (DER).
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The CA private key (PKCS#8 PEM).
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// A server certificate with Common Name `common_name`, valid for `names` (DNS names
    /// or IP addresses).
    pub fn issue_server(&self, common_name: &str, names: &[String]) -> Result<Issued, PkiError> {
        let mut params = CertificateParams::new(names.to_vec()).map_err(cert_error(common_name))?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(common_name, params)
    }

    /// A client certificate whose Common Name is the Krake user `user`.
    pub fn issue_client(&self, user: &str) -> Result<Issued, PkiError> {
        let mut params = CertificateParams::default();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(user, params)
    }

    fn issue(&self, common_name: &str, mut params: CertificateParams) -> Result<Issued, PkiError> {
        let key = KeyPair::generate().map_err(cert_error(common_name))?;
        params.distinguished_name = distinguished_name(common_name);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(cert_error(common_name))?;
        Ok(Issued {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// The file name stem of a user's certificate: the user name without its `system:` prefix
/// (`system:admin` → `admin`), other characters than letters, digits, `-`, `_` and `.`
/// replaced by `_`.
pub fn file_stem(user: &str) -> String {
    user.strip_prefix("system:")
        .unwrap_or(user)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The files of a development PKI (see [`write_dev_pki`]).
#[derive(Debug, Clone)]
pub struct DevPki {
    /// The directory holding everything.
    pub dir: PathBuf,
    /// The CA certificate (`ca.pem`): `tls.client_ca` of the API server, trust anchor of
    /// clients.
    pub ca_cert: PathBuf,
    /// The CA key (`ca-key.pem`).
    pub ca_key: PathBuf,
    /// The API server's certificate and key (`server.pem`, `server-key.pem`).
    pub server: CertFiles,
    /// Client certificates by user name (`admin.pem`, `scheduler.pem`, ...).
    pub clients: Vec<(String, CertFiles)>,
}

impl DevPki {
    /// The certificate files of `user`.
    pub fn client(&self, user: &str) -> Option<&CertFiles> {
        self.clients
            .iter()
            .find(|(name, _)| name == user)
            .map(|(_, files)| files)
    }
}

/// Write a development PKI into `dir` (created if needed): `ca.pem` / `ca-key.pem`, the
/// server certificate `server.pem` / `server-key.pem` valid for `localhost`, `127.0.0.1`
/// and `extra_names`, and one client certificate per user of [`ADMIN_USER`] and
/// [`CONTROLLER_USERS`] (`admin.pem` / `admin-key.pem`, `scheduler.pem`, ...).
///
/// An existing CA in `dir` (both `ca.pem` and `ca-key.pem`) is reused, so that
/// certificates it issued before stay valid; every other file is replaced.
///
/// Blocking (file system, key generation): call it from synchronous code or
/// `spawn_blocking`.
pub fn write_dev_pki(dir: &Path, extra_names: &[String]) -> Result<DevPki, PkiError> {
    fs::create_dir_all(dir).map_err(|source| PkiError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let ca_cert = dir.join("ca.pem");
    let ca_key = dir.join("ca-key.pem");
    let ca = if ca_cert.is_file() && ca_key.is_file() {
        let read = |path: &Path| {
            fs::read_to_string(path).map_err(|source| PkiError::Io {
                path: path.to_path_buf(),
                source,
            })
        };
        CertificateAuthority::from_pem(&read(&ca_cert)?, &read(&ca_key)?)?
    } else {
        let ca = CertificateAuthority::new("Krake development CA")?;
        write_file(&ca_cert, ca.cert_pem(), false)?;
        write_file(&ca_key, &ca.key_pem(), true)?;
        ca
    };

    let mut names: Vec<String> = DEFAULT_SERVER_NAMES.iter().map(|s| s.to_string()).collect();
    for name in extra_names {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    let server = ca.issue_server("krake-api", &names)?.write(dir, "server")?;

    let mut clients = Vec::new();
    for user in std::iter::once(ADMIN_USER).chain(CONTROLLER_USERS) {
        let files = ca.issue_client(user)?.write(dir, &file_stem(user))?;
        clients.push((user.to_string(), files));
    }
    Ok(DevPki {
        dir: dir.to_path_buf(),
        ca_cert,
        ca_key,
        server,
        clients,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_stems() {
        assert_eq!(file_stem("system:admin"), "admin");
        assert_eq!(
            file_stem("system:kubernetes-application"),
            "kubernetes-application"
        );
        assert_eq!(file_stem("alice/../x y"), "alice_.._x_y");
    }

    #[test]
    fn writes_every_file_and_reuses_the_ca() {
        let dir = tempfile::tempdir().unwrap();
        let pki = write_dev_pki(dir.path(), &["krake.example".into()]).unwrap();
        assert_eq!(pki.clients.len(), 1 + CONTROLLER_USERS.len());
        for path in [&pki.ca_cert, &pki.ca_key, &pki.server.cert, &pki.server.key] {
            assert!(path.is_file(), "{}", path.display());
        }
        let admin = pki.client(ADMIN_USER).unwrap();
        assert_eq!(admin.cert, dir.path().join("admin.pem"));
        assert!(
            fs::read_to_string(&admin.key)
                .unwrap()
                .contains("PRIVATE KEY")
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&admin.key).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "key readable by others: {mode:o}");
        }
        let ca_before = fs::read(&pki.ca_cert).unwrap();
        let server_before = fs::read(&pki.server.cert).unwrap();
        write_dev_pki(dir.path(), &[]).unwrap();
        assert_eq!(fs::read(&pki.ca_cert).unwrap(), ca_before);
        assert_ne!(fs::read(&pki.server.cert).unwrap(), server_before);
    }
}
