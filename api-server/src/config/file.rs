//! Upstream's `api.yaml`, parsed as is: unknown keys are ignored and keys may use `-`
//! for `_`, so an upstream configuration file works unchanged.

use std::path::Path;

use serde::Deserialize;

use super::ConfigError;

/// Upstream's `api.yaml`. Unknown keys are ignored; keys may use `-` for `_`.
#[derive(Debug, Clone, Default, Deserialize)]
#[allow(missing_docs)]
pub struct FileConfig {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub etcd: Option<EtcdSection>,
    pub docs: Option<DocsSection>,
    pub tls: Option<TlsSection>,
    pub authentication: Option<AuthenticationSection>,
    pub authorization: Option<String>,
    pub log: Option<LogSection>,
}

/// `etcd` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[allow(missing_docs)]
pub struct EtcdSection {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub retry_transactions: Option<u32>,
}

/// `docs` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[allow(missing_docs)]
pub struct DocsSection {
    pub problem_base_url: Option<String>,
}

/// `tls` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[allow(missing_docs)]
pub struct TlsSection {
    #[serde(default, deserialize_with = "lenient_bool")]
    pub enabled: Option<bool>,
    pub cert: Option<String>,
    pub key: Option<String>,
    pub client_ca: Option<String>,
}

/// `authentication` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[allow(missing_docs)]
pub struct AuthenticationSection {
    #[serde(default, deserialize_with = "lenient_bool")]
    pub allow_anonymous: Option<bool>,
    pub cors_origin: Option<String>,
    pub strategy: Option<StrategySection>,
}

/// `authentication.strategy` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[allow(missing_docs)]
pub struct StrategySection {
    pub keystone: Option<ProviderSection>,
    pub keycloak: Option<ProviderSection>,
    pub r#static: Option<StaticSection>,
    pub oidc: Option<OidcSection>,
}

/// `authentication.strategy.oidc` section (an extension of upstream's configuration).
#[derive(Debug, Clone, Default, Deserialize)]
#[allow(missing_docs)]
pub struct OidcSection {
    #[serde(default, deserialize_with = "lenient_bool")]
    pub enabled: Option<bool>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub username_claim: Option<String>,
    pub jwks_uri: Option<String>,
}

/// Keystone / Keycloak sections.
#[derive(Debug, Clone, Default, Deserialize)]
#[allow(missing_docs)]
pub struct ProviderSection {
    #[serde(default, deserialize_with = "lenient_bool")]
    pub enabled: Option<bool>,
    pub endpoint: Option<String>,
    pub realm: Option<String>,
}

/// `authentication.strategy.static` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[allow(missing_docs)]
pub struct StaticSection {
    #[serde(default, deserialize_with = "lenient_bool")]
    pub enabled: Option<bool>,
    pub name: Option<String>,
}

/// `log` section (a Python `logging.config.dictConfig` document); only `level` is used.
#[derive(Debug, Clone, Default, Deserialize)]
#[allow(missing_docs)]
pub struct LogSection {
    pub level: Option<String>,
}

/// Booleans as upstream's configuration schema reads them: `true`/`false`, and the
/// strings and numbers it also accepts (`"yes"`, `"off"`, `1`, `0`, ...).
fn lenient_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    use serde::de::Error as _;
    let value = Option::<serde_json::Value>::deserialize(d)?;
    let Some(value) = value else {
        return Ok(None);
    };
    let text = match &value {
        serde_json::Value::Bool(b) => return Ok(Some(*b)),
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::String(s) => s.clone(),
        _ => return Err(D::Error::custom(format!("not a valid boolean: {value}"))),
    };
    match text.as_str() {
        "t" | "T" | "true" | "True" | "TRUE" | "on" | "On" | "ON" | "y" | "Y" | "yes" | "Yes"
        | "YES" | "1" => Ok(Some(true)),
        "f" | "F" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" | "n" | "N" | "no"
        | "No" | "NO" | "0" | "0.0" => Ok(Some(false)),
        _ => Err(D::Error::custom(format!("not a valid boolean: {value}"))),
    }
}

impl FileConfig {
    /// Read and parse a configuration file.
    pub fn read(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(format!("cannot read {}: {e}", path.display())))?;
        FileConfig::parse(&text)
            .map_err(|e| ConfigError::new(format!("{}: {}", path.display(), e.0)))
    }

    /// Parse the YAML text of an `api.yaml`.
    pub fn parse(text: &str) -> Result<FileConfig, ConfigError> {
        let value: serde_json::Value = serde_saphyr::from_str(text).map_err(|e| {
            ConfigError::new(format!("not valid YAML: {}", first_line(&e.to_string())))
        })?;
        let value = match value {
            serde_json::Value::Null => serde_json::Value::Object(Default::default()),
            v @ serde_json::Value::Object(_) => v,
            _ => return Err(ConfigError::new("the document must be a mapping")),
        };
        let value = underscore_keys(value);
        serde_path_to_error_free(value)
    }
}

fn serde_path_to_error_free(value: serde_json::Value) -> Result<FileConfig, ConfigError> {
    FileConfig::deserialize(value)
        .map_err(|e| ConfigError::new(first_line(&e.to_string()).to_string()))
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

/// Upstream accepts `cors-origin` for `cors_origin` at any level.
fn underscore_keys(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => serde_json::Value::Object(
            map.into_iter()
                .map(|(k, v)| (k.replace('-', "_"), underscore_keys(v)))
                .collect(),
        ),
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.into_iter().map(underscore_keys).collect())
        }
        other => other,
    }
}
