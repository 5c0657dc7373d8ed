#!/usr/bin/env bash
# The one test command: installs the tools it needs, then runs every test of the
# workspace (unit, black-box HTTP, storage conformance against a real etcd, multi-process).
set -euo pipefail
cd "$(dirname "$0")/.."

hack/install-tools.sh

# Tests that need etcd, helm or prometheus fail (never skip) when it is missing.
cargo test --workspace --lib --bins --tests --locked -- --test-threads="${KRAKE_TEST_THREADS:-4}"
# The examples in the crate docs compile (and run, where they are not `no_run`).
cargo test --workspace --doc --locked
