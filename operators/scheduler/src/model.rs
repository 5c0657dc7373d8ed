//! Small views over the resource kinds the scheduler handles uniformly.

use krake_crds::core::MetricRef;
use krake_crds::infrastructure::{Cloud, CloudSpec, CloudStatus, GlobalCloud};
use krake_crds::{Metadata, Resource, ResourceRef};

/// A reference (`{api, namespace, kind, name}`) to any persisted resource.
pub fn resource_ref<R: Resource>(resource: &R) -> ResourceRef {
    let metadata = resource.metadata();
    ResourceRef {
        api: R::API.to_string(),
        namespace: metadata.namespace.clone(),
        kind: R::KIND.to_string(),
        name: metadata.name.clone(),
    }
}

/// A namespaced `Cloud` or a `GlobalCloud`: both can host clusters and are scored alike.
#[derive(Debug, Clone, PartialEq)]
pub enum AnyCloud {
    /// `infrastructure/Cloud`.
    Namespaced(Cloud),
    /// `infrastructure/GlobalCloud`.
    Global(GlobalCloud),
}

impl AnyCloud {
    /// The cloud's metadata.
    pub fn metadata(&self) -> &Metadata {
        match self {
            AnyCloud::Namespaced(c) => &c.metadata,
            AnyCloud::Global(c) => &c.metadata,
        }
    }

    /// The cloud's metrics (`spec.openstack.metrics`).
    pub fn metrics(&self) -> &[MetricRef] {
        let spec = match self {
            AnyCloud::Namespaced(c) => &c.spec,
            AnyCloud::Global(c) => &c.spec,
        };
        let CloudSpec::Openstack(os) = spec;
        &os.metrics
    }

    /// The cloud's status.
    pub fn status(&self) -> &CloudStatus {
        match self {
            AnyCloud::Namespaced(c) => &c.status,
            AnyCloud::Global(c) => &c.status,
        }
    }

    /// Mutable access to the cloud's status.
    pub fn status_mut(&mut self) -> &mut CloudStatus {
        match self {
            AnyCloud::Namespaced(c) => &mut c.status,
            AnyCloud::Global(c) => &mut c.status,
        }
    }

    /// Whether this is a namespaced `Cloud`.
    pub fn is_namespaced(&self) -> bool {
        matches!(self, AnyCloud::Namespaced(_))
    }

    /// The namespace metrics of this cloud are resolved in (`None` for global clouds).
    pub fn namespace(&self) -> Option<&str> {
        match self {
            AnyCloud::Namespaced(c) => c.metadata.namespace.as_deref(),
            AnyCloud::Global(_) => None,
        }
    }

    /// Reference to the cloud, as written in a cluster binding.
    pub fn to_ref(&self) -> ResourceRef {
        match self {
            AnyCloud::Namespaced(c) => resource_ref(c),
            AnyCloud::Global(c) => {
                let mut r = resource_ref(c);
                r.namespace = None;
                r
            }
        }
    }

    /// Whether `reference` designates this cloud (kind, namespace and name).
    pub fn is_referenced_by(&self, reference: &ResourceRef) -> bool {
        let own = self.to_ref();
        own.kind == reference.kind
            && own.name == reference.name
            && (!self.is_namespaced() || own.namespace == reference.namespace)
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Builders shared by the unit tests.

    use krake_crds::constraints::{LabelConstraint, MetricConstraint};
    use krake_crds::core::{MetricRef, MetricSpec, MetricSpecProvider};
    use krake_crds::infrastructure::{
        Cloud, CloudAuthMethod, CloudSpec, GlobalCloud, InfrastructureProviderRef, OpenstackSpec,
        Password, ProjectReference, UserReference,
    };
    use krake_crds::kubernetes::{
        Application, ApplicationSpec, Cluster, ClusterSpec, ClusterState,
    };
    use krake_crds::openstack::{
        AuthMethod, MagnumCluster, MagnumClusterSpec, Project, ProjectSpec,
    };
    use krake_crds::{Metadata, Timestamp};
    use serde_json::{Map, Value};

    pub fn meta(name: &str, namespace: Option<&str>, labels: &[(&str, &str)]) -> Metadata {
        let mut m = Metadata::named(name);
        m.namespace = namespace.map(str::to_string);
        m.uid = format!("uid-{name}");
        m.labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect::<Map<_, _>>();
        m
    }

    pub fn ts(s: &str) -> Timestamp {
        Timestamp::parse(s).expect("valid timestamp")
    }

    pub use krake_crds::fixtures::kubeconfig;

    pub fn cluster(name: &str, labels: &[(&str, &str)]) -> Cluster {
        let mut c = Cluster::new(
            meta(name, Some("ns"), labels),
            ClusterSpec::with_kubeconfig(kubeconfig()),
        );
        c.status.state = ClusterState::Online;
        c
    }

    pub fn metric_ref(name: &str, weight: f64, namespaced: bool) -> MetricRef {
        MetricRef {
            name: name.into(),
            weight,
            namespaced,
        }
    }

    pub fn app(name: &str) -> Application {
        Application::new(
            meta(name, Some("ns"), &[]),
            ApplicationSpec::with_manifest(vec![]),
        )
    }

    pub fn labels(constraints: &[&str]) -> Option<Vec<LabelConstraint>> {
        Some(
            constraints
                .iter()
                .map(|c| LabelConstraint::parse(c).expect("valid label constraint"))
                .collect(),
        )
    }

    pub fn metric_constraints(constraints: &[&str]) -> Option<Vec<MetricConstraint>> {
        Some(
            constraints
                .iter()
                .map(|c| MetricConstraint::parse(c).expect("valid metric constraint"))
                .collect(),
        )
    }

    pub fn openstack(metrics: Vec<MetricRef>) -> CloudSpec {
        CloudSpec::Openstack(OpenstackSpec {
            url: "http://keystone".into(),
            auth: CloudAuthMethod::Password(Password {
                version: "3".into(),
                user: UserReference {
                    username: "u".into(),
                    password: "p".into(),
                    domain_name: "Default".into(),
                    comment: None,
                },
                project: ProjectReference {
                    name: "p".into(),
                    domain_id: "default".into(),
                    comment: None,
                },
            }),
            metrics,
            infrastructure_provider: InfrastructureProviderRef {
                name: "im".into(),
                namespaced: false,
            },
        })
    }

    pub fn cloud(name: &str, labels: &[(&str, &str)], metrics: Vec<MetricRef>) -> Cloud {
        Cloud::new(meta(name, Some("ns"), labels), openstack(metrics))
    }

    pub fn global_cloud(
        name: &str,
        labels: &[(&str, &str)],
        metrics: Vec<MetricRef>,
    ) -> GlobalCloud {
        GlobalCloud::new(meta(name, None, labels), openstack(metrics))
    }

    pub fn project(name: &str, labels: &[(&str, &str)], metrics: Vec<MetricRef>) -> Project {
        Project::new(
            meta(name, Some("ns"), labels),
            ProjectSpec {
                url: "http://keystone".into(),
                auth: AuthMethod::ApplicationCredential(
                    krake_crds::openstack::ApplicationCredential {
                        id: "id".into(),
                        secret: "s".into(),
                    },
                ),
                template: format!("template-{name}"),
                metrics,
            },
        )
    }

    pub fn magnum(name: &str) -> MagnumCluster {
        MagnumCluster::new(meta(name, Some("ns"), &[]), MagnumClusterSpec::default())
    }

    pub fn metric_spec(min: f64, max: f64, allowed: &[i64]) -> MetricSpec {
        MetricSpec {
            allowed_values: allowed.to_vec(),
            min,
            max,
            provider: MetricSpecProvider {
                name: "prov".into(),
                metric: "raw".into(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn cloud_references_distinguish_kinds_and_namespaces() {
        let namespaced = AnyCloud::Namespaced(cloud("c", &[], vec![]));
        let global = AnyCloud::Global(global_cloud("c", &[], vec![]));
        let nref = namespaced.to_ref();
        let gref = global.to_ref();
        assert_eq!(
            (nref.kind.as_str(), nref.namespace.as_deref()),
            ("Cloud", Some("ns"))
        );
        assert_eq!(
            (gref.kind.as_str(), gref.namespace.as_deref()),
            ("GlobalCloud", None)
        );
        assert!(namespaced.is_referenced_by(&nref));
        assert!(!namespaced.is_referenced_by(&gref));
        assert!(global.is_referenced_by(&gref));
        assert!(!global.is_referenced_by(&nref));
        let mut other_ns = nref.clone();
        other_ns.namespace = Some("other".into());
        assert!(!namespaced.is_referenced_by(&other_ns));
        assert_eq!(namespaced.namespace(), Some("ns"));
        assert_eq!(global.namespace(), None);
    }

    #[test]
    fn resource_ref_uses_kind_constants() {
        let c = cluster("a", &[]);
        let r = resource_ref(&c);
        assert_eq!(r.api, "kubernetes");
        assert_eq!(r.kind, "Cluster");
        assert_eq!(r.namespace.as_deref(), Some("ns"));
        assert_eq!(r.name, "a");
    }
}
