#!/usr/bin/env bash
# The kind suite (test tier 5): builds the image, installs the Helm chart on a kind cluster,
# registers that same cluster as a Krake member cluster and checks that an Application is
# scheduled to it and cascading deletion works, through the real Ingress-less Service.
# Needs docker, kind, kubectl, helm, curl and jq; runs in GitHub Actions
# (.github/workflows/kind.yml), not on the build machines (no container engine there).
#   KIND_CLUSTER   kind cluster name (default krake-e2e; created when missing)
#   KRAKE_IMAGE    image to build and load (default krake:e2e)
#   KEEP_CLUSTER   1: do not delete a cluster this script created
set -euo pipefail
cd "$(dirname "$0")/.."

cluster=${KIND_CLUSTER:-krake-e2e}
image=${KRAKE_IMAGE:-krake:e2e}
namespace=krake-system
release=krake
port=18080
api="http://127.0.0.1:$port"

for tool in docker kind kubectl helm curl jq; do
  command -v "$tool" >/dev/null || { echo "kind-e2e: $tool is required" >&2; exit 1; }
done

created=0
if ! kind get clusters | grep -qx "$cluster"; then
  kind create cluster --name "$cluster" --wait 120s
  created=1
fi
pf_pid=""
cleanup() {
  status=$?
  [ -n "$pf_pid" ] && kill "$pf_pid" 2>/dev/null || true
  if [ "$status" -ne 0 ]; then
    echo "--- kind-e2e failed; state of $namespace:" >&2
    kubectl -n "$namespace" get all -o wide >&2 || true
    for deploy in api scheduler garbage-collector kubernetes-cluster; do
      echo "--- logs of $release-$deploy" >&2
      kubectl -n "$namespace" logs "deploy/$release-$deploy" --tail=100 >&2 || true
    done
  fi
  if [ "$created" = 1 ] && [ "${KEEP_CLUSTER:-0}" != 1 ]; then
    kind delete cluster --name "$cluster"
  fi
}
trap cleanup EXIT

kubectl config use-context "kind-$cluster"
docker build -f hack/Dockerfile -t "$image" .
kind load docker-image "$image" --name "$cluster"

helm upgrade --install "$release" charts/krake \
  --namespace "$namespace" --create-namespace \
  --set image.repository="${image%:*}" --set image.tag="${image##*:}" \
  --set image.pullPolicy=Never \
  --wait --timeout 5m
kubectl -n "$namespace" rollout status "deploy/$release-api" --timeout 120s
kubectl -n "$namespace" rollout status "deploy/$release-scheduler" --timeout 120s
kubectl -n "$namespace" rollout status "deploy/$release-garbage-collector" --timeout 120s
kubectl -n "$namespace" rollout status "deploy/$release-kubernetes-cluster" --timeout 120s
# The bootstrap Job ran as a post-install hook (helm --wait waited for it; it is deleted
# once it succeeded).

kubectl -n "$namespace" port-forward "svc/$release-api" "$port:8080" >/dev/null &
pf_pid=$!
for _ in $(seq 60); do
  curl -fsS "$api/readyz" >/dev/null 2>&1 && break
  sleep 1
done
curl -fsS "$api/readyz" >/dev/null

# This kind cluster as a member cluster, reached from inside through its own Service.
work=$(mktemp -d)
kind get kubeconfig --name "$cluster" --internal > "$work/kubeconfig"
kubectl config view --kubeconfig "$work/kubeconfig" --flatten --raw -o json |
  jq '.clusters[0].cluster.server = "https://kubernetes.default.svc"' > "$work/kubeconfig.json"
hack/e2e-checks.sh "$api" "$work/kubeconfig.json"
rm -rf "$work"


# Every controller counts its reconciles on /metrics.
for deploy in scheduler garbage-collector kubernetes-cluster; do
  kubectl -n "$namespace" port-forward "deploy/$release-$deploy" 18081:8081 >/dev/null &
  ops_pid=$!
  metrics=""
  for _ in $(seq 30); do
    metrics=$(curl -fsS http://127.0.0.1:18081/metrics 2>/dev/null) && break
    sleep 1
  done
  kill "$ops_pid" 2>/dev/null || true
  wait "$ops_pid" 2>/dev/null || true
  echo "$metrics" | grep -q '^krake_controller_reconcile' ||
    { echo "no reconcile metrics from $deploy" >&2; exit 1; }
  echo "ok: $deploy serves its metrics"
done
echo "kind-e2e: all checks passed"
