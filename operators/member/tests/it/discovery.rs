//! The discovery cache: hits, refresh on a miss, typed error for unknown kinds,
//! invalidation.

use std::sync::atomic::Ordering;

use crate::common::*;
use krake_member::{MemberClients, MemberConfig, MemberError};
use kube::core::GroupVersionKind;
use kube::discovery::Scope;

#[tokio::test]
async fn resolves_from_the_server_then_from_the_cache() {
    let pki = Pki::new();
    let api = FakeApi::start(&pki).await;
    let members = MemberClients::new(MemberConfig::default());
    let member = members
        .get("uid-1", &kubeconfig_token(&api.url, &api.ca_pem, TOKEN))
        .await
        .unwrap();
    let discovery = member.discovery();

    let (pod, caps) = discovery
        .resolve(&GroupVersionKind::gvk("", "v1", "Pod"))
        .await
        .unwrap();
    assert_eq!(
        (pod.plural.as_str(), pod.api_version.as_str()),
        ("pods", "v1")
    );
    assert_eq!(caps.scope, Scope::Namespaced);
    let (node, caps) = discovery
        .resolve(&GroupVersionKind::gvk("", "v1", "Node"))
        .await
        .unwrap();
    assert_eq!(node.plural, "nodes");
    assert_eq!(caps.scope, Scope::Cluster);
    let (widget, _) = discovery
        .resolve(&GroupVersionKind::gvk("example.com", "v1", "Widget"))
        .await
        .unwrap();
    assert_eq!(widget.plural, "widgets");
    assert_eq!(widget.api_version, "example.com/v1");
    assert_eq!(
        (
            api.count("GET /api/v1"),
            api.count("GET /apis/example.com/v1")
        ),
        (1, 1)
    );
    assert_eq!(
        discovery.cached_group_versions(),
        vec!["example.com/v1", "v1"]
    );

    // Served from the cache, even while the server fails.
    api.behaviour.fail_with.store(503, Ordering::SeqCst);
    discovery
        .resolve(&GroupVersionKind::gvk("", "v1", "Pod"))
        .await
        .unwrap();
    assert_eq!(api.count("GET /api/v1"), 1);
}

#[tokio::test]
async fn a_miss_refreshes_once_then_is_a_typed_error_and_a_new_kind_is_found() {
    let pki = Pki::new();
    let api = FakeApi::start(&pki).await;
    let members = MemberClients::new(MemberConfig::default());
    let member = members
        .get("uid-1", &kubeconfig_token(&api.url, &api.ca_pem, TOKEN))
        .await
        .unwrap();
    let gadget = GroupVersionKind::gvk("example.com", "v1", "Gadget");
    member
        .discovery()
        .resolve(&GroupVersionKind::gvk("example.com", "v1", "Widget"))
        .await
        .unwrap();

    match member.discovery().resolve(&gadget).await {
        Err(MemberError::UnknownKind {
            group_version,
            kind,
        }) => {
            assert_eq!(
                (group_version.as_str(), kind.as_str()),
                ("example.com/v1", "Gadget")
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        api.count("GET /apis/example.com/v1"),
        2,
        "one refresh for the miss"
    );

    // A CRD adds the kind: the next miss refreshes and finds it.
    api.example_kinds
        .lock()
        .unwrap()
        .push(("Gadget".into(), "gadgetries".into(), false));
    let (ar, caps) = member.discovery().resolve(&gadget).await.unwrap();
    assert_eq!(ar.plural, "gadgetries", "the server's plural, not a guess");
    assert_eq!(caps.scope, Scope::Cluster);
    assert_eq!(api.count("GET /apis/example.com/v1"), 3);

    // A group version the server does not serve (404) is an unknown kind too.
    let missing = GroupVersionKind::gvk("other.io", "v1", "Thing");
    assert!(matches!(
        member.discovery().resolve(&missing).await,
        Err(MemberError::UnknownKind { .. })
    ));
    // A server failure is a discovery error, not an unknown kind.
    api.behaviour.fail_with.store(503, Ordering::SeqCst);
    assert!(matches!(
        member.discovery().resolve(&missing).await,
        Err(MemberError::Discovery { .. })
    ));
}

#[tokio::test]
async fn invalidation_forgets_kinds_of_deleted_crds() {
    let pki = Pki::new();
    let api = FakeApi::start(&pki).await;
    let members = MemberClients::new(MemberConfig::default());
    let member = members
        .get("uid-1", &kubeconfig_token(&api.url, &api.ca_pem, TOKEN))
        .await
        .unwrap();
    let widget = GroupVersionKind::gvk("example.com", "v1", "Widget");
    let pod = GroupVersionKind::gvk("", "v1", "Pod");
    member.discovery().resolve(&widget).await.unwrap();
    member.discovery().resolve(&pod).await.unwrap();

    // The CRD is deleted; the controller's CRD watcher invalidates the group.
    api.example_kinds.lock().unwrap().clear();
    member.discovery().resolve(&widget).await.unwrap(); // stale until invalidated
    member.discovery().invalidate_group("example.com");
    assert_eq!(member.discovery().cached_group_versions(), vec!["v1"]);
    assert!(matches!(
        member.discovery().resolve(&widget).await,
        Err(MemberError::UnknownKind { .. })
    ));

    // Invalidating the whole cluster through the client cache.
    assert!(members.invalidate_discovery("uid-1"));
    assert!(member.discovery().cached_group_versions().is_empty());
    member.discovery().resolve(&pod).await.unwrap();
    assert_eq!(api.count("GET /api/v1"), 2);
    assert!(!members.invalidate_discovery("uid-unknown"));
}
