//! The command line of `krake-api`: every setting as a flag and an environment variable.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// Command line of `krake-api`. Every flag can also be set through the environment
/// variable shown in `--help`; flags and variables win over the configuration file.
#[derive(Debug, Clone, Default, Parser)]
#[command(name = "krake-api", version, about = "The Krake API server")]
pub struct Cli {
    /// Upstream-compatible `api.yaml`. Without it, `./api.yaml` then `/etc/krake/api.yaml`
    /// are used when present; otherwise built-in defaults apply.
    #[arg(short = 'c', long, env = "KRAKE_API_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to bind.
    #[arg(long, env = "KRAKE_API_HOST")]
    pub host: Option<String>,
    /// Port to bind (0 picks a free port).
    #[arg(long, env = "KRAKE_API_PORT")]
    pub port: Option<u16>,
    /// Storage backend; default: `etcd` when an etcd endpoint is configured, else `embedded`.
    #[arg(long, env = "KRAKE_API_STORAGE", value_enum)]
    pub storage: Option<StorageKind>,
    /// etcd endpoints (comma separated URLs, e.g. `http://etcd-0.etcd:2379`).
    #[arg(long, env = "KRAKE_API_ETCD_ENDPOINTS", value_delimiter = ',')]
    pub etcd_endpoints: Vec<String>,
    /// etcd host (upstream flag; used when no endpoint list is given).
    #[arg(long, env = "KRAKE_API_ETCD_HOST")]
    pub etcd_host: Option<String>,
    /// etcd port (upstream flag).
    #[arg(long, env = "KRAKE_API_ETCD_PORT")]
    pub etcd_port: Option<u16>,
    /// etcd's `--max-request-bytes`: set together with etcd's --max-request-bytes (same
    /// value). The largest storable object, and so the largest accepted request body, is this
    /// minus 4096 bytes for the key and the request envelope. Default: etcd's, 1572864.
    #[arg(long, env = "KRAKE_API_ETCD_MAX_REQUEST_BYTES")]
    pub etcd_max_request_bytes: Option<usize>,
    /// Extra attempts of a request after a conflicting concurrent write.
    #[arg(long, env = "KRAKE_API_ETCD_RETRY_TRANSACTIONS")]
    pub etcd_retry_transactions: Option<u32>,
    /// Directory of the embedded store.
    #[arg(long, env = "KRAKE_API_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Changes kept by the embedded store for watch resumption.
    #[arg(long, env = "KRAKE_API_HISTORY_LIMIT")]
    pub history_limit: Option<usize>,
    /// Authorization mode: `always-allow`, `always-deny` or `RBAC` (Roles and RoleBindings).
    #[arg(long, env = "KRAKE_API_AUTHORIZATION")]
    pub authorization: Option<String>,
    /// Serve unauthenticated requests as `system:anonymous`.
    #[arg(long, env = "KRAKE_API_ALLOW_ANONYMOUS")]
    pub authentication_allow_anonymous: Option<bool>,
    /// The one CORS origin allowed (`*` for any).
    #[arg(long, env = "KRAKE_API_CORS_ORIGIN")]
    pub authentication_cors_origin: Option<String>,
    /// Base URL of problem `type` URIs (empty: `about:blank`).
    #[arg(long, env = "KRAKE_API_PROBLEM_BASE_URL")]
    pub docs_problem_base_url: Option<String>,
    /// Log format.
    #[arg(long, env = "KRAKE_API_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Log level or `tracing` filter (`info`, `krake_api_server=debug`).
    #[arg(long, env = "KRAKE_API_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// Time limit of one non-watch request, in seconds.
    #[arg(long, env = "KRAKE_API_REQUEST_TIMEOUT")]
    pub request_timeout: Option<u64>,
    /// Time limit of a `blocking` create or delete, in seconds.
    #[arg(long, env = "KRAKE_API_BLOCKING_TIMEOUT")]
    pub blocking_timeout: Option<u64>,
    /// Events each watch cache keeps for resumption, per resource kind.
    #[arg(long, env = "KRAKE_API_WATCH_CACHE_EVENTS")]
    pub watch_cache_events: Option<usize>,
    /// Bytes of rendered events each watch cache keeps for resumption, per resource kind;
    /// the oldest events are evicted first. Default: 16 MiB.
    #[arg(long, env = "KRAKE_API_WATCH_CACHE_BYTES")]
    pub watch_cache_bytes: Option<usize>,
    /// Seconds a watcher may stop reading before it is disconnected.
    #[arg(long, env = "KRAKE_API_WATCH_SEND_TIMEOUT")]
    pub watch_send_timeout: Option<u64>,
    /// Seconds a client may take to send a request's headers (from its first byte; for a
    /// new connection, from its acceptance, TLS handshake included).
    #[arg(long, env = "KRAKE_API_HEADER_READ_TIMEOUT")]
    pub header_read_timeout: Option<u64>,
    /// Seconds a keep-alive connection may stay without any request before it is closed.
    #[arg(long, env = "KRAKE_API_IDLE_TIMEOUT")]
    pub idle_timeout: Option<u64>,
    /// Seconds a client may take to send a request body; a slower upload gets 408.
    #[arg(long, env = "KRAKE_API_BODY_READ_TIMEOUT")]
    pub body_read_timeout: Option<u64>,
    /// Connections served at once; more are answered 503 with `Retry-After` and closed.
    #[arg(long, env = "KRAKE_API_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Seconds a graceful shutdown waits for requests to finish before closing what remains.
    #[arg(long, env = "KRAKE_API_SHUTDOWN_DRAIN_TIMEOUT")]
    pub shutdown_drain_timeout: Option<u64>,
    /// Serve HTTPS (with `--tls-cert` and `--tls-key`).
    #[arg(long, env = "KRAKE_API_TLS_ENABLED")]
    pub tls_enabled: Option<bool>,
    /// Server certificate chain (PEM).
    #[arg(long, env = "KRAKE_API_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// Server private key (PEM).
    #[arg(long, env = "KRAKE_API_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// CA bundle (PEM) for client certificates; enables client-certificate authentication.
    #[arg(long, env = "KRAKE_API_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
    /// Static authenticator: every request is this user.
    #[arg(long, env = "KRAKE_API_STATIC_USER")]
    pub static_user: Option<String>,
    /// Keystone endpoint (`http://keystone:5000/v3`); enables Keystone authentication.
    #[arg(long, env = "KRAKE_API_KEYSTONE_ENDPOINT")]
    pub keystone_endpoint: Option<String>,
    /// Keycloak endpoint (`http://keycloak:9080`); enables Keycloak authentication.
    #[arg(long, env = "KRAKE_API_KEYCLOAK_ENDPOINT")]
    pub keycloak_endpoint: Option<String>,
    /// Keycloak realm.
    #[arg(long, env = "KRAKE_API_KEYCLOAK_REALM")]
    pub keycloak_realm: Option<String>,
    /// OpenID Connect issuer URL; enables local JWT verification.
    #[arg(long, env = "KRAKE_API_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,
    /// Audience (`aud`) the JWTs must carry.
    #[arg(long, env = "KRAKE_API_OIDC_AUDIENCE")]
    pub oidc_audience: Option<String>,
    /// Claim holding the user name.
    #[arg(long, env = "KRAKE_API_OIDC_USERNAME_CLAIM")]
    pub oidc_username_claim: Option<String>,
    /// JWKS URL; default: discovered from the issuer's `.well-known/openid-configuration`.
    #[arg(long, env = "KRAKE_API_OIDC_JWKS_URI")]
    pub oidc_jwks_uri: Option<String>,
    /// Seconds identity-provider answers are cached.
    #[arg(long, env = "KRAKE_API_IDENTITY_CACHE_TTL")]
    pub identity_cache_ttl: Option<u64>,
}

/// Storage backend choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StorageKind {
    /// A real etcd cluster (production).
    Etcd,
    /// The embedded redb store (single binary, tests).
    Embedded,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}
