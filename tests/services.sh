#!/usr/bin/env bash
# Make sure the local PostgreSQL and Redis the tests use are up; start them if they are not.
set -u

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432; }
redis_up() { [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = "PONG" ]; }

wait_for() {
  local check=$1 name=$2
  for _ in $(seq 1 30); do
    $check && return 0
    sleep 1
  done
  echo "ERROR: $name is not reachable on 127.0.0.1 and could not be started" >&2
  return 1
}

if ! pg_up; then
  echo "PostgreSQL is down; starting it"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
fi
if ! redis_up; then
  echo "Redis is down; starting it"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null || true
fi
wait_for pg_up PostgreSQL && wait_for redis_up Redis || exit 1

# Debian's Chromium drives the admin in the browser tests (Playwright uses it; it downloads none).
if ! [ -x /usr/bin/chromium ]; then
  echo "Chromium is missing; installing Debian's chromium"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } || {
    echo "ERROR: could not install chromium (needed by tests/admin/test_browser.py)" >&2
    exit 1
  }
fi

# GnuPG: the encryption tests (tests/files/test_encryption.py) run the real gpg binary.
if ! command -v gpg >/dev/null; then
  echo "gpg is missing; installing Debian's gnupg"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq gnupg >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq gnupg >/dev/null; } || {
    echo "ERROR: could not install gnupg (needed by tests/files/test_encryption.py)" >&2
    exit 1
  }
fi
