# Contributor recipes (https://github.com/casey/just: `cargo install just`). Each recipe is a
# plain command: read it to run the same thing without just.

set shell := ["bash", "-euo", "pipefail", "-c"]

# List the recipes.
default:
    @just --list

# The API server on its embedded store and every controller, locally (Ctrl-C stops).
run:
    hack/run.sh

# The README's test command: installs the tools it needs, then every test of the workspace.
test:
    hack/test.sh

# The tests of one crate, e.g. `just test-crate krake-runtime`.
test-crate crate:
    cargo test -p {{crate}}

# Formatting and lints, as CI checks them.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets --locked -- -D warnings

# Format the workspace.
fmt:
    cargo fmt --all

# What CI runs on every submission.
ci:
    bash .ci/run

# Licences, advisories, duplicate versions and sources (deny.toml); needs `cargo install cargo-deny`.
deny:
    cargo deny --all-features check

# The benchmarks (figures go to docs/benchmarks.md with the command and the machine).
bench:
    cargo bench -p krake-api-server --bench load
    cargo bench -p krake-scheduler --bench scheduling
    cargo bench -p krake-kubernetes-cluster --bench observe

# The Helm chart: lint, then the chart tests (rendering, schema, hardening, parsed command lines).
chart:
    hack/install-helm.sh
    helm lint --strict charts/krake
    cargo test -p krake-testkit --test helm_chart

# Regenerate the JSON Schemas, CustomResourceDefinitions and the API's OpenAPI document from
# the types and routes (a test fails on drift).
generate:
    cargo run -p krake-crds --bin krake-crds-schemas
    cargo run -p krake-api-server --bin krake-api -- openapi --out api-server/openapi.json

# A development PKI (CA, server and one client certificate per controller user) in `dir`.
pki dir="pki":
    hack/pki.sh --out {{dir}}

# The kind suite (needs Docker and kind).
kind:
    hack/kind-e2e.sh
