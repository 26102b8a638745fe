#!/usr/bin/env bash
# Runs every test: installs what is missing (nats-server 2.15, PostgreSQL, Node packages),
# starts NATS JetStream and a throwaway Postgres on free loopback ports (or uses
# CHAT_TEST_NATS_URL / CHAT_TEST_DATABASE_URL when set), checks formatting and lints, runs
# the Rust tests and the end-to-end tests with the stock socket.io-client, and stops what it
# started.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
# Style and lints first: they need nothing started and fail in seconds.
cargo fmt --all --check
cargo clippy --workspace --all-targets --release -- -D warnings
export CHAT_RUN_DIR="$ROOT/.test-run/$$"
# shellcheck source=services.sh
source scripts/services.sh
trap 'stop_services; rm -rf "$CHAT_RUN_DIR"' EXIT
start_services
echo "NATS $CHAT_TEST_NATS_URL, Postgres $CHAT_TEST_DATABASE_URL" >&2

cargo build --release --bin chat
cargo test --workspace --release

(cd e2e && { [ -d node_modules ] || npm ci --no-audit --no-fund --silent; })
export CHAT_BIN="$ROOT/target/release/chat"
node --test --test-concurrency=1 --test-timeout=120000 e2e/test/
# Every suite again on the embedded mode (file log + SQLite, one node: no NATS, no Postgres),
# with a cache that keeps no aggregate it is not using: every command reloads what it needs
# from a snapshot and the log.
CHAT_E2E_BACKEND=embedded CHAT_CACHE_MB=0 node --test --test-concurrency=1 --test-timeout=120000 e2e/test/
