//! The Helm chart (`charts/krake`), rendered by a real `helm` (installed by the test
//! command, see `hack/install-helm.sh`): lint, least privilege and hardening of every
//! pod, consistency between the objects (etcd members, Services, ports, URLs), and the
//! rendered command lines parsed by the binaries' own command-line parsers.
//!
//! The kind suite (`hack/kind-e2e.sh`) installs the same chart on a real cluster.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Parser;
use krake_testkit::tools::find_program;
use serde_json::Value;

const NAMESPACE: &str = "krake-system";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("the testkit is two levels below the repository root")
        .to_path_buf()
}

/// `$KRAKE_TEST_HELM`, `PATH`, or where `hack/install-helm.sh` puts it.
fn helm() -> PathBuf {
    find_program(
        "helm",
        "KRAKE_TEST_HELM",
        &[
            PathBuf::from("/usr/local/bin/helm"),
            repo().join("target/tools/bin/helm"),
        ],
        "run hack/install-helm.sh (the test command does)",
    )
}

fn helm_run(args: &[&str]) -> std::process::Output {
    Command::new(helm())
        .args(args)
        .current_dir(repo())
        .output()
        .expect("run helm")
}

/// The chart rendered with `--set` values, as JSON documents.
fn render(sets: &[&str]) -> Vec<Value> {
    let mut args = vec![
        "template",
        "krake",
        "charts/krake",
        "--namespace",
        NAMESPACE,
    ];
    for set in sets {
        args.extend(["--set", set]);
    }
    let output = helm_run(&args);
    assert!(
        output.status.success(),
        "helm template {sets:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("UTF-8 manifests");
    serde_saphyr::from_multiple::<Value>(&text)
        .expect("helm renders valid YAML")
        .into_iter()
        .filter(|doc| !doc.is_null())
        .collect()
}

fn kind(doc: &Value) -> &str {
    doc["kind"].as_str().unwrap_or_default()
}

fn name(doc: &Value) -> &str {
    doc["metadata"]["name"].as_str().unwrap_or_default()
}

fn find<'a>(docs: &'a [Value], kind_: &str, name_: &str) -> &'a Value {
    docs.iter()
        .find(|d| kind(d) == kind_ && name(d) == name_)
        .unwrap_or_else(|| panic!("no {kind_} {name_} rendered"))
}

fn pod_spec(doc: &Value) -> Option<&Value> {
    match kind(doc) {
        "Deployment" | "StatefulSet" | "Job" => Some(&doc["spec"]["template"]["spec"]),
        _ => None,
    }
}

fn args(container: &Value) -> Vec<String> {
    container["args"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().expect("string argument").to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    let prefix = format!("--{name}=");
    args.iter().find_map(|a| a.strip_prefix(&prefix))
}

fn container<'a>(docs: &'a [Value], kind_: &str, name_: &str) -> &'a Value {
    &pod_spec(find(docs, kind_, name_)).expect("a workload")["containers"][0]
}

#[test]
fn chart_passes_helm_lint() {
    let output = helm_run(&["lint", "--strict", "charts/krake"]);
    assert!(
        output.status.success(),
        "helm lint: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn default_installation_objects() {
    let docs = render(&[]);
    let objects: BTreeSet<(String, String)> = docs
        .iter()
        .map(|d| (kind(d).to_string(), name(d).to_string()))
        .collect();
    let expected: BTreeSet<(String, String)> = [
        ("ServiceAccount", "krake"),
        ("Service", "krake-etcd-headless"),
        ("StatefulSet", "krake-etcd"),
        ("Deployment", "krake-api"),
        ("Service", "krake-api"),
        ("PodDisruptionBudget", "krake-api"),
        ("Deployment", "krake-scheduler"),
        ("Deployment", "krake-garbage-collector"),
        ("Deployment", "krake-kubernetes-cluster"),
        ("Job", "krake-bootstrap"),
        ("NetworkPolicy", "krake-etcd"),
    ]
    .into_iter()
    .map(|(k, n)| (k.to_string(), n.to_string()))
    .collect();
    assert_eq!(objects, expected);
}

#[test]
fn every_pod_is_hardened_and_has_no_kubernetes_api_access() {
    for sets in [&[][..], &["tls.enabled=true", "etcd.replicas=3"][..]] {
        let docs = render(sets);
        // Nothing talks to the Kubernetes API: no RBAC object at all.
        for doc in &docs {
            assert!(
                !kind(doc).contains("Role"),
                "{} {} grants Kubernetes API access",
                kind(doc),
                name(doc)
            );
        }
        let sa = find(&docs, "ServiceAccount", "krake");
        assert_eq!(sa["automountServiceAccountToken"], false);
        let mut workloads = 0;
        for doc in &docs {
            let Some(pod) = pod_spec(doc) else { continue };
            workloads += 1;
            let what = format!("{} {}", kind(doc), name(doc));
            assert_eq!(pod["automountServiceAccountToken"], false, "{what}");
            assert_eq!(pod["serviceAccountName"], "krake", "{what}");
            assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{what}");
            assert_eq!(
                pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
                "{what}"
            );
            for c in pod["containers"].as_array().expect("containers") {
                let sc = &c["securityContext"];
                assert_eq!(sc["allowPrivilegeEscalation"], false, "{what}");
                assert_eq!(sc["readOnlyRootFilesystem"], true, "{what}");
                assert_eq!(
                    sc["capabilities"]["drop"],
                    serde_json::json!(["ALL"]),
                    "{what}"
                );
                assert!(
                    c["resources"]["limits"]["memory"].is_string(),
                    "{what}: no memory limit"
                );
                assert!(
                    c["resources"]["requests"]["cpu"].is_string(),
                    "{what}: no CPU request"
                );
                if kind(doc) != "Job" {
                    assert!(
                        c["readinessProbe"].is_object(),
                        "{what}: no readiness probe"
                    );
                    assert!(c["livenessProbe"].is_object(), "{what}: no liveness probe");
                }
            }
        }
        assert_eq!(workloads, 6, "{sets:?}");
    }
}

/// The etcd members the StatefulSet creates, their peer list, the API server's
/// endpoints and the headless Service agree, for every odd member count.
#[test]
fn etcd_members_services_and_endpoints_agree() {
    for replicas in [1usize, 3, 5] {
        let docs = render(&[&format!("etcd.replicas={replicas}")]);
        let sts = find(&docs, "StatefulSet", "krake-etcd");
        assert_eq!(sts["spec"]["replicas"], replicas);
        let headless = sts["spec"]["serviceName"].as_str().expect("serviceName");
        let service = find(&docs, "Service", headless);
        assert_eq!(service["spec"]["clusterIP"], "None");
        assert_eq!(service["spec"]["publishNotReadyAddresses"], true);
        assert_eq!(
            service["spec"]["selector"],
            sts["spec"]["selector"]["matchLabels"]
        );
        let domain = format!("{headless}.{NAMESPACE}.svc");
        let members: Vec<String> = (0..replicas).map(|i| format!("krake-etcd-{i}")).collect();

        let etcd_args = args(container(&docs, "StatefulSet", "krake-etcd"));
        let peers: Vec<String> = members
            .iter()
            .map(|m| format!("{m}=http://{m}.{domain}:2380"))
            .collect();
        assert_eq!(
            flag(&etcd_args, "initial-cluster"),
            Some(peers.join(",").as_str())
        );
        assert_eq!(flag(&etcd_args, "name"), Some("$(POD_NAME)"));
        assert!(
            sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
                .is_string()
        );

        let clients: Vec<String> = members
            .iter()
            .map(|m| format!("http://{m}.{domain}:2379"))
            .collect();
        let api_args = args(container(&docs, "Deployment", "krake-api"));
        assert_eq!(
            flag(&api_args, "etcd-endpoints"),
            Some(clients.join(",").as_str())
        );
        let job_args = args(container(&docs, "Job", "krake-bootstrap"));
        assert_eq!(
            flag(&job_args, "etcd-endpoints"),
            Some(clients.join(",").as_str())
        );
    }
    for (bad, expected) in [
        ("0", "/etcd/replicas"),
        ("2", "etcd.replicas must be odd"),
        ("4", "etcd.replicas must be odd"),
    ] {
        let output = helm_run(&[
            "template",
            "krake",
            "charts/krake",
            "--set",
            &format!("etcd.replicas={bad}"),
        ]);
        assert!(!output.status.success(), "{bad} etcd members accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{bad}: {stderr}");
    }
}

/// The rendered command lines are accepted by the binaries' own parsers, and the
/// controllers reach the API through its Service.
#[test]
fn command_lines_parse_and_point_at_each_other() {
    for tls in [false, true] {
        let docs = render(&[&format!("tls.enabled={tls}")]);
        let api = container(&docs, "Deployment", "krake-api");
        assert_eq!(api["command"][0], "/usr/local/bin/krake-api");
        let api_args = args(api);
        let cli = krake_api_server::config::Cli::try_parse_from(
            std::iter::once("krake-api".to_string()).chain(api_args.iter().cloned()),
        )
        .unwrap_or_else(|e| panic!("krake-api rejects the chart's flags {api_args:?}: {e}"));
        if !tls {
            krake_api_server::config::Config::from_parts(&cli, None)
                .unwrap_or_else(|e| panic!("invalid API configuration {api_args:?}: {e}"));
        }
        assert_eq!(flag(&api_args, "tls-enabled").is_some(), tls);
        // The server exits on its own before the kubelet kills it.
        let drain: u64 = flag(&api_args, "shutdown-drain-timeout")
            .expect("a drain time")
            .parse()
            .unwrap();
        let grace = find(&docs, "Deployment", "krake-api")["spec"]["template"]["spec"]
            ["terminationGracePeriodSeconds"]
            .as_u64()
            .expect("a termination grace period");
        assert!(drain < grace, "drain {drain} s, grace period {grace} s");
        if tls {
            assert_eq!(flag(&api_args, "authorization"), Some("RBAC"));
            assert_eq!(
                flag(&api_args, "authentication-allow-anonymous"),
                Some("false")
            );
        }

        // The API Service targets the container port, probes use its scheme.
        let port = api["ports"][0]["containerPort"].as_u64().expect("port");
        assert_eq!(flag(&api_args, "port"), Some(port.to_string().as_str()));
        let service = find(&docs, "Service", "krake-api");
        assert_eq!(
            service["spec"]["ports"][0]["targetPort"],
            api["ports"][0]["name"]
        );
        let service_port = service["spec"]["ports"][0]["port"].as_u64().expect("port");
        let scheme = if tls { "HTTPS" } else { "HTTP" };
        for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
            assert_eq!(api[probe]["httpGet"]["scheme"], scheme, "{probe}");
        }
        assert_eq!(api["readinessProbe"]["httpGet"]["path"], "/readyz");

        for controller in ["scheduler", "garbage-collector", "kubernetes-cluster"] {
            let c = container(&docs, "Deployment", &format!("krake-{controller}"));
            assert_eq!(c["command"][0], "/usr/local/bin/krake-controller");
            let c_args = args(c);
            let parsed = krake_controller::cli::Args::try_parse_from(
                std::iter::once("krake-controller".to_string()).chain(c_args.iter().cloned()),
            )
            .unwrap_or_else(|e| panic!("krake-controller rejects {c_args:?}: {e}"));
            parsed
                .common
                .validate()
                .unwrap_or_else(|e| panic!("{controller}: {e}"));
            assert_eq!(c_args[0], controller);
            let url_scheme = if tls { "https" } else { "http" };
            assert_eq!(
                parsed.common.api_url,
                format!("{url_scheme}://krake-api.{NAMESPACE}.svc:{service_port}")
            );
            assert_eq!(parsed.common.tls_client_cert.is_some(), tls, "{controller}");
            let ops = parsed.common.ops_address.port();
            assert_eq!(c["ports"][0]["containerPort"], ops);
            assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
            if tls {
                let secret = &pod_spec(find(&docs, "Deployment", &format!("krake-{controller}")))
                    .expect("pod")["volumes"][0]["secret"]["secretName"];
                assert!(
                    secret.as_str().is_some_and(|s| s.ends_with("-tls")),
                    "{secret}"
                );
            }
        }
    }
}

/// etcd and the API server get the same request size limit, from which the API server
/// derives its object and body limit; the default is etcd's own.
#[test]
fn etcd_and_the_api_server_agree_on_the_request_size_limit() {
    for (sets, expected) in [
        (&[][..], 1_572_864usize),
        (&["etcd.maxRequestBytes=10485760"][..], 10_485_760),
    ] {
        let docs = render(sets);
        let etcd_args = args(container(&docs, "StatefulSet", "krake-etcd"));
        let api_args = args(container(&docs, "Deployment", "krake-api"));
        let etcd_limit = expected.to_string();
        assert_eq!(
            flag(&etcd_args, "max-request-bytes"),
            Some(etcd_limit.as_str()),
            "{etcd_args:?}"
        );
        let cli = krake_api_server::config::Cli::try_parse_from(
            std::iter::once("krake-api".to_string()).chain(api_args.iter().cloned()),
        )
        .unwrap_or_else(|e| panic!("krake-api rejects the chart's flags {api_args:?}: {e}"));
        let config = krake_api_server::config::Config::from_parts(&cli, None)
            .unwrap_or_else(|e| panic!("invalid API configuration {api_args:?}: {e}"));
        match config.storage {
            krake_api_server::config::StorageConfig::Etcd {
                max_request_bytes, ..
            } => assert_eq!(max_request_bytes, expected, "{api_args:?}"),
            other => panic!("the chart's API server does not use etcd: {other:?}"),
        }
    }
}

/// What the pods run is what the image holds: the binaries and the bootstrap file.
#[test]
fn image_holds_what_the_pods_run() {
    let dockerfile = std::fs::read_to_string(repo().join("hack/Dockerfile")).expect("Dockerfile");
    let docs = render(&[]);
    let job = container(&docs, "Job", "krake-bootstrap");
    let job_args = args(job);
    assert_eq!(job_args[0], "bootstrap");
    let file = job_args.last().expect("a file");
    assert!(
        dockerfile.contains(&format!("COPY api-server/bootstrap/base_roles.yaml {file}")),
        "the image does not hold {file}"
    );
    assert!(
        repo()
            .join("api-server/bootstrap/base_roles.yaml")
            .is_file()
    );
    for binary in ["krake-api", "krake-controller"] {
        assert!(
            dockerfile.contains(&format!("--bin {binary}")),
            "the image does not build {binary}"
        );
    }
    assert!(dockerfile.contains("COPY --from=build /out/bin/ /usr/local/bin/"));
    assert!(dockerfile.contains("USER 65532:65532"));
}

/// Only the API server pods, the bootstrap Job and etcd members reach etcd's client port;
/// only etcd members its peer port. The selectors match the real pod labels.
#[test]
fn only_the_api_server_reaches_etcd() {
    let docs = render(&[]);
    let policy = find(&docs, "NetworkPolicy", "krake-etcd");
    let labels = |kind_: &str, name_: &str| {
        find(&docs, kind_, name_)["spec"]["template"]["metadata"]["labels"].clone()
    };
    let selects = |selector: &Value, pod_labels: &Value| {
        selector["matchLabels"]
            .as_object()
            .expect("matchLabels")
            .iter()
            .all(|(k, v)| pod_labels[k] == *v)
    };
    assert!(selects(
        &policy["spec"]["podSelector"],
        &labels("StatefulSet", "krake-etcd")
    ));
    let rules = policy["spec"]["ingress"].as_array().expect("ingress rules");
    // A pod is admitted on a port by a rule naming the port whose `from` is absent (every
    // peer) or selects it.
    let admitted = |port: &str, kind_: &str, name_: &str| {
        let pod = labels(kind_, name_);
        rules
            .iter()
            .filter(|r| {
                r["ports"]
                    .as_array()
                    .is_some_and(|p| p.iter().any(|p| p["port"] == port))
            })
            .any(|r| match r["from"].as_array() {
                None => true,
                Some(peers) => peers.iter().any(|peer| selects(&peer["podSelector"], &pod)),
            })
    };
    assert!(admitted("client", "Deployment", "krake-api"));
    assert!(admitted("client", "Job", "krake-bootstrap"));
    assert!(admitted("peer", "StatefulSet", "krake-etcd"));
    for controller in [
        "krake-scheduler",
        "krake-garbage-collector",
        "krake-kubernetes-cluster",
    ] {
        assert!(
            !admitted("client", "Deployment", controller),
            "{controller}"
        );
        assert!(!admitted("peer", "Deployment", controller), "{controller}");
    }
    assert!(!admitted("peer", "Deployment", "krake-api"));
    assert!(admitted("metrics", "Deployment", "krake-scheduler"));
    // The named ports exist on the etcd container.
    let etcd = container(&docs, "StatefulSet", "krake-etcd");
    let names: Vec<&str> = etcd["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["client", "peer", "metrics"]);

    let off = render(&["networkPolicy.enabled=false"]);
    assert!(off.iter().all(|d| kind(d) != "NetworkPolicy"));
}

/// Mistyped or invalid values are refused with a message naming them, before anything
/// is rendered.
#[test]
fn invalid_values_are_refused_by_the_schema() {
    for (set, expected) in [
        (
            "api.replica=3",
            "additional properties 'replica' not allowed",
        ),
        ("api.authorization=rbac", "/api/authorization"),
        ("controllers.workers=0", "/controllers/workers"),
        (
            "controllers.scheduler.metricsMaxAge=10days",
            "metricsMaxAge",
        ),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
        ("etcd.maxRequestBytes=1000", "/etcd/maxRequestBytes"),
    ] {
        let output = helm_run(&["template", "krake", "charts/krake", "--set", set]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{set} accepted");
        assert!(stderr.contains(expected), "{set}: {stderr}");
    }
}
