//! The persisted kinds as the tests address them (URLs, facts) and one valid
//! sample body, change and status per kind.

use krake_crds::fixtures::kubeconfig;
use krake_crds::{KINDS, KindInfo, core, infrastructure, kubernetes, openstack};
use serde_json::{Value, json};

/// A persisted kind as the tests address it: the facts of [`krake_crds::KINDS`], with a
/// constant per kind for tests about one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct K(KindInfo);

#[allow(non_upper_case_globals)]
impl K {
    pub const Role: K = K(KindInfo::of::<core::Role>());
    pub const RoleBinding: K = K(KindInfo::of::<core::RoleBinding>());
    pub const GlobalMetric: K = K(KindInfo::of::<core::GlobalMetric>());
    pub const Metric: K = K(KindInfo::of::<core::Metric>());
    pub const GlobalMetricsProvider: K = K(KindInfo::of::<core::GlobalMetricsProvider>());
    pub const MetricsProvider: K = K(KindInfo::of::<core::MetricsProvider>());
    pub const Application: K = K(KindInfo::of::<kubernetes::Application>());
    pub const Cluster: K = K(KindInfo::of::<kubernetes::Cluster>());
    pub const Project: K = K(KindInfo::of::<openstack::Project>());
    pub const MagnumCluster: K = K(KindInfo::of::<openstack::MagnumCluster>());
    pub const GlobalInfrastructureProvider: K =
        K(KindInfo::of::<infrastructure::GlobalInfrastructureProvider>());
    pub const InfrastructureProvider: K =
        K(KindInfo::of::<infrastructure::InfrastructureProvider>());
    pub const GlobalCloud: K = K(KindInfo::of::<infrastructure::GlobalCloud>());
    pub const Cloud: K = K(KindInfo::of::<infrastructure::Cloud>());
}

/// Every persisted kind: a kind added to the types is tested here too, and fails until
/// [`K::sample`] has a body for it.
pub fn all_kinds() -> impl Iterator<Item = K> {
    KINDS.iter().copied().map(K)
}

/// A valid Application spec.
pub fn application_spec() -> Value {
    json!({
        "manifest": [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1"}, "spec": {"containers": []}}],
        "constraints": {"cluster": {"labels": ["location is DE"], "custom_resources": [], "metrics": ["load > 0.5"]}, "migration": true},
        "hooks": []
    })
}

fn im_spec() -> Value {
    json!({"type": "im", "im": {"url": "http://im.example.com:8800", "username": "user", "password": "secret"}})
}

fn cloud_spec(namespaced_provider: bool) -> Value {
    json!({"type": "openstack", "openstack": {
        "url": "http://keystone.example.com:5000/v3",
        "auth": {"type": "password", "password": {
            "version": "3",
            "user": {"username": "u", "password": "p", "domain_name": "Default"},
            "project": {"name": "proj", "domain_id": "default"}}},
        "metrics": [],
        "infrastructure_provider": {"name": "im1", "namespaced": namespaced_provider}}})
}

impl K {
    pub fn api(self) -> &'static str {
        self.0.api
    }

    pub fn kind(self) -> &'static str {
        self.0.kind
    }

    pub fn plural(self) -> &'static str {
        self.0.plural
    }

    pub fn namespaced(self) -> bool {
        self.0.namespaced
    }

    pub fn has_status(self) -> bool {
        self.0.has_status
    }

    pub fn force_delete(self) -> bool {
        matches!(self, K::Application | K::Cluster)
    }

    /// The collection URL (namespace ignored for global kinds).
    pub fn collection(self, ns: &str) -> String {
        if self.namespaced() {
            format!("/{}/namespaces/{ns}/{}", self.api(), self.plural())
        } else {
            self.all_collection()
        }
    }

    /// The all-namespaces collection URL (the only one of global kinds).
    pub fn all_collection(self) -> String {
        format!("/{}/{}", self.api(), self.plural())
    }

    /// The object URL.
    pub fn object(self, ns: &str, name: &str) -> String {
        format!("{}/{name}", self.collection(ns))
    }

    /// The namespace objects of this kind get when created under `ns`.
    pub fn expected_ns(self, ns: &str) -> Value {
        if self.namespaced() {
            json!(ns)
        } else {
            Value::Null
        }
    }

    /// The top-level keys holding the client-writable content.
    pub fn content_keys(self) -> &'static [&'static str] {
        match self {
            K::Role => &["rules"],
            K::RoleBinding => &["users", "roles"],
            _ => &["spec"],
        }
    }

    /// A valid create body.
    pub fn sample(self, name: &str) -> Value {
        let mut body = json!({"api": self.api(), "kind": self.kind(), "metadata": {"name": name}});
        let map = body.as_object_mut().expect("object");
        match self {
            K::Role => {
                map.insert(
                    "rules".into(),
                    json!([{"api": "kubernetes", "resources": ["applications", "applications/status"], "namespaces": ["dev"], "verbs": ["get", "list"]}]),
                );
            }
            K::RoleBinding => {
                map.insert("users".into(), json!(["alice"]));
                map.insert("roles".into(), json!(["reader"]));
            }
            K::GlobalMetric | K::Metric => {
                map.insert(
                    "spec".into(),
                    json!({"allowed_values": [], "min": 0.0, "max": 1.0, "provider": {"name": "prom", "metric": "node_load1"}}),
                );
            }
            K::GlobalMetricsProvider => {
                map.insert(
                    "spec".into(),
                    json!({"type": "static", "static": {"metrics": {"load": 0.5, "x": 2.0}}}),
                );
            }
            K::MetricsProvider => {
                map.insert(
                    "spec".into(),
                    json!({"type": "prometheus", "prometheus": {"url": "http://prometheus:9090"}}),
                );
            }
            K::Application => {
                map.insert("spec".into(), application_spec());
            }
            K::Cluster => {
                map.insert(
                    "spec".into(),
                    json!({"kubeconfig": kubeconfig(), "custom_resources": [],
                           "constraints": {"cloud": {"labels": ["zone=a"], "metrics": null}},
                           "metrics": [{"name": "load", "weight": 1.5, "namespaced": false}]}),
                );
            }
            K::Project => {
                map.insert(
                    "spec".into(),
                    json!({"url": "http://keystone.example.com:5000/v3",
                           "auth": {"type": "password", "password": {"user": {"id": "uid", "password": "pw"}, "project": {"id": "pid"}}},
                           "template": "magnum-template-uuid", "metrics": []}),
                );
            }
            K::MagnumCluster => {
                map.insert(
                    "spec".into(),
                    json!({"master_count": 1, "node_count": 2, "metrics": [], "constraints": {"project": {"labels": ["a=b"]}}}),
                );
            }
            K::GlobalInfrastructureProvider | K::InfrastructureProvider => {
                map.insert("spec".into(), im_spec());
            }
            K::GlobalCloud => {
                map.insert("spec".into(), cloud_spec(false));
            }
            K::Cloud => {
                map.insert("spec".into(), cloud_spec(true));
            }
            other => panic!("no sample body for {other:?}: add one here"),
        }
        body
    }

    /// Change the client-writable content of a full object (a valid change).
    pub fn mutate(self, obj: &mut Value) {
        match self {
            K::Role => obj["rules"][0]["verbs"] = json!(["get", "list", "update"]),
            K::RoleBinding => obj["users"] = json!(["alice", "bob"]),
            K::GlobalMetric | K::Metric => obj["spec"]["max"] = json!(2.5),
            // Polymorphic container: the type changes.
            K::GlobalMetricsProvider => {
                obj["spec"] =
                    json!({"type": "prometheus", "prometheus": {"url": "http://prometheus:9090"}})
            }
            K::MetricsProvider => {
                obj["spec"]["prometheus"]["url"] = json!("http://other-prometheus:9090")
            }
            K::Application => obj["spec"]["manifest"][0]["metadata"]["name"] = json!("p2"),
            K::Cluster => obj["spec"]["custom_resources"] = json!(["crontabs.stable.example.com"]),
            K::Project => obj["spec"]["template"] = json!("other-template"),
            K::MagnumCluster => obj["spec"]["node_count"] = json!(5),
            K::GlobalInfrastructureProvider | K::InfrastructureProvider => {
                obj["spec"]["im"]["url"] = json!("http://other-im.example.com:8800")
            }
            K::GlobalCloud | K::Cloud => {
                obj["spec"]["openstack"]["url"] = json!("http://other-keystone:5000/v3")
            }
            other => panic!("no change for {other:?}: add one here"),
        }
    }

    /// The status of a fresh object: every field present, at its initial value.
    pub fn default_status(self) -> Option<Value> {
        Some(match self {
            K::Application => json!({
                "reason": null, "state": "PENDING",
                "container_health": {"desired_pods": 0, "running_pods": 0, "completed_pods": 0, "failed_pods": 0},
                "kube_controller_triggered": null, "scheduled": null, "scheduled_to": null, "running_on": null,
                "retries": null, "scheduled_retry": null, "services": {}, "mangled_observer_schema": [],
                "last_observed_manifest": [], "last_applied_manifest": [],
                "complete_token": null, "complete_cert": null, "complete_key": null,
                "shutdown_token": null, "shutdown_cert": null, "shutdown_key": null,
                "shutdown_grace_period": null, "auto_cluster_create_started": null,
                "migration_retries": 0, "migration_timeout": 0}),
            K::Cluster => json!({
                "reason": null, "kube_controller_triggered": null, "state": "PENDING", "metrics_reasons": {},
                "last_applied_tosca": {}, "nodes": [], "cluster_id": null, "scheduled": null,
                "scheduled_to": null, "running_on": null, "retries": 0}),
            K::Project | K::GlobalCloud | K::Cloud => {
                json!({"state": "ONLINE", "metrics_reasons": {}})
            }
            K::MagnumCluster => json!({
                "reason": null, "state": "PENDING", "project": null, "template": null, "cluster_id": null,
                "node_count": null, "api_address": null, "master_addresses": null, "node_addresses": null,
                "cluster": null}),
            _ => return None,
        })
    }

    /// A complete, valid, non-default status.
    pub fn custom_status(self) -> Option<Value> {
        let mut status = self.default_status()?;
        match self {
            K::Application => {
                status["state"] = json!("RUNNING");
                status["reason"] = json!({"code": "KUBERNETES_ERROR", "message": "something"});
                status["services"] = json!({"svc": "10.0.0.1:31234"});
                status["retries"] = json!(3);
                status["running_on"] = json!({"api": "kubernetes", "namespace": "ns1", "kind": "Cluster", "name": "c1"});
            }
            K::Cluster => {
                status["state"] = json!("ONLINE");
                status["cluster_id"] = json!("abc");
                status["retries"] = json!(2);
            }
            K::Project | K::GlobalCloud | K::Cloud => {
                status["state"] = json!("FAILING_METRICS");
                status["metrics_reasons"] =
                    json!({"load": {"code": "UNKNOWN_METRIC", "message": "gone"}});
            }
            K::MagnumCluster => {
                status["state"] = json!("RUNNING");
                status["node_count"] = json!(2);
                status["api_address"] = json!("https://10.0.0.5:6443");
                status["master_addresses"] = json!(["10.0.0.5"]);
            }
            _ => unreachable!(),
        }
        Some(status)
    }
}
