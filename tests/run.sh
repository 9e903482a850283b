#!/usr/bin/env bash
# The whole suite, on SQLite and on PostgreSQL. Starts the local PostgreSQL and Redis when they are
# stopped; fails (never skips) when they cannot be reached.
#
# Two lines of passes run side by side (the machine has two cores), each with its own databases and
# its own Redis database; the first's output is printed when both are done:
#   1. SQLite; the real-app corpus on SQLite; the forked-conversion pass on PostgreSQL
#   2. PostgreSQL; the real-app corpus on PostgreSQL
# With arguments (``bash tests/run.sh tests/select -x``), only the SQLite and PostgreSQL passes run.
set -uo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY="$VENV/bin/python"
PG_URL=${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/dbrestore}
FORKED_PG_URL=${TEST_POSTGRES_FORKED_URL:-${PG_URL}_forked}
REALAPPS_PG_URL=${TEST_POSTGRES_REALAPPS_URL:-postgres://postgres@127.0.0.1:5432/dbrestore_realapps}
# The Redis server; the passes use its databases 13, 14 and 15 (tests empty the queues they use).
REDIS_BASE=${TEST_REDIS_SERVER:-redis://127.0.0.1:6379}

bash tests/services.sh || exit 1

# The test databases (and their copies) left behind by an interrupted run would stop pytest-django
# from creating them.
drop_test_databases() {
  local url=$1
  for name in $(psql "${url%/*}/postgres" -Atc \
      "SELECT datname FROM pg_database WHERE datname LIKE 'test\_${url##*/}%'" 2>/dev/null); do
    psql "${url%/*}/postgres" -qc "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)" >/dev/null 2>&1 || true
  done
}

# pass NAME DATABASE_URL REDIS_DB PYTEST-ARGS...: one pytest run; DATABASE_URL empty means SQLite.
pass() {
  local name=$1 url=$2 redis=$3
  shift 3
  echo "=== $name ==="
  if [ -z "$url" ]; then
    env -u DATABASE_URL REDIS_URL="$REDIS_BASE/$redis" "$PY" -m pytest "$@"
  else
    drop_test_databases "$url"
    DATABASE_URL="$url" REDIS_URL="$REDIS_BASE/$redis" "$PY" -m pytest "$@"
  fi
}

first_line() {
  local status=0
  pass "test suite on SQLite" "" 14 "$@" || status=1
  [ $# -gt 0 ] && return $status
  # The real-app corpus (tests/realapps/: Wagtail, taggit, modelcluster, treebeard, reversion,
  # guardian) under its own settings.
  pass "real-app corpus on SQLite" "" 14 tests/realapps --ds restoreproject.settings_realapps || status=1
  # The restore tests once more, with every JSON Lines table converted in forked processes, in
  # blocks of a row or two: the assertions written for one process are the oracle for the children.
  # (The files whose rows go through conversion; atomicity, indexes and the command line are the
  # main pass's.)
  DBRESTORE_SETTINGS_JSON='{"CONVERT_PROCESSES": 2, "CONVERT_MIN_ROWS": 0, "COPY_BATCH_SIZE": 20}' \
    pass "restore tests on PostgreSQL ($FORKED_PG_URL), rows converted in forked processes" "$FORKED_PG_URL" 13 \
    tests/restore/test_row_accounting.py tests/restore/test_modes.py tests/restore/test_bad_input_corpus.py \
    tests/convert/test_value_limits.py tests/sources/test_formats.py || status=1
  return $status
}

second_line() {
  local status=0
  pass "test suite on PostgreSQL ($PG_URL)" "$PG_URL" 15 "$@" || status=1
  [ $# -gt 0 ] && return $status
  pass "real-app corpus on PostgreSQL ($REALAPPS_PG_URL)" "$REALAPPS_PG_URL" 15 \
    tests/realapps --ds restoreproject.settings_realapps || status=1
  return $status
}

log=$(mktemp)
trap 'rm -f "$log"' EXIT
first_line "$@" >"$log" 2>&1 &
first=$!
status=0
second_line "$@" || status=1
wait $first || status=1
cat "$log"
exit $status
