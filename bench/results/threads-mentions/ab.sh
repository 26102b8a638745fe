#!/usr/bin/env bash
# A/B/A of send→ack at 2,000 msg/s: the build before issue 16 (OLD), this one plain and with
# 10 mentions per send. One NATS + Postgres, a fresh stream and database per server.
set -euo pipefail
set -a; source /tmp/svc.env; set +a
PG_BASE="${CHAT_TEST_DATABASE_URL%/postgres}"
SECRET=bench-secret-ack
OUT=/tmp/ackbench
n=0
one() { # label binary [--mentions]
  n=$((n+1))
  local log=$OUT/server-$n.log
  env CHAT_NATS_URL="$CHAT_TEST_NATS_URL" CHAT_DATABASE_URL="$PG_BASE/ackbench$n$$" CHAT_JWT_SECRET="$SECRET" \
    CHAT_MASTER_KEY="$(printf '5e%.0s' $(seq 32))" CHAT_LISTEN=127.0.0.1:0 CHAT_RATE_MESSAGES_PER_MIN=0 CHAT_RATE_EVENTS_PER_MIN=0 \
    CHAT_STREAM="ACKB$n$$" CHAT_SUBJECT_PREFIX="ackb$n$$" RUST_LOG=warn "$2" serve >"$log" 2>&1 &
  local pid=$! url=""
  for _ in $(seq 1 300); do url=$(grep -o 'listening on http://[0-9.:]*' "$log" | head -1 | sed 's/listening on //') || true; [ -n "$url" ] && break; sleep 0.1; done
  /work/main/target/release/bench scenario ack --name "$1" --url "$url" --secret "$SECRET" --pid "$pid" --projections --rate 2000 --secs 30 --out "$OUT/$n-$1.json" "${@:3}" >/dev/null 2>&1
  kill "$pid"; wait "$pid" 2>/dev/null || true
  python3 -c "import json;d=json.load(open('$OUT/$n-$1.json'));a=d['ack'];print('$n $1', 'p50', round(a['p50'],1), 'p99', round(a['p99'],1), 'acked/s', round(d['acked_per_s']), 'errors', d['errors'], 'delivery p99', round(d['delivery']['p99'],1))"
}
OLD=/tmp/dev/bench15/target/release/chat
NEW=/work/main/target/release/chat
one new "$NEW"
one old "$OLD"
one new-mentions "$NEW" --mentions
one old "$OLD"
one new "$NEW"
one new-mentions "$NEW" --mentions
