//! Kubeconfig checks: refused and unsupported keys, malformed data, and no secret in any
//! error or `Debug` output.

use crate::common::*;
use krake_member::{AuthMethod, MemberClients, MemberConfig, MemberError, MemberKubeconfig};
use serde_json::{Map, Value, json};

fn with(kc: &Map<String, Value>, f: impl FnOnce(&mut Value)) -> Map<String, Value> {
    let mut v = Value::Object(kc.clone());
    f(&mut v);
    match v {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

fn base() -> Map<String, Value> {
    kubeconfig_token("https://127.0.0.1:6443", Pki::new().ca.cert_pem(), TOKEN)
}

#[tokio::test]
async fn keys_that_run_programs_or_read_files_are_refused_before_loading() {
    let cases = [
        (
            "users",
            "user",
            "exec",
            json!({"command": "/bin/sh", "args": ["-c", "touch /tmp/pwned"]}),
        ),
        (
            "users",
            "user",
            "auth-provider",
            json!({"name": "gcp", "config": {"cmd-path": "/bin/sh"}}),
        ),
        ("users", "user", "tokenFile", json!("/etc/shadow")),
        (
            "users",
            "user",
            "client-certificate",
            json!("/etc/krake/cert.pem"),
        ),
        ("users", "user", "client-key", json!("/etc/krake/key.pem")),
        (
            "clusters",
            "cluster",
            "certificate-authority",
            json!("/etc/krake/ca.pem"),
        ),
    ];
    let members = MemberClients::new(MemberConfig::default());
    for (list, section, key, value) in cases {
        let kc = with(&base(), |v| v[list][0][section][key] = value.clone());
        let expected = format!("{list}[0].{section}.{key}");
        match MemberKubeconfig::parse(&kc) {
            Err(MemberError::RefusedKey { key }) => assert_eq!(key, expected),
            other => panic!("{expected}: expected RefusedKey, got {other:?}"),
        }
        let err = members.get("uid-1", &kc).await.unwrap_err();
        assert!(err.to_string().contains(&expected), "{err}");
        assert!(err.is_kubeconfig_error());
        assert!(members.is_empty(), "a refused kubeconfig is not cached");
    }
}

#[tokio::test]
async fn a_refused_kubeconfig_drops_the_cached_client() {
    let members = MemberClients::new(MemberConfig::default());
    members.get("uid-1", &base()).await.unwrap();
    let exec = with(&base(), |v| {
        v["users"][0]["user"]["exec"] = json!({"command": "id"})
    });
    members.get("uid-1", &exec).await.unwrap_err();
    assert!(members.cached("uid-1").is_none());
}

#[test]
fn proxy_url_is_unsupported() {
    let kc = with(&base(), |v| {
        v["clusters"][0]["cluster"]["proxy-url"] = json!("http://proxy:3128")
    });
    match MemberKubeconfig::parse(&kc) {
        Err(MemberError::UnsupportedKey { key, .. }) => {
            assert_eq!(key, "clusters[0].cluster.proxy-url")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn malformed_kubeconfigs_are_typed_errors_naming_the_key() {
    type Patch = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(Patch, &str)> = vec![
        (
            Box::new(|v| v["clusters"][0]["cluster"]["server"] = json!("ftp://x")),
            "clusters[0].cluster.server",
        ),
        (
            Box::new(|v| {
                v["clusters"][0]["cluster"]["server"] = json!("https://admin:pw@10.0.0.1")
            }),
            "clusters[0].cluster.server",
        ),
        (
            Box::new(|v| {
                v["clusters"][0]["cluster"]
                    .as_object_mut()
                    .unwrap()
                    .remove("server");
            }),
            "clusters[0].cluster.server",
        ),
        (
            Box::new(|v| v["clusters"][0]["cluster"]["certificate-authority-data"] = json!("%%%")),
            "clusters[0].cluster.certificate-authority-data",
        ),
        (
            Box::new(|v| {
                v["clusters"][0]["cluster"]["certificate-authority-data"] =
                    json!("bm90IGEgY2VydA==")
            }),
            "clusters[0].cluster.certificate-authority-data",
        ),
        (
            Box::new(|v| v["clusters"][0]["cluster"]["insecure-skip-tls-verify"] = json!("yes")),
            "clusters[0].cluster.insecure-skip-tls-verify",
        ),
        (
            Box::new(|v| v["users"][0]["user"]["token"] = json!(12345)),
            "users[0].user.token",
        ),
        (
            Box::new(|v| v["users"][0]["user"]["client-certificate-data"] = json!("Y2VydA==")),
            "users[0].user.client-key-data",
        ),
        (
            Box::new(|v| v["users"][0]["user"]["client-key-data"] = json!("a2V5")),
            "users[0].user.client-certificate-data",
        ),
        (
            Box::new(|v| v["current-context"] = json!("nope")),
            "current-context",
        ),
        (
            Box::new(|v| v["contexts"][0]["context"]["user"] = json!("nobody")),
            "contexts[0].context.user",
        ),
        (
            Box::new(|v| v["contexts"][0]["context"]["cluster"] = json!("nowhere")),
            "contexts[0].context.cluster",
        ),
        (
            Box::new(|v| {
                v.as_object_mut().unwrap().remove("clusters");
            }),
            "clusters",
        ),
    ];
    for (patch, key) in cases {
        let kc = with(&base(), |v| patch(v));
        match MemberKubeconfig::parse(&kc) {
            Err(MemberError::InvalidKubeconfig { key: k, .. }) => assert_eq!(k, key),
            other => panic!("{key}: {other:?}"),
        }
    }
}

#[test]
fn context_namespace_auth_method_and_single_context_fallback() {
    let pki = Pki::new();
    let kc = kubeconfig_client_cert("https://127.0.0.1:1", pki.ca.cert_pem(), &pki.client);
    let parsed = MemberKubeconfig::parse(&kc).unwrap();
    assert_eq!(parsed.namespace(), "apps");
    assert_eq!(parsed.auth_method(), AuthMethod::ClientCertificate);
    let no_current = with(&base(), |v| {
        v.as_object_mut().unwrap().remove("current-context");
    });
    let parsed = MemberKubeconfig::parse(&no_current).unwrap();
    assert_eq!(parsed.namespace(), "default");
    assert_eq!(parsed.auth_method(), AuthMethod::Token);
    assert_eq!(parsed.server(), "https://127.0.0.1:6443");
}

/// Secrets never show in errors or `Debug` output, whatever fails.
#[tokio::test]
async fn secrets_never_appear_in_errors_or_debug_output() {
    let pki = Pki::new();
    // The token, the password and every line of the private key.
    let mut secrets = vec![TOKEN.to_string(), "hunter2-password".to_string()];
    secrets.extend(
        pki.client
            .key_pem
            .lines()
            .filter(|l| !l.starts_with("-----") && l.len() > 16)
            .map(str::to_string),
    );
    let mut full = kubeconfig_client_cert("https://127.0.0.1:1", pki.ca.cert_pem(), &pki.client);
    full = with(&full, |v| {
        v["users"][0]["user"]["token"] = json!(TOKEN);
    });
    let basic = with(&base(), |v| {
        v["users"][0]["user"] = json!({"username": "u", "password": "hunter2-password"});
    });
    let b64_key = full["users"][0]["user"]["client-key-data"]
        .as_str()
        .unwrap()
        .to_string();
    let cases: Vec<Map<String, Value>> = vec![
        full.clone(),
        basic.clone(),
        // Each failure with the secrets present in the kubeconfig.
        with(
            &full,
            |v| {
                v["users"][0]["user"]["exec"] =
                    json!({"command": "x", "env": [{"name": "T", "value": TOKEN}]})
            },
        ),
        with(&full, |v| {
            v["clusters"][0]["cluster"]["proxy-url"] = json!(format!("http://u:{TOKEN}@p:1"))
        }),
        with(&full, |v| {
            v["clusters"][0]["cluster"]["server"] = json!(format!("https://u:{TOKEN}@h:1"))
        }),
        with(&full, |v| {
            v["users"][0]["user"]["client-key-data"] = json!(format!("{TOKEN}{b64_key}"))
        }),
        with(&full, |v| {
            // A key PEM with its base64 body broken: PEM parsers quote such lines.
            let broken = pki.client.key_pem.replacen(
                "-----BEGIN PRIVATE KEY-----",
                "-----BEGIN PRIVATE KEY-----\n-----BEGIN",
                1,
            );
            v["users"][0]["user"]["client-key-data"] = json!(base64_encode(&broken));
        }),
        with(&full, |v| {
            v["users"][0]["user"]["password"] = json!("hunter2-password")
        }),
        with(&basic, |v| {
            v["users"][0]["user"]["password"] = json!(["hunter2-password"])
        }),
        with(&basic, |v| {
            v["users"][0]["user"]["token"] = json!({"x": TOKEN})
        }),
    ];
    let members = MemberClients::new(MemberConfig::default());
    let mut outputs = Vec::new();
    for (i, kc) in cases.iter().enumerate() {
        outputs.push(format!("{:?}", MemberKubeconfig::parse(kc)));
        outputs.push(format!("{:#?}", MemberKubeconfig::parse(kc)));
        match members.get(&format!("uid-{i}"), kc).await {
            Ok(member) => {
                outputs.push(format!("{member:?}"));
                outputs.push(format!("{member:#?}"));
                outputs.push(format!("{:?}", member.discovery()));
            }
            Err(e) => {
                outputs.push(e.to_string());
                outputs.push(format!("{e:?}"));
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    outputs.push(s.to_string());
                    source = s.source();
                }
            }
        }
    }
    outputs.push(format!("{members:?}"));
    assert!(
        outputs.iter().any(|o| o.contains("RefusedKey")),
        "the cases fail as intended"
    );
    for output in &outputs {
        for secret in &secrets {
            assert!(!output.contains(secret.as_str()), "secret in {output}");
        }
        assert!(!output.contains(&b64_key), "key data in {output}");
    }
}

fn base64_encode(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}
