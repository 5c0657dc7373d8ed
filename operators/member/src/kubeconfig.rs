//! Checking a Cluster's stored kubeconfig and turning it into a kube [`Config`], without
//! ever letting kube read a file, run a program or look at the environment.
//!
//! kube's own loaders (`Config::from_custom_kubeconfig`, `Config::try_from(Kubeconfig)`)
//! read `HTTPS_PROXY`/`https_proxy` and follow file paths, so they are not used: the
//! [`Config`] is built field by field from an allow-list of inline keys.

use std::fmt;

use base64::Engine as _;
use kube::Config;
use kube::config::AuthInfo;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::MemberError;

/// Keys of `users[].user` that are copied into the client's authentication; everything
/// else except the refused keys is ignored, as kube and kubectl ignore unknown keys.
const USER_KEYS: &[&str] = &[
    "token",
    "username",
    "password",
    "client-certificate-data",
    "client-key-data",
    "as",
    "as-uid",
    "as-groups",
];

/// How the client authenticates (for logs and `Debug`, without the credential).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// No credential.
    None,
    /// Bearer token.
    Token,
    /// HTTP basic authentication.
    Basic,
    /// TLS client certificate.
    ClientCertificate,
    /// TLS client certificate and a bearer token.
    ClientCertificateAndToken,
}

/// A checked kubeconfig: what is needed to build a client, credentials included.
///
/// Built only by [`MemberKubeconfig::parse`]. Its `Debug` output shows the server and
/// the kinds of credentials, never their values.
#[derive(Clone)]
pub struct MemberKubeconfig {
    server: String,
    namespace: String,
    root_certs: Option<Vec<Vec<u8>>>,
    insecure_skip_tls_verify: bool,
    tls_server_name: Option<String>,
    auth: AuthInfo,
    auth_method: AuthMethod,
    fingerprint: [u8; 32],
}

impl fmt::Debug for MemberKubeconfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemberKubeconfig")
            .field("server", &self.server)
            .field("namespace", &self.namespace)
            .field("certificate_authority", &self.root_certs.is_some())
            .field("insecure_skip_tls_verify", &self.insecure_skip_tls_verify)
            .field("tls_server_name", &self.tls_server_name)
            .field("auth", &self.auth_method)
            .finish_non_exhaustive()
    }
}

impl MemberKubeconfig {
    /// Check `kubeconfig` (a Cluster's `spec.kubeconfig`) and extract what a client
    /// needs.
    ///
    /// Refused (typed errors naming the key, never its value): every key of
    /// [`krake_crds::kubernetes::refused_kubeconfig_key`] (programs and host files),
    /// `proxy-url` (unsupported), a server URL with credentials in it, inline data that
    /// is not valid base64 PEM, half a client certificate.
    ///
    /// The context is `current-context`, or the only context when there is none.
    pub fn parse(kubeconfig: &Map<String, Value>) -> Result<Self, MemberError> {
        if let Some(key) = krake_crds::kubernetes::refused_kubeconfig_key(kubeconfig) {
            return Err(MemberError::RefusedKey { key });
        }
        let contexts = list(kubeconfig, "contexts")?;
        let context_name = match kubeconfig.get("current-context") {
            Some(Value::String(name)) if !name.is_empty() => name.clone(),
            None | Some(Value::Null) if contexts.len() == 1 => {
                string_at(contexts[0].get("name"), "contexts[0].name")?.to_string()
            }
            _ => return Err(invalid("current-context", "must name a context")),
        };
        let (ctx_index, ctx) = named(contexts, &context_name)
            .ok_or_else(|| invalid("current-context", "names no context of the kubeconfig"))?;
        let ctx_path = format!("contexts[{ctx_index}].context");
        let ctx = section(ctx, "context", &ctx_path)?;
        let cluster_name = string_at(ctx.get("cluster"), &format!("{ctx_path}.cluster"))?;
        let namespace = optional_string(ctx, "namespace", &format!("{ctx_path}.namespace"))?
            .filter(|ns| !ns.is_empty())
            .unwrap_or("default")
            .to_string();

        let clusters = list(kubeconfig, "clusters")?;
        let (cluster_index, cluster) = named(clusters, cluster_name).ok_or_else(|| {
            invalid(
                &format!("{ctx_path}.cluster"),
                "names no cluster of the kubeconfig",
            )
        })?;
        let cluster_path = format!("clusters[{cluster_index}].cluster");
        let cluster = section(cluster, "cluster", &cluster_path)?;

        let user = match optional_string(ctx, "user", &format!("{ctx_path}.user"))? {
            Some(user_name) if !user_name.is_empty() => {
                let users = list(kubeconfig, "users")?;
                let (user_index, user) = named(users, user_name).ok_or_else(|| {
                    invalid(
                        &format!("{ctx_path}.user"),
                        "names no user of the kubeconfig",
                    )
                })?;
                let user_path = format!("users[{user_index}].user");
                Some((section(user, "user", &user_path)?, user_path))
            }
            // Like kubectl, a context without user connects anonymously.
            _ => None,
        };

        let mut parsed = Self::cluster_part(cluster, &cluster_path, namespace)?;
        if let Some((user, user_path)) = user {
            parsed.user_part(user, &user_path)?;
        }
        parsed.fingerprint = fingerprint(kubeconfig);
        Ok(parsed)
    }

    fn cluster_part(
        cluster: &Map<String, Value>,
        path: &str,
        namespace: String,
    ) -> Result<Self, MemberError> {
        if cluster.get("proxy-url").is_some_and(|v| !v.is_null()) {
            return Err(MemberError::UnsupportedKey {
                key: format!("{path}.proxy-url"),
                why: "Krake connects to member clusters directly",
            });
        }
        let server_path = format!("{path}.server");
        let server = string_at(cluster.get("server"), &server_path)?;
        let url = Config::new(
            server
                .parse()
                .map_err(|_| invalid(&server_path, "is not a URL"))?,
        )
        .cluster_url;
        if !matches!(url.scheme_str(), Some("https" | "http")) {
            return Err(invalid(&server_path, "must be an http or https URL"));
        }
        if url.authority().is_none_or(|a| a.as_str().contains('@')) {
            return Err(invalid(
                &server_path,
                "must have a host and no credentials in the URL",
            ));
        }
        let root_certs = match optional_string(
            cluster,
            "certificate-authority-data",
            &format!("{path}.certificate-authority-data"),
        )? {
            None => None,
            Some(data) => {
                let key = format!("{path}.certificate-authority-data");
                let pem = decode_base64(data, &key)?;
                let certs = CertificateDer::pem_slice_iter(&pem)
                    .map(|c| c.map(|c| c.to_vec()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| invalid(&key, "is not base64-encoded PEM certificates"))?;
                if certs.is_empty() {
                    return Err(invalid(&key, "holds no PEM certificate"));
                }
                Some(certs)
            }
        };
        let insecure_skip_tls_verify = match cluster.get("insecure-skip-tls-verify") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(invalid(
                    &format!("{path}.insecure-skip-tls-verify"),
                    "must be a boolean",
                ));
            }
        };
        let tls_server_name = optional_string(
            cluster,
            "tls-server-name",
            &format!("{path}.tls-server-name"),
        )?
        .filter(|s| !s.is_empty())
        .map(str::to_string);
        Ok(MemberKubeconfig {
            server: server.to_string(),
            namespace,
            root_certs,
            insecure_skip_tls_verify,
            tls_server_name,
            auth: AuthInfo::default(),
            auth_method: AuthMethod::None,
            fingerprint: [0; 32],
        })
    }

    fn user_part(&mut self, user: &Map<String, Value>, path: &str) -> Result<(), MemberError> {
        let mut allowed = Map::new();
        for key in USER_KEYS {
            match user.get(*key) {
                None | Some(Value::Null) => {}
                Some(Value::String(s)) if *key != "as-groups" => {
                    allowed.insert((*key).to_string(), Value::String(s.clone()));
                }
                Some(Value::Array(items))
                    if *key == "as-groups" && items.iter().all(Value::is_string) =>
                {
                    allowed.insert((*key).to_string(), Value::Array(items.clone()));
                }
                Some(_) => {
                    let problem = if *key == "as-groups" {
                        "must be a list of strings"
                    } else {
                        "must be a string"
                    };
                    return Err(invalid(&format!("{path}.{key}"), problem));
                }
            }
        }
        let has = |key: &str| allowed.contains_key(key);
        match (has("client-certificate-data"), has("client-key-data")) {
            (true, true) => {
                let cert_key = format!("{path}.client-certificate-data");
                let pem = decode_base64(str_of(&allowed, "client-certificate-data"), &cert_key)?;
                let certs = CertificateDer::pem_slice_iter(&pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| invalid(&cert_key, "is not base64-encoded PEM certificates"))?;
                if certs.is_empty() {
                    return Err(invalid(&cert_key, "holds no PEM certificate"));
                }
                let key_key = format!("{path}.client-key-data");
                let pem = decode_base64(str_of(&allowed, "client-key-data"), &key_key)?;
                // Checked here so that a malformed key never reaches kube, whose PEM
                // errors may quote a line of it.
                PrivateKeyDer::from_pem_slice(&pem)
                    .map_err(|_| invalid(&key_key, "is not a base64-encoded PEM private key"))?;
            }
            (false, false) => {}
            (true, false) => {
                return Err(invalid(
                    &format!("{path}.client-key-data"),
                    "is missing (client-certificate-data needs it)",
                ));
            }
            (false, true) => {
                return Err(invalid(
                    &format!("{path}.client-certificate-data"),
                    "is missing (client-key-data needs it)",
                ));
            }
        }
        if has("password") && !has("username") {
            return Err(invalid(
                &format!("{path}.username"),
                "is missing (password needs it)",
            ));
        }
        self.auth_method = match (has("client-certificate-data"), has("token")) {
            (true, true) => AuthMethod::ClientCertificateAndToken,
            (true, false) => AuthMethod::ClientCertificate,
            (false, true) => AuthMethod::Token,
            (false, false) if has("username") => AuthMethod::Basic,
            (false, false) => AuthMethod::None,
        };
        // Only allow-listed string keys remain, so this cannot fail; the error, should
        // it happen, must not quote serde's message (it may contain a value).
        self.auth = serde_json::from_value(Value::Object(allowed))
            .map_err(|_| invalid(path, "has credentials of an unexpected shape"))?;
        Ok(())
    }

    /// The API server URL.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The context's namespace, `default` when it has none.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// How the client authenticates.
    pub fn auth_method(&self) -> AuthMethod {
        self.auth_method
    }

    /// Whether the kubeconfig disables TLS verification.
    pub fn insecure_skip_tls_verify(&self) -> bool {
        self.insecure_skip_tls_verify
    }

    /// SHA-256 of the kubeconfig with object keys sorted: equal for equal kubeconfigs,
    /// whatever the order of their keys.
    pub(crate) fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    /// A kube [`Config`] with the given timeouts, no retries and no proxy.
    pub(crate) fn to_config(&self, timeouts: &crate::Timeouts, read_timeout: bool) -> Config {
        // `parse` checked the URL.
        let mut config = Config::new(self.server.parse().unwrap_or_default());
        config.default_namespace = self.namespace.clone();
        config.root_cert = self.root_certs.clone();
        config.accept_invalid_certs = self.insecure_skip_tls_verify;
        config.tls_server_name = self.tls_server_name.clone();
        config.auth_info = self.auth.clone();
        config.connect_timeout = Some(timeouts.connect);
        config.read_timeout = read_timeout.then_some(timeouts.read);
        // The read timeout counts from the request, not from when a pooled connection
        // went idle.
        config.reset_reader_on_write = true;
        config.write_timeout = Some(timeouts.write);
        // Retries belong to the controllers' work queues (with per-key backoff); kube's
        // default layer would retry 429/503/504 up to 15 times behind their back.
        config.default_retry = false;
        config.proxy_url = None;
        config
    }
}

fn invalid(key: &str, problem: &'static str) -> MemberError {
    MemberError::InvalidKubeconfig {
        key: key.to_string(),
        problem,
    }
}

fn list<'a>(kubeconfig: &'a Map<String, Value>, key: &str) -> Result<&'a [Value], MemberError> {
    match kubeconfig.get(key) {
        Some(Value::Array(items)) => Ok(items),
        None | Some(Value::Null) => Err(invalid(key, "is missing")),
        Some(_) => Err(invalid(key, "must be a list")),
    }
}

fn named<'a>(items: &'a [Value], name: &str) -> Option<(usize, &'a Value)> {
    items
        .iter()
        .enumerate()
        .find(|(_, item)| item.get("name").and_then(Value::as_str) == Some(name))
}

fn section<'a>(
    item: &'a Value,
    key: &str,
    path: &str,
) -> Result<&'a Map<String, Value>, MemberError> {
    match item.get(key) {
        Some(Value::Object(map)) => Ok(map),
        None | Some(Value::Null) => Err(invalid(path, "is missing")),
        Some(_) => Err(invalid(path, "must be a mapping")),
    }
}

fn string_at<'a>(value: Option<&'a Value>, path: &str) -> Result<&'a str, MemberError> {
    match value {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        None | Some(Value::Null) => Err(invalid(path, "is missing")),
        Some(_) => Err(invalid(path, "must be a non-empty string")),
    }
}

fn optional_string<'a>(
    map: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a str>, MemberError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(path, "must be a string")),
    }
}

fn str_of<'a>(map: &'a Map<String, Value>, key: &str) -> &'a str {
    map.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn decode_base64(data: &str, key: &str) -> Result<Vec<u8>, MemberError> {
    base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|_| invalid(key, "is not valid base64"))
}

/// SHA-256 over a canonical encoding (object keys sorted).
fn fingerprint(kubeconfig: &Map<String, Value>) -> [u8; 32] {
    fn feed(value: &Value, hasher: &mut Sha256) {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                hasher.update(b"{");
                for key in keys {
                    feed(&Value::String(key.clone()), hasher);
                    hasher.update(b":");
                    feed(&map[key], hasher);
                    hasher.update(b",");
                }
                hasher.update(b"}");
            }
            Value::Array(items) => {
                hasher.update(b"[");
                for item in items {
                    feed(item, hasher);
                    hasher.update(b",");
                }
                hasher.update(b"]");
            }
            // Scalars: their JSON text, which is unambiguous.
            other => hasher.update(other.to_string().as_bytes()),
        }
    }
    let mut hasher = Sha256::new();
    feed(&Value::Object(kubeconfig.clone()), &mut hasher);
    hasher.finalize().into()
}
