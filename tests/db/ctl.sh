#!/usr/bin/env bash
# ctl.sh DIR pg-start|pg-stop|redis-start|redis-stop — start or stop one server of a
# start-db.sh DIR set-up from the configuration start-db.sh wrote there: same port, same
# data. Fault tests use it to take a server away and bring it back. Each action is
# idempotent. Every daemon's stdio goes to files in DIR: a caller capturing our output
# never hangs.
set -euo pipefail
DIR=$(realpath -m "${1:?usage: ctl.sh DIR pg-start|pg-stop|redis-start|redis-stop}")
ACTION=${2:?usage: ctl.sh DIR pg-start|pg-stop|redis-start|redis-stop}

# running PID? (PID 1 here reaps orphans ~1-2 s late: a zombie counts as stopped)
running() { kill -0 "$1" 2>/dev/null && [[ $(ps -o stat= -p "$1") != Z* ]]; }
alive() { local p; [ -s "$1" ] && p=$(head -1 "$1") && running "$p"; }
die() { echo "ctl.sh: $*" >&2; exit 1; }
conf_port() { awk '$1 == "port" { gsub(/[^0-9]/, "", $NF); print $NF }' "$1"; }

pg_start() {
  local bin
  [ -s "$DIR/pg/data/PG_VERSION" ] || die "no cluster in $DIR/pg/data: run start-db.sh first"
  alive "$DIR/pg/data/postmaster.pid" && return 0
  bin=$(cat "$DIR/pg/bin")
  # pg_ctl starts the postmaster in a session of its own with stdio on the log file
  runuser -u postgres -- "$bin/pg_ctl" -D "$DIR/pg/data" -l "$DIR/pg/postgres.log" -w -t 60 -s start \
    </dev/null >>"$DIR/pg/pg_ctl.log" 2>&1 \
    || { tail -n 5 "$DIR/pg/pg_ctl.log" "$DIR/pg/postgres.log" >&2; die "postgres did not start"; }
}

pg_stop() {
  local bin
  alive "$DIR/pg/data/postmaster.pid" || return 0
  bin=$(cat "$DIR/pg/bin")
  # fast: open sessions are rolled back instead of waited for
  if ! runuser -u postgres -- "$bin/pg_ctl" -D "$DIR/pg/data" -m fast -w -t 30 -s stop \
      </dev/null >>"$DIR/pg/pg_ctl.log" 2>&1; then
    runuser -u postgres -- "$bin/pg_ctl" -D "$DIR/pg/data" -m immediate -w -t 30 -s stop \
      </dev/null >>"$DIR/pg/pg_ctl.log" 2>&1 || die "postgres did not stop; see $DIR/pg/pg_ctl.log"
  fi
  echo "stopped postgres"
}

redis_start() {
  local conf=$DIR/redis/redis.conf port pid=""
  [ -s "$conf" ] || die "no $conf: run start-db.sh first"
  port=$(conf_port "$conf")
  if alive "$DIR/redis/redis.pid"; then
    pid=$(cat "$DIR/redis/redis.pid")
  else
    rm -f "$DIR/redis/redis.pid"
    # in the foreground of its own session, so its PID is known at once and a failure to
    # bind shows as its exit rather than as a timeout
    setsid redis-server "$conf" </dev/null >>"$DIR/redis/redis.log" 2>&1 &
    pid=$!
  fi
  # ready when the server answering on the port is ours: another one may hold the port
  for _ in $(seq 100); do
    running "$pid" || { tail -n 5 "$DIR/redis/redis.log" >&2; die "redis did not start"; }
    [ "$(timeout 2 redis-cli -h 127.0.0.1 -p "$port" info server 2>/dev/null \
         | tr -d '\r' | awk -F: '$1 == "process_id" { print $2 }')" = "$pid" ] && return 0
    sleep 0.1
  done
  die "redis did not answer on port $port; see $DIR/redis/redis.log"
}

redis_stop() {
  local pid
  alive "$DIR/redis/redis.pid" || { rm -f "$DIR/redis/redis.pid"; return 0; }
  pid=$(cat "$DIR/redis/redis.pid")
  kill -TERM "$pid"   # without persistence it exits at once
  for _ in $(seq 100); do running "$pid" || break; sleep 0.1; done
  if running "$pid"; then
    kill -KILL "$pid" 2>/dev/null
    for _ in $(seq 50); do running "$pid" || break; sleep 0.1; done
  fi
  rm -f "$DIR/redis/redis.pid"
  echo "stopped redis ($pid)"
}

case "$ACTION" in
  pg-start) pg_start ;;
  pg-stop) pg_stop ;;
  redis-start) redis_start ;;
  redis-stop) redis_stop ;;
  *) die "unknown action $ACTION (pg-start|pg-stop|redis-start|redis-stop)" ;;
esac
