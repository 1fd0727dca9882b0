#!/usr/bin/env bash
# scripts/cluster.sh up|down|status|env|purge — a throwaway production-shaped Temporal on this machine:
# temporal-server (the same v1.29.1 the CLI's dev server embeds) on PostgreSQL, persistence and SQL
# visibility both on PostgreSQL, everything on loopback ports of its own. What fetchquant users run when
# they outgrow one machine (docker-compose.temporal.yml is the same server and schema in containers);
# npm run test:cluster tests fetchquant against it.
#
#   up      build what is missing (go install into .tools/bin), install PostgreSQL from Debian if absent,
#           start a PostgreSQL cluster of its own, load the schemas, start temporal-server, create the
#           namespace (30-day retention) with fetchquant's search attributes. Idempotent: on a running
#           cluster it changes nothing; after a crash (say temporal-server killed) it starts what is down.
#   down    stop temporal-server and PostgreSQL by the pids recorded at up (data is kept)
#   status  what runs, by recorded pid; exit 0 only if all of it runs and the frontend answers
#   env     TEMPORAL_ADDRESS=…, TEMPORAL_NAMESPACE=… and FQ_CLUSTER_DIR=… lines (eval "$(scripts/cluster.sh env)")
#   purge   down, then delete the cluster dir (databases, config, logs)
#
# Environment: FQ_CLUSTER_DIR (state, default <repo>/.cluster), FQ_CLUSTER_PORT (frontend gRPC, default
# 17233; the server uses the nine ports from it), FQ_CLUSTER_PG_PORT (default 17232),
# FQ_CLUSTER_NAMESPACE (default fetchquant), FQ_TOOLS_BIN (default <repo>/.tools/bin).
#
# Sources followed (temporalio/temporal at v1.29.1, also in the Go module cache after the build):
# config/development-postgres12.yaml (persistence + visibility datastores, services, clusterMetadata),
# docker/config_template.yaml (the same for the official images), tools/sql/README.md (create,
# setup-schema -v 0.0, update-schema --schema-name postgresql/v12/{temporal,visibility}).
set -euo pipefail

VERSION=1.29.1
ROOT=$(cd "$(dirname "$0")/.." && pwd -P)
BIN=${FQ_TOOLS_BIN:-$ROOT/.tools/bin}
DIR=${FQ_CLUSTER_DIR:-$ROOT/.cluster}
PORT=${FQ_CLUSTER_PORT:-17233}
PG_PORT=${FQ_CLUSTER_PG_PORT:-17232}
NS=${FQ_CLUSTER_NAMESPACE:-fetchquant}
SERVER=$BIN/temporal-server
SQLTOOL=$BIN/temporal-sql-tool
ADDRESS=127.0.0.1:$PORT
# The search attributes of src/search-attributes.ts (all Keyword).
SEARCH_ATTRIBUTES=(BatchId Species RunAccession SampleStage WorkerHost)

say() { echo "[cluster] $*"; }
die() { echo "[cluster] error: $*" >&2; exit 1; }

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
# A recorded pid counts only while it is still the program we started (pids get reused).
recorded() {
  local f=$DIR/run/$1.pid pid
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  alive "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$2" && echo "$pid"
}
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The temporal CLI as npm run setup finds it: TEMPORAL_CLI_PATH, PATH, then .tools/bin.
temporal_cli() {
  if [ -n "${TEMPORAL_CLI_PATH:-}" ] && [ -x "$TEMPORAL_CLI_PATH" ]; then echo "$TEMPORAL_CLI_PATH"
  elif command -v temporal >/dev/null; then command -v temporal
  elif [ -x "$ROOT/.tools/bin/temporal" ]; then echo "$ROOT/.tools/bin/temporal"
  else die "no temporal CLI (TEMPORAL_CLI_PATH, PATH, $ROOT/.tools/bin): run npm run setup first"; fi
}

# --- binaries --------------------------------------------------------------------------------------
build_tool() { # <go package> <installed name> <our name>
  local out=$BIN/$3 tmp
  if [ -x "$out" ] && "$out" --version 2>/dev/null | grep -q "$VERSION"; then return 0; fi
  command -v go >/dev/null || die "$3 $VERSION is missing and there is no go to build it: install Go (https://go.dev/dl) or put $3 in $BIN"
  mkdir -p "$BIN"
  tmp=$(mktemp -d "$BIN/.go-install.XXXXXX")
  say "building $3 $VERSION (go install $1@v$VERSION; minutes on a cold Go cache)"
  local t0=$SECONDS
  GOBIN=$tmp go install "$1@v$VERSION" || { rm -rf "$tmp"; die "go install $1@v$VERSION failed"; }
  mv "$tmp/$2" "$out"
  rm -rf "$tmp"
  say "built $out in $((SECONDS - t0)) s"
}

# --- PostgreSQL ------------------------------------------------------------------------------------
PG_BIN=
find_pg() {
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
  [ -n "$PG_BIN" ] && [ -x "$PG_BIN/initdb" ]
}
ensure_pg_installed() {
  find_pg && return 0
  if [ "$(id -u)" -ne 0 ]; then
    die "PostgreSQL is not installed; run: sudo apt-get install -y postgresql   (then scripts/cluster.sh up again)"
  fi
  say "installing PostgreSQL from Debian (apt-get install -y postgresql)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql >"$DIR/apt.log" 2>&1 \
    || { apt-get update >>"$DIR/apt.log" 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql >>"$DIR/apt.log" 2>&1; } \
    || die "apt-get install -y postgresql failed (log: $DIR/apt.log)"
  find_pg || die "PostgreSQL installed but no initdb under /usr/lib/postgresql/*/bin"
}

# As root the throwaway cluster belongs to the postgres user (PostgreSQL refuses to run as root);
# otherwise to whoever runs this script.
PG_OWNER=
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u "$PG_OWNER" -- "$@"; else "$@"; fi
}
pg_data_dir() {
  PG_OWNER=$([ "$(id -u)" -eq 0 ] && echo postgres || id -un)
  PGDATA=$DIR/pg
  if [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "$DIR" 2>/dev/null; then
    # The postgres user cannot reach the cluster dir (say it is under /root): keep the data where it can.
    PGDATA=/var/lib/postgresql/fetchquant-cluster-$(echo "$DIR" | cksum | cut -d' ' -f1)
  fi
}
PG_PASSWORD=
start_pg() {
  pg_data_dir
  if [ ! -f "$DIR/pg-password" ]; then
    (umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$DIR/pg-password")
  fi
  PG_PASSWORD=$(cat "$DIR/pg-password")
  if [ ! -f "$PGDATA/PG_VERSION" ]; then
    say "initdb $PGDATA (owner $PG_OWNER, superuser temporal, password auth on loopback only)"
    mkdir -p "$PGDATA"
    [ "$(id -u)" -eq 0 ] && chown "$PG_OWNER" "$PGDATA"
    chmod 700 "$PGDATA"
    local pw=$DIR/run/initdb-pw
    (umask 077; cp "$DIR/pg-password" "$pw")
    [ "$(id -u)" -eq 0 ] && chown "$PG_OWNER" "$pw"
    as_owner "$PG_BIN/initdb" -D "$PGDATA" -U temporal --pwfile="$pw" --auth=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$DIR/log/initdb.log" 2>&1 \
      || { rm -f "$pw"; die "initdb failed (log: $DIR/log/initdb.log)"; }
    rm -f "$pw"
  fi
  local pid
  if pid=$(recorded postgres postgres); then return 0; fi
  if as_owner "$PG_BIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
    # running but not recorded (the record was lost): adopt it
    head -1 "$PGDATA/postmaster.pid" >"$DIR/run/postgres.pid"
    return 0
  fi
  port_busy "$PG_PORT" && die "port $PG_PORT (PostgreSQL) is taken by another program; set FQ_CLUSTER_PG_PORT"
  say "starting PostgreSQL on 127.0.0.1:$PG_PORT"
  # log and unix socket in the data dir (where the owner can write; no need for /var/run/postgresql)
  as_owner "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$PGDATA/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PGDATA -c max_connections=200" start >/dev/null \
    || die "PostgreSQL did not start (log: $PGDATA/server.log)"
  head -1 "$PGDATA/postmaster.pid" >"$DIR/run/postgres.pid"
}

sql_tool() { SQL_PASSWORD=$PG_PASSWORD "$SQLTOOL" --plugin postgres12 --ep 127.0.0.1 -p "$PG_PORT" -u temporal "$@"; }
psql_c() { PGPASSWORD=$PG_PASSWORD psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U temporal -d "$1" -tAc "$2"; }

load_schemas() {
  local db name
  for db in temporal temporal_visibility; do
    name=$([ "$db" = temporal ] && echo temporal || echo visibility)
    if [ -z "$(psql_c postgres "SELECT 1 FROM pg_database WHERE datname = '$db'")" ]; then
      say "creating database $db and loading schema postgresql/v12/$name"
      sql_tool --db "$db" create-database >>"$DIR/log/schema.log" 2>&1 || die "create-database $db failed (log: $DIR/log/schema.log)"
    fi
    if [ -z "$(psql_c "$db" "SELECT to_regclass('schema_version')")" ]; then
      sql_tool --db "$db" setup-schema -v 0.0 >>"$DIR/log/schema.log" 2>&1 || die "setup-schema $db failed (log: $DIR/log/schema.log)"
    fi
    # up to date: a no-op; after a newer VERSION of this script: the versioned upgrades
    sql_tool --db "$db" update-schema --schema-name "postgresql/v12/$name" >>"$DIR/log/schema.log" 2>&1 \
      || die "update-schema $db failed (log: $DIR/log/schema.log)"
  done
}

# --- temporal-server -------------------------------------------------------------------------------
write_config() {
  # Ports: frontend gRPC $PORT, then membership/http and the other services on the eight ports above it.
  local f=$DIR/config/fetchquant.yaml new
  new=$(cat <<EOF
# Written by scripts/cluster.sh; shaped after temporalio/temporal v1.29.1 config/development-postgres12.yaml.
log:
  stdout: true
  level: warn
persistence:
  defaultStore: postgres-default
  visibilityStore: postgres-visibility
  numHistoryShards: 4
  datastores:
    postgres-default:
      sql:
        pluginName: postgres12
        databaseName: temporal
        connectAddr: 127.0.0.1:$PG_PORT
        connectProtocol: tcp
        user: temporal
        password: "$PG_PASSWORD"
        maxConns: 20
        maxIdleConns: 20
        maxConnLifetime: 1h
    postgres-visibility:
      sql:
        pluginName: postgres12
        databaseName: temporal_visibility
        connectAddr: 127.0.0.1:$PG_PORT
        connectProtocol: tcp
        user: temporal
        password: "$PG_PASSWORD"
        maxConns: 10
        maxIdleConns: 10
        maxConnLifetime: 1h
global:
  membership:
    maxJoinDuration: 30s
    broadcastAddress: 127.0.0.1
  pprof:
    port: 0
services:
  frontend:
    rpc: { grpcPort: $PORT, membershipPort: $((PORT + 1)), httpPort: $((PORT + 2)), bindOnLocalHost: true }
  history:
    rpc: { grpcPort: $((PORT + 3)), membershipPort: $((PORT + 4)), bindOnLocalHost: true }
  matching:
    rpc: { grpcPort: $((PORT + 5)), membershipPort: $((PORT + 6)), bindOnLocalHost: true }
  worker:
    rpc: { grpcPort: $((PORT + 7)), membershipPort: $((PORT + 8)), bindOnLocalHost: true }
clusterMetadata:
  enableGlobalNamespace: false
  failoverVersionIncrement: 10
  masterClusterName: active
  currentClusterName: active
  clusterInformation:
    active:
      enabled: true
      initialFailoverVersion: 1
      rpcName: frontend
      rpcAddress: 127.0.0.1:$PORT
dcRedirectionPolicy:
  policy: noop
EOF
)
  mkdir -p "$DIR/config"
  if [ ! -f "$f" ] || [ "$(cat "$f")" != "$new" ]; then
    (umask 077; printf '%s\n' "$new" >"$f")
  fi
}

healthy() { "$(temporal_cli)" operator cluster health --address "$ADDRESS" --command-timeout 3s >/dev/null 2>&1; }

start_server() {
  local pid
  if pid=$(recorded temporal-server temporal-server); then return 0; fi
  local p
  for p in $(seq "$PORT" $((PORT + 8))); do
    port_busy "$p" && die "port $p is taken by another program; set FQ_CLUSTER_PORT (temporal-server uses it and the 8 above)"
  done
  say "starting temporal-server $VERSION on $ADDRESS"
  # own session: not killed with the shell that ran up; output appended to one log
  setsid "$SERVER" --root "$DIR" --config config --env fetchquant --allow-no-auth start \
    >>"$DIR/log/temporal-server.log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$DIR/run/temporal-server.pid"
  local i
  for i in $(seq 1 240); do
    alive "$pid" || die "temporal-server exited at start (log: $DIR/log/temporal-server.log)"
    healthy && return 0
    sleep 0.5
  done
  die "temporal-server did not answer on $ADDRESS within 120 s (log: $DIR/log/temporal-server.log)"
}

ensure_namespace() {
  local t; t=$(temporal_cli)
  if ! "$t" operator namespace describe --address "$ADDRESS" --namespace "$NS" >/dev/null 2>&1; then
    say "creating namespace $NS (retention 30 days)"
    "$t" operator namespace create --address "$ADDRESS" --namespace "$NS" --retention 720h >/dev/null
  fi
  local have sa i
  for i in $(seq 1 60); do
    have=$("$t" operator search-attribute list --address "$ADDRESS" --namespace "$NS" -o json 2>/dev/null) && break
    sleep 0.5 # a new namespace reaches the services' caches within seconds
  done
  for sa in "${SEARCH_ATTRIBUTES[@]}"; do
    if ! grep -q "\"$sa\"" <<<"$have"; then
      say "registering search attribute $sa (Keyword) on $NS"
      "$t" operator search-attribute create --address "$ADDRESS" --namespace "$NS" --name "$sa" --type Keyword >/dev/null
    fi
  done
}

write_env() {
  local new="TEMPORAL_ADDRESS=$ADDRESS
TEMPORAL_NAMESPACE=$NS"
  [ -f "$DIR/cluster.env" ] && [ "$(cat "$DIR/cluster.env")" = "$new" ] || printf '%s\n' "$new" >"$DIR/cluster.env"
}

cmd_up() {
  mkdir -p "$DIR/run" "$DIR/log"
  [ "$(id -u)" -eq 0 ] && chmod 755 "$DIR"
  build_tool go.temporal.io/server/cmd/server server temporal-server
  build_tool go.temporal.io/server/cmd/tools/sql sql temporal-sql-tool
  ensure_pg_installed
  start_pg
  load_schemas
  write_config
  start_server
  ensure_namespace
  write_env
  say "up: temporal-server $VERSION at $ADDRESS (namespace $NS, pid $(cat "$DIR/run/temporal-server.pid")), PostgreSQL at 127.0.0.1:$PG_PORT (pid $(cat "$DIR/run/postgres.pid")); state in $DIR"
  say "use it: export TEMPORAL_ADDRESS=$ADDRESS TEMPORAL_NAMESPACE=$NS"
}

stop_pid() { # <name> <pattern>
  local pid i
  pid=$(recorded "$1" "$2") || { rm -f "$DIR/run/$1.pid"; return 0; }
  say "stopping $1 (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 60); do alive "$pid" || break; sleep 0.5; done
  if alive "$pid"; then say "$1 (pid $pid) still running after 30 s: kill -9"; kill -KILL "$pid" 2>/dev/null || true; fi
  rm -f "$DIR/run/$1.pid"
}

cmd_down() {
  [ -d "$DIR/run" ] || { say "nothing recorded under $DIR"; return 0; }
  stop_pid temporal-server temporal-server
  # SIGTERM to the postmaster is PostgreSQL's "smart" shutdown; pg_ctl's fast mode disconnects clients
  local pid
  if pid=$(recorded postgres postgres); then
    find_pg && pg_data_dir && as_owner "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null 2>&1 || true
  fi
  stop_pid postgres postgres
  say "down (data kept in $DIR; scripts/cluster.sh purge deletes it)"
}

cmd_status() {
  local ok=0 pid
  if pid=$(recorded postgres postgres); then echo "postgres         running (pid $pid) 127.0.0.1:$PG_PORT"; else echo "postgres         stopped"; ok=1; fi
  if pid=$(recorded temporal-server temporal-server); then
    if healthy; then echo "temporal-server  running (pid $pid) $ADDRESS, serving"; else echo "temporal-server  running (pid $pid) $ADDRESS, not answering"; ok=1; fi
  else echo "temporal-server  stopped"; ok=1; fi
  echo "namespace        $NS"
  return $ok
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) echo "TEMPORAL_ADDRESS=$ADDRESS"; echo "TEMPORAL_NAMESPACE=$NS"; echo "FQ_CLUSTER_DIR=$DIR" ;;
  purge)
    cmd_down
    pg_data_dir
    case "$PGDATA" in "$DIR"/*) ;; *) rm -rf "$PGDATA" ;; esac
    rm -rf "$DIR"
    say "purged $DIR" ;;
  *) echo "usage: scripts/cluster.sh up|down|status|env|purge" >&2; exit 2 ;;
esac
