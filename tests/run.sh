#!/usr/bin/env bash
# The whole suite, on SQLite and then on PostgreSQL. Starts the local PostgreSQL and Redis when
# they are stopped; fails (never skips) when they cannot be reached.
set -uo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY="$VENV/bin/python"
PG_URL=${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/dbrestore}
REALAPPS_PG_URL=${TEST_POSTGRES_REALAPPS_URL:-postgres://postgres@127.0.0.1:5432/dbrestore_realapps}
export REDIS_URL=${TEST_REDIS_URL:-redis://127.0.0.1:6379/15}

bash tests/services.sh || exit 1

status=0
echo "=== test suite on SQLite ==="
env -u DATABASE_URL "$PY" -m pytest "$@" || status=1
echo "=== test suite on PostgreSQL ($PG_URL) ==="
# A test database left behind by an interrupted run would stop pytest-django from creating it.
psql "${PG_URL%/*}/postgres" -qc "DROP DATABASE IF EXISTS test_${PG_URL##*/} WITH (FORCE)" >/dev/null 2>&1 || true
DATABASE_URL="$PG_URL" "$PY" -m pytest "$@" || status=1
if [ $# -eq 0 ]; then
  # The restore tests once more, with every JSON Lines table converted in forked processes, in
  # blocks of a row or two: the assertions written for one process are the oracle for the children.
  # (The files whose rows go through conversion; atomicity, indexes and the command line are the
  # main pass's, which keeps CI under 15 minutes.)
  echo "=== restore tests on PostgreSQL, rows converted in forked processes ==="
  DATABASE_URL="$PG_URL" DBRESTORE_SETTINGS_JSON='{"CONVERT_PROCESSES": 2, "CONVERT_MIN_ROWS": 0, "COPY_BATCH_SIZE": 20}' "$PY" -m pytest \
    tests/restore/test_row_accounting.py tests/restore/test_modes.py tests/restore/test_bad_input_corpus.py \
    tests/convert/test_value_limits.py tests/sources/test_formats.py \
    || status=1
  # The real-app corpus (tests/realapps/: Wagtail, taggit, modelcluster, treebeard, reversion,
  # guardian) under its own settings, on SQLite and on its own PostgreSQL database.
  echo "=== real-app corpus on SQLite ==="
  env -u DATABASE_URL "$PY" -m pytest tests/realapps --ds restoreproject.settings_realapps || status=1
  echo "=== real-app corpus on PostgreSQL ($REALAPPS_PG_URL) ==="
  # The test database and its copies, left behind by an interrupted run.
  for name in $(psql "${REALAPPS_PG_URL%/*}/postgres" -Atc \
      "SELECT datname FROM pg_database WHERE datname LIKE 'test\_${REALAPPS_PG_URL##*/}%'" 2>/dev/null); do
    psql "${REALAPPS_PG_URL%/*}/postgres" -qc "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)" >/dev/null 2>&1 || true
  done
  DATABASE_URL="$REALAPPS_PG_URL" "$PY" -m pytest tests/realapps --ds restoreproject.settings_realapps || status=1
fi
exit $status
