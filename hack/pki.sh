#!/usr/bin/env sh
# Write a development PKI (CA, API server certificate, client certificates per user).
#   hack/pki.sh --out DIR [--host NAME]...
# Serve it with:
#   krake-api --tls-enabled true --tls-cert DIR/server.pem --tls-key DIR/server-key.pem \
#     --tls-client-ca DIR/ca.pem
set -eu
root="$(cd "$(dirname "$0")/.." && pwd)"
exec cargo run -q --manifest-path "$root/Cargo.toml" -p krake-testkit --bin krake-pki -- "$@"
