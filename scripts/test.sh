#!/usr/bin/env bash
# Runs every test: installs what is missing (nats-server 2.15, PostgreSQL, Node packages,
# Debian's Chromium), starts NATS JetStream and a throwaway Postgres on free loopback ports (or
# uses CHAT_TEST_NATS_URL / CHAT_TEST_DATABASE_URL when set), checks formatting and lints, runs
# the Rust tests, the end-to-end tests with the stock socket.io-client, the reference client's
# tests and the web app's in headless Chromium, and stops what it started.
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

# No separate `cargo build --bin chat`: resolved for `chat` alone, its features differ from the
# workspace's with dev-dependencies (rustix, reqwest), so it compiled every crate of ours a
# second time, and `cargo test` then rebuilt target/release/chat anyway (for the package's
# integration tests). The binary the end-to-end tests run is that one.
cargo test --workspace --release
[ -x target/release/chat ] || { echo "cargo test built no target/release/chat" >&2; exit 1; }

for dir in e2e client web; do
  (cd "$dir" && { [ -d node_modules ] || npm ci --no-audit --no-fund --silent; })
done
# The client's types against the samples the wire golden tests wrote, the web app's types, and
# the committed web build (what `chat serve` embeds) against a fresh one from its sources.
(cd client && npm run --silent build && npm run --silent check)
(cd web && npm run --silent check && npm run --silent build)
if [ -n "$(git status --porcelain -- web/dist)" ]; then
  git status --short -- web/dist >&2
  echo "web/dist differs from its sources: run 'npm run build' in web/ and commit web/dist" >&2
  exit 1
fi
if ! command -v chromium >/dev/null; then
  echo "installing Chromium (Debian package)" >&2
  apt_install chromium fonts-noto-color-emoji
fi
export CHAT_BIN="$ROOT/target/release/chat"
node --test --test-concurrency=1 --test-timeout=120000 e2e/test/
# The client against a real server (kill -9, WebSocket blocked, HTTP down), then the web app
# in headless Chromium; both on the embedded mode, the one `chat serve` runs by default.
node --test --test-concurrency=1 --test-timeout=120000 client/test/*.test.mjs
node --test --test-concurrency=1 --test-timeout=120000 web/test/
# Every suite again on the embedded mode (file log + SQLite, one node: no NATS, no Postgres),
# with a cache that keeps no aggregate it is not using: every command reloads what it needs
# from a snapshot and the log.
CHAT_E2E_BACKEND=embedded CHAT_CACHE_MB=0 node --test --test-concurrency=1 --test-timeout=120000 e2e/test/
