//! The crate's one error type.

/// Everything that can go wrong when reaching a member cluster.
///
/// No variant carries a credential or any value of the kubeconfig other than the
/// server URL (which is refused when it holds credentials): errors end up in logs and
/// in `status.reason` of Clusters, which every reader of the Cluster sees.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MemberError {
    /// The kubeconfig has a key that would make Krake run a program or read a file of
    /// the host it runs on (`exec`, `auth-provider`, `tokenFile`, file paths for
    /// certificates and keys). The kubeconfig is never loaded.
    #[error(
        "kubeconfig key {key} is refused: Krake does not run programs or read files named in a kubeconfig"
    )]
    RefusedKey {
        /// Path of the key, e.g. `users[0].user.exec`.
        key: String,
    },

    /// The kubeconfig has a key Krake deliberately does not support (see the crate
    /// documentation: `proxy-url`, and `insecure-skip-tls-verify` when disallowed).
    #[error("kubeconfig key {key} is not supported: {why}")]
    UnsupportedKey {
        /// Path of the key, e.g. `clusters[0].cluster.proxy-url`.
        key: String,
        /// Why it is not supported.
        why: &'static str,
    },

    /// The kubeconfig is malformed: a key is missing, has the wrong type or an
    /// unusable value. The value itself is never quoted.
    #[error("invalid kubeconfig: {key} {problem}")]
    InvalidKubeconfig {
        /// Path of the key, e.g. `users[0].user.client-key-data`.
        key: String,
        /// What is wrong with it.
        problem: &'static str,
    },

    /// kube could not build a client from a checked kubeconfig (TLS set-up).
    #[error("cannot build a client for member cluster {server}")]
    Build {
        /// The cluster's API server URL.
        server: String,
        /// kube's error.
        #[source]
        source: kube::Error,
    },

    /// The task building a client ended abnormally (it panicked or the runtime is
    /// shutting down).
    #[error("building a member client was interrupted")]
    BuildInterrupted(#[source] tokio::task::JoinError),

    /// Discovery of a group version failed (the cluster is unreachable or answered an
    /// error other than 404).
    #[error("discovery of {group_version} on the member cluster failed")]
    Discovery {
        /// `group/version`, or `version` for the core group.
        group_version: String,
        /// kube's error.
        #[source]
        source: kube::Error,
    },

    /// The member cluster does not serve this kind, even after refreshing discovery.
    #[error("kind {kind} of {group_version} is not served by the member cluster")]
    UnknownKind {
        /// `group/version`, or `version` for the core group.
        group_version: String,
        /// The kind.
        kind: String,
    },
}

impl MemberError {
    /// Whether the error comes from the kubeconfig itself (so retrying with the same
    /// kubeconfig cannot help), as opposed to the cluster or the network.
    pub fn is_kubeconfig_error(&self) -> bool {
        matches!(
            self,
            MemberError::RefusedKey { .. }
                | MemberError::UnsupportedKey { .. }
                | MemberError::InvalidKubeconfig { .. }
                | MemberError::Build { .. }
        )
    }
}
