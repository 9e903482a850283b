#!/usr/bin/env bash
# The whole suite, on SQLite and then on PostgreSQL. Starts the local PostgreSQL and Redis when
# they are stopped; fails (never skips) when they cannot be reached.
set -uo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY="$VENV/bin/python"
PG_URL=${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/dbrestore}
export REDIS_URL=${TEST_REDIS_URL:-redis://127.0.0.1:6379/15}

bash tests/services.sh || exit 1

status=0
echo "=== test suite on SQLite ==="
env -u DATABASE_URL "$PY" -m pytest "$@" || status=1
echo "=== test suite on PostgreSQL ($PG_URL) ==="
# A test database left behind by an interrupted run would stop pytest-django from creating it.
psql "${PG_URL%/*}/postgres" -qc "DROP DATABASE IF EXISTS test_${PG_URL##*/} WITH (FORCE)" >/dev/null 2>&1 || true
DATABASE_URL="$PG_URL" "$PY" -m pytest "$@" || status=1
exit $status
