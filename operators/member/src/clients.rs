//! The per-cluster client cache.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Map, Value};
use tracing::Instrument as _;

use crate::MemberError;
use crate::discovery::DiscoveryCache;
use crate::kubeconfig::{AuthMethod, MemberKubeconfig};

/// Timeouts of the member clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connection and TLS handshake (default 5 s): an unreachable or black-holed
    /// server fails fast instead of after the kernel's SYN retries (minutes).
    pub connect: Duration,
    /// Longest silence while waiting for a response of the request client (default
    /// 30 s), counted from the request: a server that accepts the connection and never
    /// answers gives an error instead of a stuck worker. Not applied to the watch
    /// client, whose streams may be idle for minutes (kube's watcher cuts them after
    /// its own idle timeout of 295 s).
    pub read: Duration,
    /// Longest time to write a request (default 30 s).
    pub write: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(5),
            read: Duration::from_secs(30),
            write: Duration::from_secs(30),
        }
    }
}

/// Configuration of [`MemberClients`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberConfig {
    /// Client timeouts.
    pub timeouts: Timeouts,
    /// Accept kubeconfigs with `insecure-skip-tls-verify: true` (default `true`, with a
    /// warning each time such a client is built). Krake has always accepted them
    /// (development clusters with self-signed certificates); set to `false` to refuse
    /// them with [`MemberError::UnsupportedKey`].
    pub allow_insecure_skip_tls_verify: bool,
}

impl Default for MemberConfig {
    fn default() -> Self {
        MemberConfig {
            timeouts: Timeouts::default(),
            allow_insecure_skip_tls_verify: true,
        }
    }
}

/// Access to one member cluster: its clients and its discovery cache, built from one
/// version of its kubeconfig. Cheap to share (`Arc`); kube clients are cheap to clone.
pub struct MemberCluster {
    uid: String,
    kubeconfig: MemberKubeconfig,
    client: kube::Client,
    watch_client: kube::Client,
    discovery: DiscoveryCache,
}

impl fmt::Debug for MemberCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemberCluster")
            .field("uid", &self.uid)
            .field("kubeconfig", &self.kubeconfig)
            .finish_non_exhaustive()
    }
}

impl MemberCluster {
    /// The Cluster's uid.
    pub fn uid(&self) -> &str {
        &self.uid
    }

    /// The API server URL.
    pub fn server(&self) -> &str {
        self.kubeconfig.server()
    }

    /// The kubeconfig context's namespace (`default` when it names none).
    pub fn default_namespace(&self) -> &str {
        self.kubeconfig.namespace()
    }

    /// How the clients authenticate.
    pub fn auth_method(&self) -> AuthMethod {
        self.kubeconfig.auth_method()
    }

    /// The client for requests (get, list, apply, delete, discovery, probes): connect,
    /// read and write timeouts, no retries, no proxy.
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// The client for watches: like [`MemberCluster::client`] without the read timeout,
    /// so that a quiet watch is not cut every few seconds. Bound other calls with
    /// `tokio::time::timeout` if you must use it for them.
    pub fn watch_client(&self) -> kube::Client {
        self.watch_client.clone()
    }

    /// The cluster's discovery cache.
    pub fn discovery(&self) -> &DiscoveryCache {
        &self.discovery
    }
}

/// Clients of every member cluster, keyed by Cluster uid and kubeconfig fingerprint.
///
/// [`MemberClients::get`] returns the cached [`MemberCluster`] while the kubeconfig is
/// unchanged and builds a new one (fresh connections, empty discovery cache) when it
/// changed; [`MemberClients::evict`] forgets a deleted cluster. Holders of an old
/// `Arc<MemberCluster>` keep a working client until they drop it; its connections close
/// then.
#[derive(Debug, Default)]
pub struct MemberClients {
    config: MemberConfig,
    entries: Mutex<HashMap<String, Arc<MemberCluster>>>,
}

impl MemberClients {
    /// An empty cache.
    pub fn new(config: MemberConfig) -> Self {
        MemberClients {
            config,
            entries: Mutex::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &MemberConfig {
        &self.config
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<String, Arc<MemberCluster>>> {
        // The map stays consistent even if a holder panicked: entries are replaced whole.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Access to the cluster `uid` whose kubeconfig is `kubeconfig` (its
    /// `spec.kubeconfig`): the cached one if the kubeconfig is unchanged, else a new one
    /// (which replaces the old in the cache).
    ///
    /// The kubeconfig is checked first ([`MemberKubeconfig::parse`]): a refused or
    /// invalid kubeconfig is an error and is never loaded; the cached entry, if any, is
    /// dropped then, since it no longer reflects the Cluster.
    pub async fn get(
        &self,
        uid: &str,
        kubeconfig: &Map<String, Value>,
    ) -> Result<Arc<MemberCluster>, MemberError> {
        let span = tracing::debug_span!("member_client", cluster_uid = %uid);
        async {
            let parsed = match MemberKubeconfig::parse(kubeconfig) {
                Ok(parsed) => parsed,
                Err(e) => {
                    self.entries().remove(uid);
                    return Err(e);
                }
            };
            if let Some(cached) = self.entries().get(uid)
                && cached.kubeconfig.fingerprint() == parsed.fingerprint()
            {
                return Ok(cached.clone());
            }
            if parsed.insecure_skip_tls_verify() {
                if !self.config.allow_insecure_skip_tls_verify {
                    self.entries().remove(uid);
                    return Err(MemberError::UnsupportedKey {
                        key: "insecure-skip-tls-verify".into(),
                        why: "this Krake refuses member clusters without TLS verification",
                    });
                }
                tracing::warn!(
                    server = parsed.server(),
                    "member cluster kubeconfig disables TLS verification \
                     (insecure-skip-tls-verify): its identity is not checked"
                );
            }
            let built = self.build(uid, parsed).await?;
            let mut entries = self.entries();
            // Another task may have built the same kubeconfig meanwhile: keep one.
            if let Some(cached) = entries.get(uid)
                && cached.kubeconfig.fingerprint() == built.kubeconfig.fingerprint()
            {
                return Ok(cached.clone());
            }
            let replaced = entries.insert(uid.to_string(), built.clone()).is_some();
            tracing::info!(
                server = built.server(),
                auth = ?built.auth_method(),
                replaced,
                "member cluster client built"
            );
            Ok(built)
        }
        .instrument(span)
        .await
    }

    /// [`MemberClients::get`] for a Cluster: its `metadata.uid` and `spec.kubeconfig`.
    pub async fn for_cluster(
        &self,
        cluster: &krake_crds::kubernetes::Cluster,
    ) -> Result<Arc<MemberCluster>, MemberError> {
        self.get(&cluster.metadata.uid, &cluster.spec.kubeconfig)
            .await
    }

    /// The cached access to cluster `uid`, without building one.
    pub fn cached(&self, uid: &str) -> Option<Arc<MemberCluster>> {
        self.entries().get(uid).cloned()
    }

    /// Forget cluster `uid` (deleted, or no longer handled); whether it was cached.
    pub fn evict(&self, uid: &str) -> bool {
        let evicted = self.entries().remove(uid).is_some();
        if evicted {
            tracing::debug!(cluster_uid = %uid, "member cluster client evicted");
        }
        evicted
    }

    /// Empty the discovery cache of cluster `uid`, e.g. when its CRDs changed; whether
    /// the cluster was cached.
    pub fn invalidate_discovery(&self, uid: &str) -> bool {
        match self.cached(uid) {
            Some(cluster) => {
                cluster.discovery.invalidate();
                true
            }
            None => false,
        }
    }

    /// Uids of the cached clusters.
    pub fn uids(&self) -> Vec<String> {
        self.entries().keys().cloned().collect()
    }

    /// Number of cached clusters.
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    /// Whether no cluster is cached.
    pub fn is_empty(&self) -> bool {
        self.entries().is_empty()
    }

    async fn build(
        &self,
        uid: &str,
        kubeconfig: MemberKubeconfig,
    ) -> Result<Arc<MemberCluster>, MemberError> {
        let timeouts = self.config.timeouts;
        let uid = uid.to_string();
        // Building the TLS configuration parses certificates and, without a CA in the
        // kubeconfig, loads the system trust store: off the async workers.
        tokio::task::spawn_blocking(move || {
            let build = |read_timeout| {
                kube::Client::try_from(kubeconfig.to_config(&timeouts, read_timeout)).map_err(
                    |source| MemberError::Build {
                        server: kubeconfig.server().to_string(),
                        source,
                    },
                )
            };
            let client = build(true)?;
            let watch_client = build(false)?;
            Ok(Arc::new(MemberCluster {
                uid,
                discovery: DiscoveryCache::new(client.clone()),
                kubeconfig,
                client,
                watch_client,
            }))
        })
        .await
        .map_err(MemberError::BuildInterrupted)?
    }
}
