#!/usr/bin/env bash
# The whole benchmark comparison of issue 6, on this machine, in one run: starts NATS and
# Postgres (as the tests do), `chat serve` on them, and the two Node.js socket.io references
# (bench/node-ref: broadcast only, and INSERT into Postgres before the ack); runs every scenario
# of `bench` against each, then the replay, as-of, webhook and history scenarios; writes JSON results, results.md and
# throughput.svg into bench/results (or $BENCH_OUT). Loopback only; stops what it started.
#
#   scripts/bench.sh            # the full run (about 35 minutes)
#   BENCH_QUICK=1 scripts/bench.sh   # a smoke run: short steps, fewer sockets, a small replay
#   BENCH_BASELINE=REV scripts/bench.sh   # also the chat scenarios on `chat` as it was at REV
#       (built in a worktree under .bench-run, or BENCH_BASELINE_BIN=path), run right before
#       the current one (after it with BENCH_BASELINE_AFTER=1, to see what the order does), so
#       that a change's cost is read within one run
#   BENCH_ONLY=chat scripts/bench.sh      # only the chat scenarios (and the baseline's)
#   BENCH_ONLY=history scripts/bench.sh   # only replay, search, as-of, webhook and history
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=${BENCH_OUT:-$ROOT/bench/results}
mkdir -p "$OUT"
export CHAT_RUN_DIR="$ROOT/.bench-run/$$"
# shellcheck source=services.sh
source scripts/services.sh
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  stop_services
  rm -rf "$CHAT_RUN_DIR"
}
trap cleanup EXIT
unset CHAT_TEST_NATS_URL CHAT_TEST_DATABASE_URL
start_services
PG_BASE="${CHAT_TEST_DATABASE_URL%/postgres}"

if [ -n "${BENCH_QUICK:-}" ]; then
  SECS=3; STEP_SECS=3; MAX_RATE=6000; CONNECTIONS=2000; REPLAY_EVENTS=50000; FANOUT_SECS=3
  HISTORY=(--messages 100000 --pair 20000 --small 2000); ASOF_MESSAGES=50000
else
  SECS=30; STEP_SECS=10; MAX_RATE=40000; CONNECTIONS=${BENCH_CONNECTIONS:-19000}; REPLAY_EVENTS=1000000; FANOUT_SECS=20
  HISTORY=(--messages 1000000 --pair 200000 --small 100000); ASOF_MESSAGES=1000000
fi

cargo build --release --bin chat
cargo build --release -p bench
BASE_BIN=${BENCH_BASELINE_BIN:-}
if [ -n "${BENCH_BASELINE:-}" ] && [ -z "$BASE_BIN" ]; then
  base_dir="$ROOT/.bench-run/baseline-$BENCH_BASELINE"
  [ -d "$base_dir" ] || git worktree add --detach "$base_dir" "$BENCH_BASELINE"
  (cd "$base_dir" && CARGO_TARGET_DIR="$ROOT/.bench-run/baseline-target" cargo build --release --bin chat)
  BASE_BIN="$ROOT/.bench-run/baseline-target/release/chat"
fi
(cd bench/node-ref && { [ -d node_modules ] || npm ci --no-audit --no-fund --silent; })
SECRET="bench-secret-$$"

# Starts a server in the background; sets URL and PID from the line it prints when listening.
start_server() {
  local log="$CHAT_RUN_DIR/$1.log"; shift
  "$@" >"$log" 2>&1 &
  PID=$!
  PIDS+=("$PID")
  for _ in $(seq 1 300); do
    URL=$(grep -o 'listening on http://[0-9.:]*' "$log" | head -1 | sed 's/listening on //') || true
    [ -n "$URL" ] && return 0
    sleep 0.1
  done
  echo "server did not start: $(cat "$log")" >&2
  exit 1
}

{
  echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  echo "kernel: $(uname -sr); nats-server $("$NATS_BIN" --version 2>/dev/null | head -1); $("$PG_BIN/postgres" --version); node $(node --version)"
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ); commit: $(git rev-parse --short HEAD)"
} >"$OUT/machine.txt"

# The scenarios under load, then the connections scenario on a freshly started server (its
# memory reading must not include what the load left behind).
scenarios() {
  local name=$1 common=(--name "$1" --url "$URL" --secret "$SECRET" --pid "$PID" "${@:2}")
  echo "== $name: ack" >&2
  target/release/bench scenario ack "${common[@]}" --rate 2000 --secs "$SECS" --out "$OUT/$name-ack.json"
  echo "== $name: throughput" >&2
  target/release/bench scenario throughput "${common[@]}" --rate 1000 --increment 1000 --max "$MAX_RATE" --secs "$STEP_SECS" --out "$OUT/$name-throughput.json"
  echo "== $name: fanout" >&2
  target/release/bench scenario fanout "${common[@]}" --size 1000 --rate 50 --secs "$FANOUT_SECS" --out "$OUT/$name-fanout.json"
}
connections() {
  local name=$1 common=(--name "$1" --url "$URL" --secret "$SECRET" --pid "$PID" "${@:2}")
  echo "== $name: connections" >&2
  target/release/bench scenario connections "${common[@]}" --size "$CONNECTIONS" --out "$OUT/$name-connections.json"
}

# start_chat N [binary]: a `chat serve` on stream BENCHN and database chatbenchN (or
# $CHAT_DATABASE when set), with the variables of EXTRA_ENV too.
EXTRA_ENV=()
start_chat() {
  start_server chat env "${EXTRA_ENV[@]}" CHAT_NATS_URL="$CHAT_TEST_NATS_URL" CHAT_DATABASE_URL="${CHAT_DATABASE:-$PG_BASE/chatbench$1}" \
    CHAT_JWT_SECRET="$SECRET" CHAT_MASTER_KEY="$(printf '5e%.0s' $(seq 32))" CHAT_LISTEN=127.0.0.1:0 CHAT_RATE_MESSAGES_PER_MIN=0 CHAT_RATE_EVENTS_PER_MIN=0 \
    CHAT_STREAM="BENCH$1" CHAT_SUBJECT_PREFIX="bench$1" RUST_LOG=warn "${2:-target/release/chat}" serve
}
start_node() { start_server node env PORT=0 JWT_SECRET="$SECRET" node bench/node-ref/server.js; }
start_node_pg() {
  start_server node-pg env PORT=0 JWT_SECRET="$SECRET" DATABASE_URL="$PG_BASE/postgres" node bench/node-ref/server.js
}

# Each server runs alone: started before its scenarios, stopped after them.
baseline() { if [ -n "$BASE_BIN" ]; then start_chat 0 "$BASE_BIN"; scenarios chat-baseline --projections; kill "$PID"; fi; }
if [ "${BENCH_ONLY:-}" != history ]; then
[ -n "${BENCH_BASELINE_AFTER:-}" ] || baseline
start_chat 1; scenarios chat --projections; kill "$PID"
# Sends that mention the 10 members of their room (issue 16), on a server of its own.
start_chat 3
echo "== chat: ack with 10 mentions a send" >&2
target/release/bench scenario ack --name chat --url "$URL" --secret "$SECRET" --pid "$PID" --projections --mentions \
  --rate 2000 --secs "$SECS" --out "$OUT/chat-ack-mentions.json"
kill "$PID"
[ -z "${BENCH_BASELINE_AFTER:-}" ] || baseline
if [ "${BENCH_ONLY:-}" = chat ]; then
  target/release/bench report --dir "$OUT"
  exit 0
fi
start_chat 2; connections chat --projections; kill "$PID"
start_node; scenarios node; kill "$PID"
start_node; connections node; kill "$PID"
start_node_pg; scenarios node-pg; kill "$PID"
start_node_pg; connections node-pg; kill "$PID"
fi

echo "== replay: $REPLAY_EVENTS events" >&2
target/release/bench replay --nats "$CHAT_TEST_NATS_URL" --database "$PG_BASE/postgres" --events "$REPLAY_EVENTS" --out "$OUT/chat-replay.json"
mkdir -p "$CHAT_RUN_DIR/replay"
target/release/bench replay --embedded "$CHAT_RUN_DIR/replay" --events "$REPLAY_EVENTS" --out "$OUT/chat-replay-embedded.json"
rm -rf "$CHAT_RUN_DIR/replay"

# History as a feature (issue 15): as-of reads in one large conversation, on each backend.
echo "== asof: $ASOF_MESSAGES messages" >&2
target/release/bench asof --nats "$CHAT_TEST_NATS_URL" --database "$PG_BASE/postgres" --messages "$ASOF_MESSAGES" --out "$OUT/chat-asof.json"
mkdir -p "$CHAT_RUN_DIR/asof"
target/release/bench asof --embedded "$CHAT_RUN_DIR/asof" --messages "$ASOF_MESSAGES" --out "$OUT/chat-asof-embedded.json"
rm -rf "$CHAT_RUN_DIR/asof"

# The outbound webhook to a receiver of `bench` on loopback (it stops once idle for 5 s):
# first its delay under the ack scenario's 2,000 msg/s, then the rate at which a node with a
# fresh checkpoint (and fresh read models, rebuilding beside it) drains that whole log.
echo "== webhook" >&2
HOOK_SECRET="hook-secret-$$"
webhook_run() {
  start_server "webhook-$1" target/release/bench webhook --secret "$HOOK_SECRET" --out "$OUT/chat-webhook-$1.json"
  local receiver=$PID
  EXTRA_ENV=(CHAT_WEBHOOK_URL="$URL" CHAT_WEBHOOK_SECRET="$HOOK_SECRET")
  CHAT_DATABASE="$PG_BASE/chatbench$2" start_chat 3
  EXTRA_ENV=()
  if [ "$1" = load ]; then
    target/release/bench scenario ack --name chat-webhook --url "$URL" --secret "$SECRET" --pid "$PID" --projections \
      --rate 2000 --secs "$SECS" --out "$OUT/chat-webhook-ack.json"
  fi
  wait "$receiver"
  kill "$PID"
}
webhook_run load 3
webhook_run drain 4

# What a command node costs as history grows (issue 13): on JetStream, then on the embedded
# log (fewer small conversations there: each seeded commit is an fsync).
echo "== history: ${HISTORY[*]}" >&2
target/release/bench history --nats "$CHAT_TEST_NATS_URL" "${HISTORY[@]}" --out "$OUT/chat-history.json"
mkdir -p "$CHAT_RUN_DIR/history"
target/release/bench history --embedded "$CHAT_RUN_DIR/history" "${HISTORY[@]:0:4}" --small 2000 --out "$OUT/chat-history-embedded.json"

target/release/bench report --dir "$OUT"
