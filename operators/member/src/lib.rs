//! Access to member Kubernetes clusters for Krake's controllers.
//!
//! A Cluster's `spec.kubeconfig` is written by a Krake user and used by the controllers.
//! This crate turns it into [`kube::Client`]s safely and keeps them, one
//! [`MemberCluster`] per Cluster, in [`MemberClients`]:
//!
//! ```no_run
//! # async fn demo(cluster: krake_crds::kubernetes::Cluster) -> Result<(), krake_member::MemberError> {
//! use krake_member::{MemberClients, MemberConfig};
//! use kube::core::GroupVersionKind;
//!
//! let members = MemberClients::new(MemberConfig::default());
//! let member = members.for_cluster(&cluster).await?; // cached while the kubeconfig is unchanged
//! let version = member.client().apiserver_version().await; // bounded by the read timeout
//! let (resource, caps) = member
//!     .discovery()
//!     .resolve(&GroupVersionKind::gvk("apps", "v1", "Deployment"))
//!     .await?;
//! members.invalidate_discovery(&cluster.metadata.uid); // the cluster's CRDs changed
//! members.evict(&cluster.metadata.uid); // the Cluster was deleted
//! # Ok(()) }
//! ```
//!
//! # What a kubeconfig may contain
//!
//! Only inline data is used: `server`, `certificate-authority-data`, `tls-server-name`,
//! `insecure-skip-tls-verify` of the cluster; `token`, `client-certificate-data` +
//! `client-key-data`, `username` + `password`, `as`, `as-uid`, `as-groups` of the user;
//! the context's `namespace`. Other keys are ignored, except:
//!
//! * **refused** ([`MemberError::RefusedKey`], and with a 422 by the API server, which
//!   shares the list: [`krake_crds::kubernetes::refused_kubeconfig_key`]): `exec` and
//!   `auth-provider` (run programs), `tokenFile`, `client-certificate`, `client-key`,
//!   `certificate-authority` (read host files). Otherwise anyone allowed to write a
//!   Cluster could run commands in, or read files of, the controller;
//! * **unsupported** ([`MemberError::UnsupportedKey`]): `proxy-url`. Krake connects to
//!   member clusters directly; the workspace builds kube without its proxy features.
//!
//! kube's kubeconfig loaders are not used: they read `HTTPS_PROXY`/`https_proxy` from the
//! environment (a controller's environment must not redirect member traffic) and
//! follow file paths. The [`kube::Config`] is built field by field instead, with
//! `proxy_url` left empty. The system trust store is read only when the kubeconfig has
//! no `certificate-authority-data` (then the server must have a publicly trusted
//! certificate).
//!
//! `insecure-skip-tls-verify: true` is accepted with a warning in the log each time a
//! client is built ([`MemberConfig::allow_insecure_skip_tls_verify`] refuses it).
//!
//! # Timeouts and retries
//!
//! [`Timeouts`]: connect (TCP + TLS, default 5 s), read (default 30 s, request client
//! only) and write (default 30 s). Each cluster has two clients: [`MemberCluster::client`]
//! for requests and [`MemberCluster::watch_client`] for watches, without read timeout.
//! kube's default retry layer (up to 15 retries of 429/503/504 with delays growing to
//! minutes, unseen by the caller) is disabled: a failed request fails at once and the
//! controller's work queue retries with its per-key backoff.
//!
//! # Secrets
//!
//! No error, log line or `Debug` output of this crate contains a token, a password, a
//! key or any other value of the kubeconfig except the server URL (refused when it holds
//! credentials) and the namespace.

mod clients;
mod discovery;
mod error;
mod kubeconfig;

pub use clients::{MemberClients, MemberCluster, MemberConfig, Timeouts};
pub use discovery::DiscoveryCache;
pub use error::MemberError;
pub use kubeconfig::{AuthMethod, MemberKubeconfig};

pub use k8s_openapi;
pub use kube;
