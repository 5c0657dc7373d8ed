#!/usr/bin/env bash
# End-to-end checks through the Krake API of a running installation (API server with the
# base roles bootstrapped, scheduler, garbage collector, Kubernetes cluster controller): a
# member cluster is registered and observed ONLINE with its nodes by the cluster
# controller, an Application is bound to it by the scheduler, and deleting the cluster deletes the
# Application first (garbage collector). Used by the kind suite (hack/kind-e2e.sh) and
# runnable against hack/run.sh.
#   hack/e2e-checks.sh API_URL KUBECONFIG_JSON
# KUBECONFIG_JSON: a file holding the member cluster's kubeconfig as JSON.
# Needs curl and jq. The objects are created in namespace "default" and removed again.
set -euo pipefail

api=${1:?usage: e2e-checks.sh API_URL KUBECONFIG_JSON}
kubeconfig_file=${2:?usage: e2e-checks.sh API_URL KUBECONFIG_JSON}

# Wait until `jq filter` holds for GET path (60 s).
wait_for() {
  local path=$1 filter=$2 what=$3
  for _ in $(seq 60); do
    if curl -fsS "$api$path" | jq -e "$filter" >/dev/null 2>&1; then
      echo "ok: $what"
      return 0
    fi
    sleep 1
  done
  echo "timed out waiting for: $what" >&2
  curl -sS "$api$path" >&2 || true
  return 1
}

# Wait until GET path answers 404 (60 s).
wait_gone() {
  local path=$1 what=$2 code=""
  for _ in $(seq 60); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "$api$path")
    if [ "$code" = 404 ]; then
      echo "ok: $what"
      return 0
    fi
    sleep 1
  done
  echo "timed out waiting for: $what (last status $code)" >&2
  return 1
}

# The bootstrap Job loaded the base roles.
wait_for /core/roles '.items | map(.metadata.name) | index("role:system:scheduler") != null' \
  "base roles loaded"

jq -n --slurpfile kubeconfig "$kubeconfig_file" '{
  api: "kubernetes", kind: "Cluster",
  metadata: {name: "kind", namespace: "default", labels: {location: "kind"}},
  spec: {kubeconfig: $kubeconfig[0], constraints: {cloud: {}}, custom_resources: [], metrics: []}
}' | curl -fsS -X POST -H 'content-type: application/json' --data-binary @- \
  "$api/kubernetes/namespaces/default/clusters" >/dev/null
wait_for /kubernetes/namespaces/default/clusters/kind \
  '.status.state == "ONLINE" and (.status.nodes | length) > 0 and .status.kube_controller_triggered != null' \
  "the cluster controller observed the member cluster ONLINE with its nodes"

jq -n '{
  api: "kubernetes", kind: "Application",
  metadata: {name: "echo", namespace: "default"},
  spec: {
    manifest: [{apiVersion: "v1", kind: "ConfigMap", metadata: {name: "echo"}, data: {greeting: "hello"}}],
    constraints: {cluster: {labels: ["location is kind"]}}
  }
}' | curl -fsS -X POST -H 'content-type: application/json' --data-binary @- \
  "$api/kubernetes/namespaces/default/applications" >/dev/null

wait_for /kubernetes/namespaces/default/applications/echo \
  '.status.scheduled_to.name == "kind" and .status.scheduled != null' \
  "the scheduler bound the application to the kind cluster"
wait_for /kubernetes/namespaces/default/applications/echo \
  '.metadata.owners | map(.name) | index("kind") != null' \
  "the binding made the cluster an owner of the application"

# Deleting the cluster (DELETE adds the cascade_deletion finalizer): the garbage collector
# deletes the application that depends on it, then releases the cluster.
curl -fsS -X DELETE "$api/kubernetes/namespaces/default/clusters/kind" >/dev/null
wait_gone /kubernetes/namespaces/default/applications/echo \
  "cascading deletion removed the application with its cluster"
wait_gone /kubernetes/namespaces/default/clusters/kind \
  "the cluster is gone once its dependents are"

