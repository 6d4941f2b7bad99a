#!/usr/bin/env bash
# start-db.sh DIR — a throw-away PostgreSQL cluster and Redis on loopback for tests (run as root):
#   PostgreSQL 127.0.0.1:$PG_PORT (cluster in DIR/pg/data, user postgres, trust auth, UTF8,
#              max_connections $PG_MAX_CONNECTIONS); PG_FSYNC=off (default: fast, for tests)
#              or PG_FSYNC=on (durable, for benchmarks)
#   Redis      127.0.0.1:$REDIS_PORT (no persistence, $REDIS_DATABASES databases)
# START_PG=0 or START_REDIS=0 leaves that one out. Idempotent: a server already running is
# left as it is and its URL printed again. Prints eval-able lines:
#   DATABASE_URL=postgresql://postgres@127.0.0.1:PORT/postgres
#   REDIS_URL=redis://127.0.0.1:PORT/0
# Stop with stop-db.sh DIR; stop or start one server (same port, same data) with
# ctl.sh DIR pg-stop|pg-start|redis-stop|redis-start.
set -euo pipefail
DIR=$(realpath -m "${1:?usage: start-db.sh DIR}")
START_PG=${START_PG:-1} START_REDIS=${START_REDIS:-1}
PG_PORT=${PG_PORT:-15432} REDIS_PORT=${REDIS_PORT:-16379}
PG_FSYNC=${PG_FSYNC:-off} PG_MAX_CONNECTIONS=${PG_MAX_CONNECTIONS:-300}
REDIS_DATABASES=${REDIS_DATABASES:-256}
HERE=$(cd "$(dirname "$0")" && pwd)
case "$PG_FSYNC" in on|off) ;; *) echo "PG_FSYNC must be on or off" >&2; exit 1 ;; esac

# 1. install what is missing (Debian packages; policy-rc.d keeps the system daemons stopped,
#    and ours run on other ports anyway)
missing=()
if [ "$START_PG" = 1 ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then missing+=(postgresql); fi
if [ "$START_REDIS" = 1 ] && ! command -v redis-server >/dev/null; then missing+=(redis-server); fi
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq "${missing[@]}" >/dev/null
fi

alive() { local p; [ -s "$1" ] && p=$(head -1 "$1") && kill -0 "$p" 2>/dev/null && [[ $(ps -o stat= -p "$p") != Z* ]]; }
conf_port() { awk '$1 == "port" { gsub(/[^0-9]/, "", $NF); print $NF }' "$1"; }
mkdir -p "$DIR"; chmod 755 "$DIR"
echo "DB_DIR=$DIR"

# 2. PostgreSQL refuses to run as root: initdb and pg_ctl run as the package's user postgres,
#    so DIR and its parents must be world-traversable (mktemp -d and pytest's tmp are 0700).
#    Settings live in a file the cluster includes, so ctl.sh restarts it the same way.
if [ "$START_PG" = 1 ]; then
  mkdir -p "$DIR/pg"; chown postgres:postgres "$DIR/pg"
  runuser -u postgres -- test -w "$DIR/pg" || { echo "user postgres cannot write $DIR/pg: make its parents o+x" >&2; exit 1; }
  data=$DIR/pg/data
  if [ ! -s "$data/PG_VERSION" ]; then
    # the newest installed major; remembered, since a cluster only runs on its own major
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    echo "$bin" > "$DIR/pg/bin"
    # C.UTF-8: byte-order sorting like C, but lower()/ILIKE know non-ASCII letters
    runuser -u postgres -- "$bin/initdb" -D "$data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
      --no-sync --no-instructions </dev/null >"$DIR/pg/initdb.log" 2>&1 \
      || { tail -n 5 "$DIR/pg/initdb.log" >&2; exit 1; }
    echo "include 'omnigw-test.conf'" >> "$data/postgresql.conf"
  fi
  if ! alive "$data/postmaster.pid"; then
    cat > "$data/omnigw-test.conf" <<EOF
# written by tests/db/start-db.sh; rewritten on its next run while the server is stopped
port = $PG_PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$DIR/pg'
max_connections = $PG_MAX_CONNECTIONS
fsync = $PG_FSYNC
synchronous_commit = $PG_FSYNC
full_page_writes = $PG_FSYNC
EOF
    chown postgres:postgres "$data/omnigw-test.conf"
  fi
  bash "$HERE/ctl.sh" "$DIR" pg-start
  echo "DATABASE_URL=postgresql://postgres@127.0.0.1:$(conf_port "$data/omnigw-test.conf")/postgres"
fi

# 3. Redis: no persistence, so a restart (ctl.sh) comes back empty
if [ "$START_REDIS" = 1 ]; then
  mkdir -p "$DIR/redis"
  if ! alive "$DIR/redis/redis.pid"; then
    cat > "$DIR/redis/redis.conf" <<EOF
# written by tests/db/start-db.sh; rewritten on its next run while the server is stopped
bind 127.0.0.1
port $REDIS_PORT
daemonize no
pidfile $DIR/redis/redis.pid
logfile $DIR/redis/redis.log
dir $DIR/redis
save ""
appendonly no
databases $REDIS_DATABASES
EOF
  fi
  bash "$HERE/ctl.sh" "$DIR" redis-start
  echo "REDIS_URL=redis://127.0.0.1:$(conf_port "$DIR/redis/redis.conf")/0"
fi
