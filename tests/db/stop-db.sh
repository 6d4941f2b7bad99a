#!/usr/bin/env bash
# stop-db.sh DIR [--purge] — stop what start-db.sh DIR started, leave its data for
# inspection. Safe to run twice or when nothing runs. Add --purge to delete DIR too.
set -uo pipefail
DIR=$(realpath -m "${1:?usage: stop-db.sh DIR [--purge]}")
HERE=$(cd "$(dirname "$0")" && pwd)

[ -s "$DIR/pg/bin" ] && bash "$HERE/ctl.sh" "$DIR" pg-stop
[ -d "$DIR/redis" ] && bash "$HERE/ctl.sh" "$DIR" redis-stop
[ "${2:-}" = --purge ] && rm -rf "$DIR" && echo "removed $DIR"
exit 0
