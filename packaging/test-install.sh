#!/usr/bin/env bash
# The package install test (run by tests/package.rs with the test binary):
# builds the .deb from BINARY, installs it with dpkg -i, verifies the unit
# with systemd-analyze, runs the installed binary with the installed config
# as user infermon (on a free port) and checks /health and the systemd
# notifications, then removes and purges the package and checks that
# /var/lib/infermon and its data are kept. Needs root; refuses to touch a
# machine where an infermon package is already installed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$(realpath "${1:?usage: test-install.sh BINARY}")
fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "needs root (dpkg -i)"
if dpkg-query -W -f='${Status}' infermon 2>/dev/null | grep -q 'ok installed'; then
  fail "an infermon package is already installed here; this test installs and removes its own"
fi

work=$(mktemp -d)
chmod 0755 "$work"
had_state_dir=$([ -e /var/lib/infermon ] && echo yes || echo no)
had_user=$(getent passwd infermon >/dev/null && echo yes || echo no)
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  dpkg --purge infermon >/dev/null 2>&1 || true
  # Leave the machine as it was: what this test created goes again.
  [ "$had_state_dir" = no ] && rm -rf /var/lib/infermon
  [ "$had_user" = no ] && getent passwd infermon >/dev/null && deluser --quiet infermon >/dev/null 2>&1 || true
  [ "$had_user" = no ] && getent group infermon >/dev/null && delgroup --quiet infermon >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

start=$(date +%s)
deb=$(INFERMON_DEB_FAST=1 "$root/packaging/build-deb.sh" "$bin" "$work/out")
echo "built $deb ($(du -h "$deb" | cut -f1)) in $(( $(date +%s) - start ))s"
contents=$(dpkg-deb --contents "$deb")
for f in ./usr/bin/infermon ./lib/systemd/system/infermon.service ./etc/infermon/infermon.yml \
         ./usr/share/man/man1/infermon.1.gz ./usr/share/infermon/models/all-MiniLM-L6-v2/model.safetensors; do
  grep -q " $f\$" <<<"$contents" || fail "$f missing from the package"
done
[ "$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)" = /etc/infermon/infermon.yml ] \
  || fail "infermon.yml is not a conffile"
# Whole outputs in variables: grep -q stopping early would make pipefail fail.
page=$(dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/share/man/man1/infermon.1.gz | zcat)
grep -q '^\.TH infermon' <<<"$page" || fail "the man page is not a man page"

dpkg -i "$deb" >/dev/null
getent passwd infermon >/dev/null || fail "no infermon user after install"
[ "$(stat -c %U /var/lib/infermon)" = infermon ] || fail "/var/lib/infermon is not owned by infermon"
[ "$(stat -c '%U:%G %a' /etc/infermon/infermon.yml)" = "root:infermon 640" ] \
  || fail "config is $(stat -c '%U:%G %a' /etc/infermon/infermon.yml), want root:infermon 640"

# Works without systemd as PID 1. Where man and the installed page are
# there (slim images exclude /usr/share/man), Documentation=man: is checked too.
man_flag=--man=no
command -v man >/dev/null && [ -f /usr/share/man/man1/infermon.1.gz ] && man_flag=--man=yes
systemd-analyze verify "$man_flag" /lib/systemd/system/infermon.service \
  || fail "systemd-analyze verify rejected the unit"

# The installed binary, config and data directory as the service runs them:
# user infermon, /var/lib/infermon as working directory, only the port changed.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sed "s|^  listen: 127.0.0.1:8080\$|  listen: 127.0.0.1:$port|" /etc/infermon/infermon.yml > "$work/infermon.yml"
grep -q "listen: 127.0.0.1:$port" "$work/infermon.yml" || fail "cannot set the port"
chmod 0644 "$work/infermon.yml"
# A notify socket as systemd's: READY=1 after start-up, STOPPING=1 at SIGTERM.
python3 - "$work/notify.sock" "$work/notify.log" <<'PY' &
import socket, sys, os
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o777)
s.settimeout(120)
with open(sys.argv[2], "a") as log:
    while True:
        try:
            msg = s.recv(4096).decode()
        except socket.timeout:
            break
        log.write(msg); log.flush()
        if "STOPPING=1" in msg:
            break
PY
listener=$!
for _ in $(seq 50); do [ -S "$work/notify.sock" ] && break; sleep 0.1; done
# setpriv execs (runuser would stay as a parent and report SIGTERM as its
# own exit status), so $pid is infermon itself.
(cd /var/lib/infermon && NOTIFY_SOCKET="$work/notify.sock" exec setpriv --reuid=infermon \
  --regid=infermon --init-groups /usr/bin/infermon serve --config "$work/infermon.yml") \
  2>"$work/serve.log" &
pid=$!
healthy=no
for _ in $(seq 600); do
  if curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1; then healthy=yes; break; fi
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.2
done
[ "$healthy" = yes ] || { cat "$work/serve.log" >&2; fail "the installed binary did not answer /health"; }
grep -q '^READY=1$' "$work/notify.log" || fail "no READY=1 on the notify socket"
answer=$(curl -fsS "http://127.0.0.1:$port/v1/embeddings" -H 'content-type: application/json' \
  -d '{"input":"hello","model":"all-MiniLM-L6-v2"}') || fail "the installed model does not answer"
grep -q '"embedding"' <<<"$answer" || fail "no embedding in $answer"
[ -f /var/lib/infermon/infermon.db ] || fail "no store in /var/lib/infermon"
[ "$(stat -c %U /var/lib/infermon/infermon.db)" = infermon ] || fail "the store is not owned by infermon"
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
pid=""
[ "$status" = 0 ] || { cat "$work/serve.log" >&2; fail "infermon exited $status after SIGTERM"; }
# The listener stops at STOPPING=1; bounded, in case it never came.
for _ in $(seq 50); do kill -0 "$listener" 2>/dev/null || break; sleep 0.1; done
kill "$listener" 2>/dev/null || true
grep -q '^STOPPING=1$' "$work/notify.log" || fail "no STOPPING=1 on the notify socket"

dpkg -r infermon >/dev/null
[ ! -e /usr/bin/infermon ] || fail "/usr/bin/infermon left after remove"
[ -f /var/lib/infermon/infermon.db ] || fail "remove deleted /var/lib/infermon"
[ -f /etc/infermon/infermon.yml ] || fail "remove deleted the conffile (only purge may)"
getent passwd infermon >/dev/null || fail "remove deleted the infermon user"
dpkg --purge infermon >/dev/null
[ ! -e /etc/infermon/infermon.yml ] || fail "purge kept the conffile"
[ -f /var/lib/infermon/infermon.db ] || fail "purge deleted /var/lib/infermon"
echo "PASS: package installed, verified, served /health as infermon, removed keeping /var/lib/infermon ($(( $(date +%s) - start ))s)"
