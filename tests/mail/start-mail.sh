#!/usr/bin/env bash
# start-mail.sh DIR — a real, throw-away mail system on loopback for tests (run as root):
#   Dovecot IMAP  127.0.0.1:$IMAP_PORT (plain LOGIN/AUTH=PLAIN, no TLS required, Maildir in DIR)
#   Dovecot IMAPS 127.0.0.1:$IMAPS_PORT and IMAP STARTTLS (only with MAIL_TLS=1)
#   Dovecot LMTP  127.0.0.1:$LMTP_PORT (delivery into those mailboxes)
#   SMTP          127.0.0.1:$SMTP_PORT (aiosmtpd; every message -> LMTP, copy in DIR/spool;
#                 STARTTLS with MAIL_TLS=1; AUTH against the same users with MAIL_SMTP_AUTH=1)
# MAIL_TLS=1 makes a self-signed certificate for 127.0.0.1 in DIR/tls.crt (trust that file).
# Users (password $MAIL_PASSWORD) come from $MAIL_USERS; more can be added to DIR/users
# while it runs (Dovecot and the relay re-read it). Idempotent: a second run only prints
# the ports. Prints KEY=VALUE lines (eval-able). Stop with stop-mail.sh DIR.
# Every daemon's stdio goes to files in DIR: a caller capturing our output never hangs.
set -euo pipefail
DIR=$(realpath -m "${1:?usage: start-mail.sh DIR}")
IMAP_PORT=${IMAP_PORT:-10143} LMTP_PORT=${LMTP_PORT:-10024} SMTP_PORT=${SMTP_PORT:-10025}
IMAPS_PORT=${IMAPS_PORT:-10993}
MAIL_USERS=${MAIL_USERS:-"support@example.test customer@example.org"}
MAIL_PASSWORD=${MAIL_PASSWORD:-secret}
MAIL_UID=${MAIL_UID:-5000}           # Dovecot refuses uid 0 for mail; this uid need not exist
PY=${PYTHON:-python3}                 # interpreter for the SMTP relay (e.g. the project venv)
HERE=$(cd "$(dirname "$0")" && pwd)

# 1. install what is missing (Debian packages; policy-rc.d keeps the system daemon stopped)
if [ ! -x /usr/sbin/dovecot ] || [ ! -x /usr/lib/dovecot/lmtp ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq dovecot-imapd dovecot-lmtpd >/dev/null
fi
"$PY" -c 'import aiosmtpd' 2>/dev/null || "$PY" -m pip install -q aiosmtpd

# a PID file whose process runs (PID 1 here reaps orphans ~1-2 s late, so skip zombies)
alive() { local p; [ -s "$1" ] && p=$(cat "$1") && kill -0 "$p" 2>/dev/null && [[ $(ps -o stat= -p "$p") != Z* ]]; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
              echo "port $1 did not open; see $DIR/*.log" >&2; return 1; }

# 2. config (rewritten on every run; Dovecot's own processes run as users dovecot/dovenull and
#    uid $MAIL_UID, so DIR and its parents must be world-traversable: mktemp -d/pytest tmp is 0700)
mkdir -p "$DIR/run" "$DIR/state" "$DIR/mail" "$DIR/spool"
chmod 755 "$DIR"; chown "$MAIL_UID:$MAIL_UID" "$DIR/mail"
: > "$DIR/users.new"
for u in $MAIL_USERS; do echo "$u:{PLAIN}$MAIL_PASSWORD::::::" >> "$DIR/users.new"; done
mv "$DIR/users.new" "$DIR/users"; chmod 644 "$DIR/users"
ssl_conf="ssl = no"
imaps_port=0
if [ "${MAIL_TLS:-0}" = 1 ]; then
  [ -s "$DIR/tls.crt" ] || openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1,DNS:localhost -keyout "$DIR/tls.key" -out "$DIR/tls.crt" 2>/dev/null
  chmod 644 "$DIR/tls.crt"; chmod 600 "$DIR/tls.key"
  ssl_conf="ssl = yes
ssl_cert = <$DIR/tls.crt
ssl_key = <$DIR/tls.key"
  imaps_port=$IMAPS_PORT
fi
# MAIL_OAUTH_INTROSPECTION=URL: IMAP and SMTP also take XOAUTH2 / OAUTHBEARER, the bearer
# token checked at that OAuth introspection endpoint (RFC 7662, POST token=...), which
# answers {"active": true, "username": "..."}.
oauth_mechs=""
oauth_passdb=""
smtp_oauth=()
if [ -n "${MAIL_OAUTH_INTROSPECTION:-}" ]; then
  cat > "$DIR/dovecot-oauth2.conf.ext" <<EOF
introspection_mode = post
introspection_url = $MAIL_OAUTH_INTROSPECTION
force_introspection = yes
username_attribute = username
active_attribute = active
active_value = true
EOF
  chmod 644 "$DIR/dovecot-oauth2.conf.ext"
  oauth_mechs=" xoauth2 oauthbearer"
  oauth_passdb="passdb {
  driver = oauth2
  args = $DIR/dovecot-oauth2.conf.ext
}"
  smtp_oauth=(--oauth-introspection "$MAIL_OAUTH_INTROSPECTION")
fi
runuser -u dovecot -- test -r "$DIR/users" || { echo "user dovecot cannot read $DIR/users: make its parents o+x" >&2; exit 1; }
cat > "$DIR/dovecot.conf" <<EOF
# standalone instance: nothing from /etc/dovecot is read
protocols = imap lmtp
listen = 127.0.0.1
base_dir = $DIR/run
state_dir = $DIR/state
instance_name = dovecot-test-$IMAP_PORT
log_path = $DIR/dovecot.log
$ssl_conf
disable_plaintext_auth = no
auth_mechanisms = plain login$oauth_mechs
mail_location = maildir:~/Maildir
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $DIR/users
}
$oauth_passdb
userdb {
  driver = passwd-file
  args = username_format=%u $DIR/users
  default_fields = uid=$MAIL_UID gid=$MAIL_UID home=$DIR/mail/%u
}
service imap-login {
  inet_listener imap {
    port = $IMAP_PORT
  }
  inet_listener imaps {
    port = $imaps_port
  }
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = $LMTP_PORT
  }
}
EOF

# 3. start Dovecot (daemonizes; master.pid in $DIR/run) unless already running. Its stdio
#    must not be the caller's: the master keeps stderr open, so `start-mail.sh | tee` would hang
if ! alive "$DIR/run/master.pid"; then
  dovecot -c "$DIR/dovecot.conf" </dev/null >>"$DIR/dovecot.log" 2>&1 || { tail -5 "$DIR/dovecot.log" >&2; exit 1; }
fi
wait_port "$IMAP_PORT"; wait_port "$LMTP_PORT"
[ "$imaps_port" = 0 ] || wait_port "$imaps_port"

# 4. start the SMTP->LMTP relay unless already running (STARTTLS offered if MAIL_TLS=1)
if ! alive "$DIR/smtp.pid"; then
  tls=()
  [ "${MAIL_TLS:-0}" = 1 ] && tls=(--tls-cert "$DIR/tls.crt" --tls-key "$DIR/tls.key")
  [ "${MAIL_SMTP_AUTH:-0}" = 1 ] && tls+=(--users "$DIR/users")
  tls+=("${smtp_oauth[@]}")
  nohup "$PY" "$HERE/smtp_to_lmtp.py" --listen "127.0.0.1:$SMTP_PORT" --lmtp "127.0.0.1:$LMTP_PORT" \
    --spool "$DIR/spool" "${tls[@]}" > "$DIR/smtp.log" 2>&1 < /dev/null &
  echo $! > "$DIR/smtp.pid"
fi
for i in $(seq 100); do   # wait for its ready line; it dies at once if the port is taken
  grep -q "SMTP listening" "$DIR/smtp.log" && break
  alive "$DIR/smtp.pid" && [ "$i" -lt 100 ] || { tail -3 "$DIR/smtp.log" >&2; exit 1; }; sleep 0.1
done

echo "MAIL_DIR=$DIR"
echo "IMAP_PORT=$IMAP_PORT LMTP_PORT=$LMTP_PORT SMTP_PORT=$SMTP_PORT IMAPS_PORT=$imaps_port"
echo "MAIL_USERS=\"$MAIL_USERS\" MAIL_PASSWORD=$MAIL_PASSWORD"
