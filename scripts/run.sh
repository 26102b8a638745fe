#!/usr/bin/env bash
# Runs the production pairing locally: starts NATS JetStream and a Postgres (as the tests do)
# under ./data/run, then `chat serve` on them on http://127.0.0.1:3000. (With nothing
# configured, `cargo run --release -- serve` runs on embedded storage instead.) Ctrl-C stops
# everything.
set -euo pipefail
cd "$(dirname "$0")/.."
export CHAT_RUN_DIR="$(pwd)/data/run.$$"
source scripts/services.sh
trap 'stop_services; rm -rf "$CHAT_RUN_DIR"' EXIT
unset CHAT_TEST_NATS_URL CHAT_TEST_DATABASE_URL
start_services
export CHAT_NATS_URL="$CHAT_TEST_NATS_URL"
export CHAT_DATABASE_URL="${CHAT_TEST_DATABASE_URL%/postgres}/chat"
export CHAT_JWT_SECRET="${CHAT_JWT_SECRET:-dev-secret-change-me}"
# A fresh master key per run, like the fresh NATS and Postgres it starts.
export CHAT_MASTER_KEY="${CHAT_MASTER_KEY:-$(python3 -c 'import secrets; print(secrets.token_hex(32))')}"
cargo build --release --bin chat
cat <<MSG
Create a user and a token in another shell:
  CHAT_NATS_URL=$CHAT_NATS_URL target/release/chat users add alice --name Alice
  CHAT_JWT_SECRET=$CHAT_JWT_SECRET target/release/chat token --user alice
MSG
target/release/chat serve "$@"
