//! Authentication, as a real API server with anonymous access off does it: a bearer token
//! from the token table, or a client certificate signed by the double's CA (its Common
//! Name is the user). A wrong token is 401 even with a good certificate, and a request
//! with no credential is 401.
//!
//! Also the double's PKI: a CA, the server certificate (IP SAN 127.0.0.1 and `localhost`)
//! and client certificates, all made in memory with rcgen.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::http::{HeaderMap, header};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::{Error, Reason, Result};

/// The identity of a TLS connection's verified client certificate, attached to each of its
/// requests.
#[derive(Debug, Clone, Default)]
pub struct PeerUser(pub Option<String>);

/// The bearer tokens the double accepts, with their users.
#[derive(Debug, Default)]
pub struct Tokens {
    tokens: RwLock<HashMap<String, String>>,
}

impl Tokens {
    /// Accept `token` as `user`.
    pub fn add(&self, token: &str, user: &str) {
        self.tokens
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token.into(), user.into());
    }

    /// The user of a request, or 401 `Unauthorized`.
    pub fn authenticate(&self, headers: &HeaderMap, peer: &PeerUser) -> Result<String> {
        let unauthorized = || Error::status(Reason::Unauthorized, "Unauthorized");
        if let Some(value) = headers.get(header::AUTHORIZATION) {
            let token = value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim)
                .ok_or_else(unauthorized)?;
            let tokens = self.tokens.read().unwrap_or_else(|p| p.into_inner());
            return tokens.get(token).cloned().ok_or_else(unauthorized);
        }
        peer.0.clone().ok_or_else(unauthorized)
    }
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

/// A certificate and its key, PEM.
#[derive(Clone)]
pub struct Issued {
    /// Certificate (PEM).
    pub cert_pem: String,
    /// Private key (PKCS#8 PEM).
    pub key_pem: String,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued").finish_non_exhaustive()
    }
}

/// The double's certificate authority.
pub struct Pki {
    issuer: Issuer<'static, KeyPair>,
    ca_pem: String,
    ca_der: CertificateDer<'static>,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki").finish_non_exhaustive()
    }
}

impl Pki {
    /// A new CA.
    pub fn new() -> Result<Self> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name("kube-double CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key)?;
        Ok(Pki {
            ca_pem: cert.pem(),
            ca_der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate (PEM).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    fn issue(&self, common_name: &str, mut params: CertificateParams) -> Result<Issued> {
        let key = KeyPair::generate()?;
        params.distinguished_name = name(common_name);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A server certificate for `names` (DNS names or IP addresses).
    pub fn issue_server(&self, names: &[String]) -> Result<Issued> {
        let mut params = CertificateParams::new(names.to_vec())?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue("kube-apiserver", params)
    }

    /// A client certificate whose Common Name is `user`.
    pub fn issue_client(&self, user: &str) -> Result<Issued> {
        let mut params = CertificateParams::default();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(user, params)
    }

    /// The rustls configuration: `server` as certificate, client certificates requested
    /// (optional) and verified against the CA, HTTP/2 and HTTP/1.1 offered.
    pub fn server_config(&self, server: &Issued) -> Result<Arc<ServerConfig>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone())?;
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .allow_unauthenticated()
                .build()
                .map_err(|e| Error::Tls(rustls::Error::General(e.to_string())))?;
        let certs = CertificateDer::pem_slice_iter(server.cert_pem.as_bytes())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::Tls(rustls::Error::General(e.to_string())))?;
        let key = PrivateKeyDer::from_pem_slice(server.key_pem.as_bytes())
            .map_err(|e| Error::Tls(rustls::Error::General(e.to_string())))?;
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
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
