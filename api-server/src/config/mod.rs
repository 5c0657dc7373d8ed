//! Configuration: upstream's `api.yaml` (accepted as is, `file.rs`), overridden by command
//! line flags and environment variables (`cli.rs`). Everything is validated before the
//! server starts, so a wrong setting stops `krake-api` with a one-line reason.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod cli;
mod file;

use crate::storage::etcd;

pub use cli::{Cli, LogFormat, StorageKind};
pub use file::{
    AuthenticationSection, DocsSection, EtcdSection, FileConfig, LogSection, OidcSection,
    ProviderSection, StaticSection, StrategySection, TlsSection,
};

/// Upstream's default base of problem `type` URIs.
pub const DEFAULT_PROBLEM_BASE_URL: &str =
    "https://rak-n-rok.readthedocs.io/projects/krake/en/latest/user/problem.html";

/// Default bytes of events each watch cache keeps, per kind.
pub const DEFAULT_WATCH_CACHE_BYTES: usize = 16 * 1024 * 1024;

/// Smallest `--etcd-max-request-bytes`: leaves room for objects after the envelope.
const MIN_ETCD_MAX_REQUEST_BYTES: usize = 64 * 1024;

/// Smallest `--watch-cache-bytes`.
const MIN_WATCH_CACHE_BYTES: usize = 64 * 1024;
/// Default of `--header-read-timeout`.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Default of `--idle-timeout`.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Default of `--body-read-timeout` (never above the request timeout).
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Default of `--max-connections` (lowered to what the open-file limit allows).
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Default of `--shutdown-drain-timeout`: within the 30 s Kubernetes gives a pod to stop.
pub const DEFAULT_SHUTDOWN_DRAIN_TIMEOUT: Duration = Duration::from_secs(25);
/// File descriptors kept for everything but client connections (listener, storage,
/// identity providers, TLS files, logs).
pub const RESERVED_FILE_DESCRIPTORS: u64 = 64;

/// Authorization mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorizationMode {
    /// Every request is allowed.
    AlwaysAllow,
    /// Every resource request is denied.
    AlwaysDeny,
    /// Krake Roles and RoleBindings.
    Rbac,
}

/// HTTPS serving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// Server certificate chain (PEM).
    pub cert: PathBuf,
    /// Server private key (PEM).
    pub key: PathBuf,
    /// CA bundle for client certificates; client-certificate authentication when set.
    pub client_ca: Option<PathBuf>,
}

/// Keystone token authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeystoneConfig {
    /// Keystone v3 endpoint.
    pub endpoint: String,
}

/// Keycloak token authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeycloakConfig {
    /// Keycloak base URL.
    pub endpoint: String,
    /// Realm.
    pub realm: String,
}

/// OpenID Connect JWT authentication, verified locally against the issuer's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcConfig {
    /// Issuer (`iss`).
    pub issuer: String,
    /// Audience (`aud`).
    pub audience: String,
    /// Claim holding the user name.
    pub username_claim: String,
    /// JWKS URL; `None`: discovered from the issuer.
    pub jwks_uri: Option<String>,
}

/// Where objects are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageConfig {
    /// etcd at these endpoints.
    Etcd {
        /// Endpoint URLs.
        endpoints: Vec<String>,
        /// etcd's `--max-request-bytes`, from which the largest storable object is derived.
        max_request_bytes: usize,
    },
    /// The embedded store in this directory.
    Embedded {
        /// Data directory.
        data_dir: PathBuf,
        /// Changes kept for watch resumption. Objects are limited to
        /// [`crate::storage::embedded::DEFAULT_MAX_VALUE_BYTES`], what an etcd with its
        /// default limit stores, so that data moves between the backends.
        history_limit: usize,
    },
}

/// The validated configuration the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to bind.
    pub bind: SocketAddr,
    /// Storage backend.
    pub storage: StorageConfig,
    /// Extra attempts after a conflicting concurrent write.
    pub retry_transactions: u32,
    /// Base of problem `type` URIs.
    pub problem_base_url: String,
    /// Serve unauthenticated requests as `system:anonymous`.
    pub allow_anonymous: bool,
    /// Static authenticator: every request is this user.
    pub static_user: Option<String>,
    /// The one CORS origin allowed (`*` for any).
    pub cors_origin: String,
    /// Authorization mode.
    pub authorization: AuthorizationMode,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter.
    pub log_level: String,
    /// Time limit of one non-watch request.
    pub request_timeout: Duration,
    /// Time limit of a `blocking` request.
    pub blocking_timeout: Duration,
    /// Events each watch cache keeps for resumption (per kind).
    pub watch_cache_events: usize,
    /// Bytes of rendered events each watch cache keeps for resumption (per kind).
    pub watch_cache_bytes: usize,
    /// How long a watcher may stop reading before it is disconnected.
    pub watch_send_timeout: Duration,
    /// HTTPS serving; plain HTTP when `None`.
    pub tls: Option<TlsConfig>,
    /// Keystone authentication.
    pub keystone: Option<KeystoneConfig>,
    /// Keycloak authentication.
    pub keycloak: Option<KeycloakConfig>,
    /// OpenID Connect JWT authentication.
    pub oidc: Option<OidcConfig>,
    /// How long identity-provider answers are cached.
    pub identity_cache_ttl: Duration,
    /// Time a client may take to send a request's headers.
    pub header_read_timeout: Duration,
    /// Time a keep-alive connection may stay without any request.
    pub idle_timeout: Duration,
    /// Time a client may take to send a request body (408 beyond).
    pub body_read_timeout: Duration,
    /// Connections served at once (503 beyond).
    pub max_connections: usize,
    /// Settings accepted but ignored (e.g. an invalid endpoint of a disabled
    /// authentication strategy), one line each, for the log once logging is set up.
    pub warnings: Vec<String>,
    /// Time a graceful shutdown waits for requests before closing what remains.
    pub shutdown_drain_timeout: Duration,
}

impl Config {
    /// Defaults for local use and tests: loopback, free port, embedded store in `data_dir`,
    /// anonymous access, everything allowed.
    pub fn for_embedded(data_dir: impl Into<PathBuf>) -> Self {
        Config {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            storage: StorageConfig::Embedded {
                data_dir: data_dir.into(),
                history_limit: 10_000,
            },
            retry_transactions: 1,
            problem_base_url: DEFAULT_PROBLEM_BASE_URL.to_string(),
            allow_anonymous: true,
            static_user: None,
            cors_origin: "*".to_string(),
            authorization: AuthorizationMode::AlwaysAllow,
            log_format: LogFormat::Text,
            log_level: "info".to_string(),
            request_timeout: Duration::from_secs(60),
            blocking_timeout: Duration::from_secs(60),
            watch_cache_events: 4096,
            watch_cache_bytes: DEFAULT_WATCH_CACHE_BYTES,
            watch_send_timeout: Duration::from_secs(30),
            tls: None,
            keystone: None,
            keycloak: None,
            oidc: None,
            identity_cache_ttl: Duration::from_secs(30),
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            shutdown_drain_timeout: DEFAULT_SHUTDOWN_DRAIN_TIMEOUT,
            warnings: Vec::new(),
        }
    }

    /// Build the configuration from the command line (and environment), reading the
    /// configuration file it names or finds.
    pub fn load(cli: &Cli) -> Result<Config, ConfigError> {
        let file = match &cli.config {
            Some(path) => Some(FileConfig::read(path)?),
            None => ["api.yaml", "/etc/krake/api.yaml"]
                .iter()
                .map(Path::new)
                .find(|p| p.is_file())
                .map(FileConfig::read)
                .transpose()?,
        };
        Config::from_parts(cli, file)
    }

    /// Merge a parsed file (if any) with the command line, then validate. Flags and
    /// environment variables win over the file, the file over the defaults.
    pub fn from_parts(cli: &Cli, file: Option<FileConfig>) -> Result<Config, ConfigError> {
        let has_file = file.is_some();
        let file = file.unwrap_or_default();
        let mut config = Config::for_embedded(data_dir(cli));

        let host = cli
            .host
            .clone()
            .or(file.host)
            .unwrap_or_else(|| "localhost".into());
        let port = cli.port.or(file.port).unwrap_or(8080);
        config.bind = resolve_bind(&host, port)?;

        let etcd = file.etcd.unwrap_or_default();
        config.storage = storage(cli, &etcd)?;
        config.retry_transactions = cli
            .etcd_retry_transactions
            .or(etcd.retry_transactions)
            .unwrap_or(1);

        let docs = file.docs.unwrap_or_default();
        config.problem_base_url = cli
            .docs_problem_base_url
            .clone()
            .or(docs.problem_base_url)
            .unwrap_or_else(|| DEFAULT_PROBLEM_BASE_URL.to_string());

        config.tls = tls(cli, file.tls.unwrap_or_default())?;
        authentication(
            &mut config,
            cli,
            file.authentication.unwrap_or_default(),
            has_file,
        )?;
        config.authorization = authorization(cli, file.authorization)?;
        logging(&mut config, cli, file.log.as_ref())?;
        limits(&mut config, cli)?;
        connection_limits(&mut config, cli, open_file_limit())?;
        Ok(config)
    }
}

fn data_dir(cli: &Cli) -> PathBuf {
    cli.data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("krake-data"))
}

/// The storage backend: etcd when asked for, or when any etcd endpoint, host or port is
/// configured; the embedded store otherwise.
fn storage(cli: &Cli, etcd: &EtcdSection) -> Result<StorageConfig, ConfigError> {
    let endpoints = if !cli.etcd_endpoints.is_empty() {
        cli.etcd_endpoints.clone()
    } else if cli.etcd_host.is_some()
        || cli.etcd_port.is_some()
        || etcd.host.is_some()
        || etcd.port.is_some()
    {
        let host = cli
            .etcd_host
            .clone()
            .or(etcd.host.clone())
            .unwrap_or_else(|| "127.0.0.1".into());
        let port = cli.etcd_port.or(etcd.port).unwrap_or(2379);
        vec![format!("http://{host}:{port}")]
    } else {
        Vec::new()
    };
    let kind = cli.storage.unwrap_or(if endpoints.is_empty() {
        StorageKind::Embedded
    } else {
        StorageKind::Etcd
    });
    match kind {
        StorageKind::Etcd => {
            let endpoints = if endpoints.is_empty() {
                vec!["http://127.0.0.1:2379".to_string()]
            } else {
                endpoints
            };
            for e in &endpoints {
                if !(e.starts_with("http://") || e.starts_with("https://"))
                    || e.len() <= "https://".len()
                {
                    return Err(ConfigError::new(format!(
                        "etcd endpoint '{e}' must be an http:// or https:// URL"
                    )));
                }
            }
            let max_request_bytes = cli
                .etcd_max_request_bytes
                .unwrap_or(etcd::DEFAULT_MAX_REQUEST_BYTES);
            if max_request_bytes < MIN_ETCD_MAX_REQUEST_BYTES {
                return Err(ConfigError::new(format!(
                    "etcd max request bytes must be at least {MIN_ETCD_MAX_REQUEST_BYTES} (set it to etcd's --max-request-bytes)"
                )));
            }
            Ok(StorageConfig::Etcd {
                endpoints,
                max_request_bytes,
            })
        }
        StorageKind::Embedded => {
            let history_limit = cli.history_limit.unwrap_or(10_000);
            if history_limit == 0 {
                return Err(ConfigError::new("history limit must be at least 1"));
            }
            Ok(StorageConfig::Embedded {
                data_dir: data_dir(cli),
                history_limit,
            })
        }
    }
}

fn tls(cli: &Cli, tls: TlsSection) -> Result<Option<TlsConfig>, ConfigError> {
    if !cli.tls_enabled.or(tls.enabled).unwrap_or(false) {
        return Ok(None);
    }
    let cert = cli.tls_cert.clone().or(tls.cert.map(PathBuf::from));
    let key = cli.tls_key.clone().or(tls.key.map(PathBuf::from));
    let client_ca = cli
        .tls_client_ca
        .clone()
        .or(tls.client_ca.map(PathBuf::from))
        .filter(|p| !p.as_os_str().is_empty());
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some(TlsConfig {
            cert,
            key,
            client_ca,
        })),
        _ => Err(ConfigError::new(
            "tls: enabled without both a certificate (tls.cert) and a key (tls.key)",
        )),
    }
}

/// Anonymous access, CORS and the authenticators.
fn authentication(
    config: &mut Config,
    cli: &Cli,
    authn: AuthenticationSection,
    has_file: bool,
) -> Result<(), ConfigError> {
    // Without any configuration file the server is a local development instance:
    // anonymous access is the only way in. With a file, upstream's default (false) holds.
    config.allow_anonymous = cli
        .authentication_allow_anonymous
        .or(authn.allow_anonymous)
        .unwrap_or(!has_file);
    config.cors_origin = cli
        .authentication_cors_origin
        .clone()
        .or(authn.cors_origin)
        .unwrap_or_else(|| "*".into());
    let strategy = authn.strategy.unwrap_or_default();
    let enabled = |p: &Option<ProviderSection>| p.as_ref().and_then(|p| p.enabled).unwrap_or(false);
    let keystone = strategy.keystone.clone().unwrap_or_default();
    config.keystone = cli
        .keystone_endpoint
        .clone()
        .or_else(|| {
            enabled(&strategy.keystone).then(|| {
                keystone
                    .endpoint
                    .unwrap_or_else(|| "http://localhost:5000/v3".into())
            })
        })
        .map(|endpoint| KeystoneConfig { endpoint });
    let keycloak = strategy.keycloak.clone().unwrap_or_default();
    config.keycloak = cli
        .keycloak_endpoint
        .clone()
        .or_else(|| {
            enabled(&strategy.keycloak).then(|| {
                keycloak
                    .endpoint
                    .clone()
                    .unwrap_or_else(|| "http://localhost:9080".into())
            })
        })
        .map(|endpoint| KeycloakConfig {
            endpoint,
            realm: cli
                .keycloak_realm
                .clone()
                .or(keycloak.realm)
                .unwrap_or_else(|| "krake".into()),
        });
    config.oidc = oidc(cli, strategy.oidc.clone().unwrap_or_default())?;
    check_provider_urls(config)?;
    warn_about_disabled_strategies(config, &strategy);
    if let Some(s) = strategy.r#static
        && s.enabled.unwrap_or(false)
    {
        config.static_user = Some(s.name.unwrap_or_else(|| "system".into()));
    }
    if let Some(user) = &cli.static_user {
        config.static_user = Some(user.clone());
    }
    if let Some(ttl) = cli.identity_cache_ttl {
        config.identity_cache_ttl = Duration::from_secs(ttl);
    }
    Ok(())
}

fn oidc(cli: &Cli, oidc: OidcSection) -> Result<Option<OidcConfig>, ConfigError> {
    let issuer = cli.oidc_issuer.clone().or_else(|| {
        oidc.enabled
            .unwrap_or(false)
            .then(|| oidc.issuer.clone())
            .flatten()
    });
    if oidc.enabled.unwrap_or(false) && issuer.is_none() {
        return Err(ConfigError::new(
            "authentication.strategy.oidc: enabled without an issuer",
        ));
    }
    let Some(issuer) = issuer else {
        return Ok(None);
    };
    let audience =
        cli.oidc_audience.clone().or(oidc.audience).ok_or_else(|| {
            ConfigError::new("authentication.strategy.oidc: an audience is required")
        })?;
    Ok(Some(OidcConfig {
        issuer,
        audience,
        username_claim: cli
            .oidc_username_claim
            .clone()
            .or(oidc.username_claim)
            .unwrap_or_else(|| "preferred_username".into()),
        jwks_uri: cli.oidc_jwks_uri.clone().or(oidc.jwks_uri),
    }))
}

/// Why `url` cannot be an identity provider's URL, if it cannot.
fn http_url_problem(url: &str) -> Option<&'static str> {
    match url.parse::<axum::http::Uri>() {
        Err(_) => Some("is not a valid URL"),
        Ok(uri) if !matches!(uri.scheme_str(), Some("http" | "https")) => {
            Some("must be an http:// or https:// URL")
        }
        Ok(uri) if uri.host().is_none_or(str::is_empty) => Some("has no host"),
        Ok(_) => None,
    }
}

/// Upstream only reads the endpoint of an enabled strategy, and its own configurations
/// leave placeholders in disabled ones: those are accepted, with a warning.
fn warn_about_disabled_strategies(config: &mut Config, strategy: &StrategySection) {
    let keystone = strategy.keystone.as_ref();
    let keycloak = strategy.keycloak.as_ref();
    let oidc = strategy.oidc.as_ref();
    let unused = [
        (
            "keystone.endpoint",
            config.keystone.is_none(),
            keystone.and_then(|k| k.endpoint.as_deref()),
        ),
        (
            "keycloak.endpoint",
            config.keycloak.is_none(),
            keycloak.and_then(|k| k.endpoint.as_deref()),
        ),
        (
            "oidc.issuer",
            config.oidc.is_none(),
            oidc.and_then(|o| o.issuer.as_deref()),
        ),
        (
            "oidc.jwks_uri",
            config.oidc.is_none(),
            oidc.and_then(|o| o.jwks_uri.as_deref()),
        ),
    ];
    for (key, disabled, url) in unused {
        if let Some(url) = url
            && disabled
            && let Some(problem) = http_url_problem(url)
        {
            config.warnings.push(format!(
                "authentication.strategy.{key} '{url}' {problem}; ignored, the strategy is disabled"
            ));
        }
    }
}

/// Identity provider URLs of enabled strategies must be HTTP(S) URLs.
fn check_provider_urls(config: &Config) -> Result<(), ConfigError> {
    for (name, url) in [
        (
            "keystone endpoint",
            config.keystone.as_ref().map(|k| k.endpoint.as_str()),
        ),
        (
            "keycloak endpoint",
            config.keycloak.as_ref().map(|k| k.endpoint.as_str()),
        ),
        (
            "oidc issuer",
            config.oidc.as_ref().map(|o| o.issuer.as_str()),
        ),
        (
            "oidc jwks uri",
            config.oidc.as_ref().and_then(|o| o.jwks_uri.as_deref()),
        ),
    ] {
        if let Some(url) = url
            && let Some(problem) = http_url_problem(url)
        {
            return Err(ConfigError::new(format!("{name} '{url}' {problem}")));
        }
    }
    Ok(())
}

fn authorization(cli: &Cli, file: Option<String>) -> Result<AuthorizationMode, ConfigError> {
    let authorization = cli
        .authorization
        .clone()
        .or(file)
        .unwrap_or_else(|| "always-allow".into());
    match authorization.as_str() {
        "always-allow" => Ok(AuthorizationMode::AlwaysAllow),
        "always-deny" => Ok(AuthorizationMode::AlwaysDeny),
        "RBAC" => Ok(AuthorizationMode::Rbac),
        other => Err(ConfigError::new(format!(
            "authorization: Unknown authorization strategy '{other}'"
        ))),
    }
}

/// Log format and filter; upstream's Python level names are accepted.
fn logging(config: &mut Config, cli: &Cli, log: Option<&LogSection>) -> Result<(), ConfigError> {
    config.log_format = cli.log_format.unwrap_or_default();
    let level = cli
        .log_level
        .clone()
        .or_else(|| log.and_then(|l| l.level.clone()).map(|l| l.to_lowercase()))
        .unwrap_or_else(|| "info".into());
    config.log_level = match level.as_str() {
        "warning" => "warn".into(),
        "critical" => "error".into(),
        _ => level,
    };
    if tracing_subscriber::EnvFilter::try_new(&config.log_level).is_err() {
        return Err(ConfigError::new(format!(
            "log level '{}' is not a valid level or filter",
            config.log_level
        )));
    }
    Ok(())
}

/// Time limits and watch cache size (flags only; upstream has none of them). The body size
/// limit is the store's (see [`StorageConfig`]).
fn limits(config: &mut Config, cli: &Cli) -> Result<(), ConfigError> {
    let seconds = |value: Option<u64>, what: &str| match value {
        Some(0) => Err(ConfigError::new(format!(
            "{what} must be at least 1 second"
        ))),
        other => Ok(other.map(Duration::from_secs)),
    };
    if let Some(d) = seconds(cli.request_timeout, "request timeout")? {
        config.request_timeout = d;
    }
    if let Some(d) = seconds(cli.blocking_timeout, "blocking timeout")? {
        config.blocking_timeout = d;
    }
    if let Some(n) = cli.watch_cache_events {
        if n == 0 {
            return Err(ConfigError::new(
                "watch cache size must be at least 1 event",
            ));
        }
        config.watch_cache_events = n;
    }
    if let Some(n) = cli.watch_cache_bytes {
        if n < MIN_WATCH_CACHE_BYTES {
            return Err(ConfigError::new(format!(
                "watch cache bytes must be at least {MIN_WATCH_CACHE_BYTES}"
            )));
        }
        config.watch_cache_bytes = n;
    }
    if let Some(d) = seconds(cli.watch_send_timeout, "watch send timeout")? {
        config.watch_send_timeout = d;
    }
    Ok(())
}

/// Header, idle, body and drain times and the connection bound (flags only; upstream has
/// none of them). `fd_limit` is the process's open-file limit, when known.
fn connection_limits(
    config: &mut Config,
    cli: &Cli,
    fd_limit: Option<u64>,
) -> Result<(), ConfigError> {
    let seconds = |value: Option<u64>, what: &str| match value {
        Some(0) => Err(ConfigError::new(format!(
            "{what} must be at least 1 second"
        ))),
        other => Ok(other.map(Duration::from_secs)),
    };
    if let Some(d) = seconds(cli.header_read_timeout, "header read timeout")? {
        config.header_read_timeout = d;
    }
    if let Some(d) = seconds(cli.idle_timeout, "idle timeout")? {
        config.idle_timeout = d;
    }
    if let Some(d) = seconds(cli.shutdown_drain_timeout, "shutdown drain timeout")? {
        config.shutdown_drain_timeout = d;
    }
    // A body still arriving when the request's own time limit expires would get 503: the
    // body limit must expire first for the client to get its 408.
    config.body_read_timeout = match seconds(cli.body_read_timeout, "body read timeout")? {
        Some(d) if d > config.request_timeout => {
            return Err(ConfigError::new(format!(
                "body read timeout ({} s) must not exceed the request timeout ({} s)",
                d.as_secs(),
                config.request_timeout.as_secs()
            )));
        }
        Some(d) => d,
        None => DEFAULT_BODY_READ_TIMEOUT.min(config.request_timeout),
    };
    // Each connection holds a descriptor: beyond the open-file limit `accept` fails and
    // nobody, not even a probe, gets an answer.
    let budget = fd_limit.map(|l| {
        usize::try_from(l.saturating_sub(RESERVED_FILE_DESCRIPTORS)).unwrap_or(usize::MAX)
    });
    config.max_connections = match (cli.max_connections, budget) {
        (Some(0), _) => {
            return Err(ConfigError::new("max connections must be at least 1"));
        }
        (Some(n), Some(budget)) if n > budget => {
            return Err(ConfigError::new(format!(
                "max connections ({n}) exceed the open-file limit ({}) minus {RESERVED_FILE_DESCRIPTORS} descriptors kept for the server itself",
                fd_limit.unwrap_or_default()
            )));
        }
        (Some(n), _) => n,
        (None, Some(0)) => {
            return Err(ConfigError::new(format!(
                "the open-file limit ({}) leaves no descriptor for connections",
                fd_limit.unwrap_or_default()
            )));
        }
        (None, Some(budget)) => DEFAULT_MAX_CONNECTIONS.min(budget),
        (None, None) => DEFAULT_MAX_CONNECTIONS,
    };
    Ok(())
}

/// The soft open-file limit of the process, when the platform tells.
fn open_file_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        rustix::process::getrlimit(rustix::process::Resource::Nofile).current
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Raise the soft open-file limit to the hard one, as Go programs (kube-apiserver among
/// them) do at start: the soft default (often 1024) is a compatibility limit for
/// `select(2)`, which nothing here uses. Call before loading the configuration, whose
/// connection bound depends on the limit.
pub fn raise_open_file_limit() {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, getrlimit, setrlimit};
        let limit = getrlimit(Resource::Nofile);
        if limit.current < limit.maximum
            && let Err(e) = setrlimit(
                Resource::Nofile,
                rustix::process::Rlimit {
                    current: limit.maximum,
                    maximum: limit.maximum,
                },
            )
        {
            // Not fatal: the connection bound follows the limit in force.
            eprintln!("krake-api: cannot raise the open-file limit: {e}");
        }
    }
}

fn resolve_bind(host: &str, port: u16) -> Result<SocketAddr, ConfigError> {
    use std::net::ToSocketAddrs;
    // Resolving `localhost` is a local lookup (hosts file), done once at start.
    (host, port)
        .to_socket_addrs()
        .map_err(|e| ConfigError::new(format!("host '{host}': cannot be resolved: {e}")))?
        .next()
        .ok_or_else(|| ConfigError::new(format!("host '{host}': no address")))
}

/// A configuration error: the one-line reason the server refuses to start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    fn new(message: impl Into<String>) -> Self {
        ConfigError(message.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UPSTREAM: &str = r#"
port: 8443
host: 0.0.0.0
etcd:
  host: 127.0.0.1
  port: 2379
  retry_transactions: 3
docs:
  problem_base_url: http://example.com/problem
tls:
  enabled: false
  cert: tmp/pki/system:api-server.pem
  key: tmp/pki/system:api-server-key.pem
  client_ca: tmp/pki/ca.pem
authentication:
  allow_anonymous: true
  cors-origin: http://example.com
  strategy:
    keystone:
      enabled: false
      endpoint: http://localhost:5000/v3
    keycloak:
      enabled: false
      endpoint: http://localhost:9080
      realm: krake
    static:
      enabled: true
      name: system:admin
authorization: always-allow
default-roles: []
default-role-bindings: []
log:
  version: 1
  level: INFO
  disable_existing_loggers: false
  formatters:
    krake:
      format: "%(asctime)s - [%(name)s] - [%(levelname)-5s] - %(message)s"
  handlers:
    console:
      class: logging.StreamHandler
      formatter: krake
      stream: ext://sys.stdout
"#;

    #[test]
    fn upstream_api_yaml_is_accepted_as_is() {
        let file = FileConfig::parse(UPSTREAM).unwrap();
        let config = Config::from_parts(&Cli::default(), Some(file)).unwrap();
        assert_eq!(config.bind.port(), 8443);
        assert_eq!(
            config.storage,
            StorageConfig::Etcd {
                endpoints: vec!["http://127.0.0.1:2379".into()],
                max_request_bytes: etcd::DEFAULT_MAX_REQUEST_BYTES,
            }
        );
        assert_eq!(config.retry_transactions, 3);
        assert_eq!(config.problem_base_url, "http://example.com/problem");
        assert!(config.allow_anonymous);
        assert_eq!(config.cors_origin, "http://example.com");
        assert_eq!(config.static_user.as_deref(), Some("system:admin"));
        assert_eq!(config.log_level, "info");
    }

    #[test]
    fn flags_win_over_the_file() {
        let file = FileConfig::parse(UPSTREAM).unwrap();
        let cli = Cli {
            port: Some(9000),
            etcd_endpoints: vec!["http://etcd-0:2379".into(), "http://etcd-1:2379".into()],
            authorization: Some("always-deny".into()),
            ..Cli::default()
        };
        let config = Config::from_parts(&cli, Some(file)).unwrap();
        assert_eq!(config.bind.port(), 9000);
        assert_eq!(
            config.storage,
            StorageConfig::Etcd {
                endpoints: vec!["http://etcd-0:2379".into(), "http://etcd-1:2379".into()],
                max_request_bytes: etcd::DEFAULT_MAX_REQUEST_BYTES,
            }
        );
        assert_eq!(config.authorization, AuthorizationMode::AlwaysDeny);
    }

    #[test]
    fn the_etcd_request_limit_is_configurable() {
        let cli = Cli {
            storage: Some(StorageKind::Etcd),
            etcd_max_request_bytes: Some(10 * 1024 * 1024),
            watch_cache_bytes: Some(1 << 20),
            ..Cli::default()
        };
        let config = Config::from_parts(&cli, None).unwrap();
        assert_eq!(
            config.storage,
            StorageConfig::Etcd {
                endpoints: vec!["http://127.0.0.1:2379".into()],
                max_request_bytes: 10 * 1024 * 1024,
            }
        );
        assert_eq!(config.watch_cache_bytes, 1 << 20);
    }

    #[test]
    fn no_file_means_embedded_store_and_anonymous_access() {
        let config = Config::from_parts(&Cli::default(), None).unwrap();
        assert!(matches!(config.storage, StorageConfig::Embedded { .. }));
        assert!(config.allow_anonymous);
        assert_eq!(config.authorization, AuthorizationMode::AlwaysAllow);
    }

    #[test]
    fn a_file_without_allow_anonymous_denies_anonymous_like_upstream() {
        let file = FileConfig::parse("etcd: {}\nauthorization: always-allow\n").unwrap();
        let config = Config::from_parts(&Cli::default(), Some(file)).unwrap();
        assert!(!config.allow_anonymous);
    }

    #[test]
    fn invalid_settings_give_one_line_reasons() {
        let cases: Vec<(&str, Cli)> = vec![
            ("authorization: bogus\n", Cli::default()),
            ("tls: {enabled: true}\n", Cli::default()),
            (
                "authentication: {strategy: {oidc: {enabled: true}}}\n",
                Cli::default(),
            ),
            (
                "{}",
                Cli {
                    keystone_endpoint: Some("keystone:5000".into()),
                    ..Cli::default()
                },
            ),
            ("port: notaport\n", Cli::default()),
            ("- a\n- b\n", Cli::default()),
            ("port: [1\n", Cli::default()),
            (
                "{}",
                Cli {
                    etcd_endpoints: vec!["etcd:2379".into()],
                    ..Cli::default()
                },
            ),
            (
                "{}",
                Cli {
                    log_level: Some("loud[".into()),
                    ..Cli::default()
                },
            ),
            (
                "{}",
                Cli {
                    storage: Some(StorageKind::Etcd),
                    etcd_max_request_bytes: Some(10),
                    ..Cli::default()
                },
            ),
            (
                "{}",
                Cli {
                    watch_cache_bytes: Some(10),
                    ..Cli::default()
                },
            ),
        ];
        for (yaml, cli) in cases {
            let err = FileConfig::parse(yaml)
                .and_then(|f| Config::from_parts(&cli, Some(f)))
                .unwrap_err();
            assert!(!err.to_string().contains('\n'), "{err}");
            assert!(
                err.to_string().starts_with("invalid configuration: "),
                "{err}"
            );
        }
        let err = FileConfig::parse("authorization: bogus\n")
            .and_then(|f| Config::from_parts(&Cli::default(), Some(f)))
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("Unknown authorization strategy 'bogus'")
        );
    }
    /// Upstream's configuration shape with placeholders in the disabled strategies, as
    /// upstream's own test configurations have.
    const UPSTREAM_DISABLED_STRATEGIES: &str = r#"
etcd: {host: 127.0.0.1, port: 2379}
docs: {problem_base_url: ""}
tls: {enabled: false, cert: cert_path, key: key_path, client_ca: client_ca_path}
authentication:
  allow_anonymous: true
  strategy:
    keystone: {enabled: false, endpoint: "not a url"}
    keycloak: {enabled: "false", endpoint: "http://[::1", realm: krake}
    oidc: {enabled: no, issuer: "issuer without scheme", jwks_uri: "ftp://keys"}
    static: {enabled: true, name: testuser}
authorization: always-allow
log: {version: 1, level: INFO}
"#;

    #[test]
    fn invalid_endpoints_of_disabled_strategies_are_accepted_with_a_warning() {
        let file = FileConfig::parse(UPSTREAM_DISABLED_STRATEGIES).unwrap();
        let config = Config::from_parts(&Cli::default(), Some(file)).unwrap();
        assert_eq!(config.keystone, None);
        assert_eq!(config.keycloak, None);
        assert_eq!(config.oidc, None);
        assert_eq!(config.static_user.as_deref(), Some("testuser"));
        let warnings = config.warnings.join("\n");
        for key in [
            "keystone.endpoint 'not a url'",
            "keycloak.endpoint 'http://[::1'",
            "oidc.issuer 'issuer without scheme'",
            "oidc.jwks_uri 'ftp://keys'",
        ] {
            assert!(warnings.contains(key), "no warning about {key}: {warnings}");
        }
        assert_eq!(config.warnings.len(), 4, "{warnings}");
        // Valid placeholders are no reason for a warning.
        let file = FileConfig::parse(UPSTREAM).unwrap();
        let config = Config::from_parts(&Cli::default(), Some(file)).unwrap();
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    }

    #[test]
    fn enabled_strategies_with_invalid_endpoints_are_refused() {
        for yaml in [
            "authentication: {strategy: {keystone: {enabled: true, endpoint: 'not a url'}}}",
            "authentication: {strategy: {keycloak: {enabled: 'yes', endpoint: 'http://[::1'}}}",
            "authentication: {strategy: {keystone: {enabled: 1, endpoint: 'http://'}}}",
            "authentication: {strategy: {oidc: {enabled: true, issuer: 'https://i', audience: a, jwks_uri: 'x y'}}}",
        ] {
            let err = FileConfig::parse(yaml)
                .and_then(|f| Config::from_parts(&Cli::default(), Some(f)))
                .unwrap_err()
                .to_string();
            assert!(!err.contains('\n'), "{err}");
            assert!(
                err.contains("URL") || err.contains("has no host"),
                "{yaml}: {err}"
            );
        }
        let err = FileConfig::parse("authentication: {strategy: {keystone: {enabled: maybe}}}")
            .unwrap_err();
        assert!(err.0.contains("not a valid boolean"), "{}", err.0);
    }

    #[test]
    fn connection_limits_have_defaults_and_are_validated() {
        let config = Config::from_parts(&Cli::default(), None).unwrap();
        assert_eq!(config.header_read_timeout, DEFAULT_HEADER_READ_TIMEOUT);
        assert_eq!(config.idle_timeout, DEFAULT_IDLE_TIMEOUT);
        assert_eq!(config.body_read_timeout, DEFAULT_BODY_READ_TIMEOUT);
        assert_eq!(
            config.shutdown_drain_timeout,
            DEFAULT_SHUTDOWN_DRAIN_TIMEOUT
        );
        assert!(config.max_connections >= 1);

        let cli = Cli {
            header_read_timeout: Some(2),
            idle_timeout: Some(3),
            body_read_timeout: Some(4),
            max_connections: Some(5),
            shutdown_drain_timeout: Some(6),
            ..Cli::default()
        };
        let config = Config::from_parts(&cli, None).unwrap();
        assert_eq!(config.header_read_timeout, Duration::from_secs(2));
        assert_eq!(config.idle_timeout, Duration::from_secs(3));
        assert_eq!(config.body_read_timeout, Duration::from_secs(4));
        assert_eq!(config.max_connections, 5);
        assert_eq!(config.shutdown_drain_timeout, Duration::from_secs(6));

        // The body limit follows a shorter request limit, and may not exceed it.
        let cli = Cli {
            request_timeout: Some(5),
            ..Cli::default()
        };
        let config = Config::from_parts(&cli, None).unwrap();
        assert_eq!(config.body_read_timeout, Duration::from_secs(5));

        // The connection bound follows the open-file limit.
        let mut config = Config::for_embedded("d");
        connection_limits(&mut config, &Cli::default(), Some(1000)).unwrap();
        assert_eq!(
            config.max_connections,
            1000 - RESERVED_FILE_DESCRIPTORS as usize
        );

        let invalid = [
            Cli {
                header_read_timeout: Some(0),
                ..Cli::default()
            },
            Cli {
                idle_timeout: Some(0),
                ..Cli::default()
            },
            Cli {
                body_read_timeout: Some(0),
                ..Cli::default()
            },
            Cli {
                shutdown_drain_timeout: Some(0),
                ..Cli::default()
            },
            Cli {
                max_connections: Some(0),
                ..Cli::default()
            },
            Cli {
                request_timeout: Some(5),
                body_read_timeout: Some(6),
                ..Cli::default()
            },
        ];
        for cli in invalid {
            let err = Config::from_parts(&cli, None).unwrap_err().to_string();
            assert!(!err.contains('\n'), "{err}");
        }
        let mut config = Config::for_embedded("d");
        let cli = Cli {
            max_connections: Some(1000),
            ..Cli::default()
        };
        let err = connection_limits(&mut config, &cli, Some(1000)).unwrap_err();
        assert!(err.0.contains("open-file limit (1000)"), "{}", err.0);
        let err = connection_limits(&mut config, &Cli::default(), Some(10)).unwrap_err();
        assert!(err.0.contains("no descriptor"), "{}", err.0);
    }
}
