//! Test objects shared by the tests of every crate: one valid kubeconfig and builders for
//! the objects tests create most, so that a test names only what it is about.
//!
//! Behind the `fixtures` feature, which only `[dev-dependencies]` enable: production
//! builds carry none of this.
//!
//! ```
//! use krake_crds::kubernetes::{Cluster, ClusterState};
//!
//! let cluster = Cluster::test("ns1", "germany").label("location", "DE").online();
//! assert_eq!(cluster.status.state, ClusterState::Online);
//! ```

use serde_json::{Map, Value, json};

use crate::core::MetricRef;
use crate::kubernetes::{Application, ApplicationSpec, Cluster, ClusterSpec, ClusterState};
use crate::metadata::Metadata;

/// A valid kubeconfig: exactly one cluster (`c1`, `https://127.0.0.1:6443`), one user
/// (`u1`, a bearer token) and one context (`ctx`) joining them, as Cluster validation
/// requires.
pub fn kubeconfig() -> Map<String, Value> {
    object(json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c1", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c1", "user": "u1"}}],
        "current-context": "ctx",
        "users": [{"name": "u1", "user": {"token": "secret"}}]
    }))
}

/// A valid kubeconfig for a real member cluster reached over TLS with a bearer token (the
/// shape a service-account kubeconfig has): `server` verified against the CA certificate
/// `ca_pem` (PEM text, stored base64-encoded as `certificate-authority-data`).
pub fn kubeconfig_tls_token(server: &str, ca_pem: &str, token: &str) -> Map<String, Value> {
    object(json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "member", "cluster": {
            "server": server,
            "certificate-authority-data": base64(ca_pem.as_bytes()),
        }}],
        "contexts": [{"name": "member", "context": {"cluster": "member", "user": "krake"}}],
        "current-context": "member",
        "users": [{"name": "krake", "user": {"token": token}}]
    }))
}

/// Metadata named `name` in `namespace` (`None` for global kinds).
pub fn metadata(namespace: Option<&str>, name: &str) -> Metadata {
    let mut metadata = Metadata::named(name);
    metadata.namespace = namespace.map(str::to_string);
    metadata
}

/// A metric reference of a Cluster, Cloud or Project spec.
pub fn metric_ref(name: &str, weight: f64, namespaced: bool) -> MetricRef {
    MetricRef {
        name: name.into(),
        weight,
        namespaced,
    }
}

impl Cluster {
    /// A registered cluster (with [`kubeconfig`]) `name` in `namespace`, no constraints,
    /// no metrics, in its initial state.
    pub fn test(namespace: &str, name: &str) -> Cluster {
        Cluster::new(
            metadata(Some(namespace), name),
            ClusterSpec::with_kubeconfig(kubeconfig()),
        )
    }

    /// With the label `key: value`.
    pub fn label(mut self, key: &str, value: &str) -> Cluster {
        self.metadata.labels.insert(key.into(), value.into());
        self
    }

    /// With a metric reference (see [`metric_ref`]).
    pub fn metric(mut self, name: &str, weight: f64, namespaced: bool) -> Cluster {
        self.spec.metrics.push(metric_ref(name, weight, namespaced));
        self
    }

    /// In state `ONLINE`, as the cluster observer reports a reachable cluster.
    pub fn online(mut self) -> Cluster {
        self.status.state = ClusterState::Online;
        self
    }
}

impl Application {
    /// An application `name` in `namespace` running one Pod, with no cluster constraint
    /// (any cluster fits), in its initial state.
    pub fn test(namespace: &str, name: &str) -> Application {
        let manifest = object(json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "echo"},
            "spec": {"containers": [{"name": "echo", "image": "hashicorp/http-echo"}]}
        }));
        Application::new(
            metadata(Some(namespace), name),
            ApplicationSpec::with_manifest(vec![manifest]),
        )
    }

    /// With the label `key: value`.
    pub fn label(mut self, key: &str, value: &str) -> Application {
        self.metadata.labels.insert(key.into(), value.into());
        self
    }
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => unreachable!("a JSON object literal"),
    }
}

/// Standard base64 with padding: the encoding of kubeconfig `*-data` fields.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode_create;

    #[test]
    fn the_builders_make_valid_objects() {
        let cluster = Cluster::test("ns1", "c").label("location", "DE").online();
        let decoded: Cluster = decode_create(serde_json::to_value(&cluster).unwrap()).unwrap();
        assert_eq!(decoded.metadata.labels["location"], "DE");
        let app = Application::test("ns1", "a").label("tier", "web");
        decode_create::<Application>(serde_json::to_value(&app).unwrap()).unwrap();
    }

    #[test]
    fn the_tls_kubeconfig_is_valid() {
        let mut cluster = Cluster::test("ns1", "c");
        cluster.spec.kubeconfig =
            kubeconfig_tls_token("https://10.0.0.1:6443", "-----BEGIN CERTIFICATE-----", "t");
        decode_create::<Cluster>(serde_json::to_value(&cluster).unwrap()).unwrap();
    }

    #[test]
    fn base64_pads() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foob"), "Zm9vYg==");
    }
}
