#!/usr/bin/env bash
# Run Krake locally: the API server on its embedded store (./krake-data) and every
# controller in one process. Ctrl-C stops both.
#   KRAKE_DATA_DIR   data directory (default ./krake-data)
#   KRAKE_PORT       API port (default 8080); controller ops endpoints on KRAKE_OPS_PORT (8081)
set -euo pipefail
cd "$(dirname "$0")/.."

data=${KRAKE_DATA_DIR:-./krake-data}
port=${KRAKE_PORT:-8080}
ops=${KRAKE_OPS_PORT:-8081}
target=${CARGO_TARGET_DIR:-target}

cargo build --release -p krake-api-server -p krake-controller

pids=()
stop() {
  trap - EXIT INT TERM
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait || true
}
trap stop EXIT INT TERM

"$target/release/krake-api" --data-dir "$data" --host 127.0.0.1 --port "$port" &
pids+=($!)
# The controllers wait for the API on their own (their /readyz says 503 until synced).
"$target/release/krake-controller" all --api-url "http://127.0.0.1:$port" --ops-address "127.0.0.1:$ops" &
pids+=($!)
echo "Krake API on http://127.0.0.1:$port, controller ops on http://127.0.0.1:$ops (Ctrl-C stops)"
# Whichever stops first stops the other.
wait -n
