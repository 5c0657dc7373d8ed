#!/usr/bin/env bash
# Install what building and testing needs, when missing: protoc (etcd-client's build),
# etcd (storage and end-to-end tests), prometheus (the scheduler's real-Prometheus test),
# curl and jq (the end-to-end checks script), helm (the chart tests; see install-helm.sh),
# kubernetes-validate (PyPI; checks crds/manifests/ as Kubernetes manifests in a crds test),
# kubectl (the Kubernetes API test double's tests drive it; see install-helm.sh),
# openapi-spec-validator and schemathesis (PyPI, pinned; the API server's OpenAPI tests).
# Debian/Ubuntu packages; run as root or with sudo.
set -euo pipefail

need=()
command -v protoc >/dev/null 2>&1 || need+=(protobuf-compiler)
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || need+=(etcd-client)
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
# curl and jq: hack/e2e-checks.sh, the kind suite's checks, also run by the tests.
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v jq >/dev/null 2>&1 || need+=(jq)

if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  echo "installing: ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

# sed reads everything (head would close the pipe early: SIGPIPE under pipefail).
protoc --version
etcd --version | sed -n 1p
prometheus --version 2>&1 | sed -n 1p
"$(dirname "$0")/install-helm.sh"

# PyPI tools the tests run. Debian's own Python refuses user installs into the system
# (PEP 668) unless told otherwise; a venv or pyenv Python does not.
ensure_pip() {
  if ! python3 -m pip --version >/dev/null 2>&1; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-pip >/dev/null
  fi
}
pip_install() {
  ensure_pip
  python3 -m pip install --quiet "$@" || python3 -m pip install --quiet --break-system-packages "$@"
}
# `pip_pinned PACKAGE VERSION`: installs that exact version unless it is there.
pip_pinned() {
  if [ "$(python3 -m pip show "$1" 2>/dev/null | sed -n 's/^Version: //p')" != "$2" ]; then
    pip_install "$1==$2"
  fi
}

# kubernetes-validate: the CRD manifests test runs it.
command -v kubernetes-validate >/dev/null 2>&1 || pip_install kubernetes-validate
kubernetes-validate --version
# openapi-spec-validator and schemathesis: the API server's OpenAPI tests (the document is
# valid OpenAPI 3.1; requests generated from it against a live server).
pip_pinned openapi-spec-validator 0.9.0
pip_pinned schemathesis 4.32.5
command -v openapi-spec-validator >/dev/null
schemathesis --version
