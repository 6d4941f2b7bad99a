#!/usr/bin/env bash
# Install everything the tests need on a fresh Debian machine, then run the static checks
# and the whole test suite. Extra arguments go to pytest, e.g. scripts/test.sh -k webchat
set -euo pipefail
cd "$(dirname "$0")/.."

# 1. System packages: Debian's Chromium for the browser tests (never `playwright install`:
#    it downloads a browser of its own), Dovecot for the e-mail tests, PostgreSQL and Redis
#    for the database tests, nginx in front of replicas (their system services stay unused:
#    the tests start their own on free ports), and ps, which the scripts starting those
#    servers use (slim images lack it).
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
{ [ -x /usr/sbin/dovecot ] && [ -x /usr/lib/dovecot/lmtp ]; } || missing+=(dovecot-imapd dovecot-lmtpd)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
[ -x /usr/bin/redis-server ] || missing+=(redis-server)
[ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v ps >/dev/null || missing+=(procps)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then sudo=(); elif command -v sudo >/dev/null; then sudo=(sudo); else
    echo "scripts/test.sh: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=300 update -qq
  "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=300 install -y -qq "${missing[@]}" >/dev/null
fi

# 2. Python: the project and its test dependencies in .venv.
[ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
touch .venv/.installed

# 3. Static checks, then the tests.
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
# Tests mostly wait (on servers, sockets, fsync): they run in OMNIGW_TEST_WORKERS processes
# (pytest-xdist; each starts its own throw-away servers on free ports), idle ones taking
# tests from busy ones.
exec .venv/bin/python -m pytest -n "${OMNIGW_TEST_WORKERS:-2}" --dist worksteal "$@"
