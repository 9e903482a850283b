"""PostgreSQL native dumps (``pg_dump`` plain SQL, gzipped SQL, custom and directory formats),
restored by PostgreSQL's own tools with the same run record, safety backup and report.

How a dump replaces the database's contents, whatever options it was made with:

* Everything in the ``public`` schema is dropped first — except dbrestore's history table,
  ``dbrestore_restorerun``, which is never touched: the running run keeps reporting progress
  into it, and statements of the dump about that table are filtered out of the stream.
* With ``--jobs 1`` (the default) the drop and the whole dump run in ONE psql transaction
  (custom and directory dumps are turned into SQL by ``pg_restore -f -`` reading the file), so a
  failure leaves the database exactly as it was. With ``--jobs N`` the drop runs first and
  ``pg_restore --jobs N`` loads in parallel connections: faster, not all-or-nothing.
* Connection settings and the password come from Django's ``DATABASES`` entry through the
  environment (``PGHOST``, ``PGPASSWORD``...), never on a command line.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO

from django.db import connections

from dbrestore import conf
from dbrestore.exceptions import BackupFormatError, RestoreAbortedError, RestoreConfigError

HISTORY_TABLE = "dbrestore_restorerun"
_COPY_START = re.compile(r"^COPY (?:public\.)?\"?([\w$]+)\"? .*FROM stdin;$")

DROP_PUBLIC_SQL = f"""
DO $dbrestore$
DECLARE r record;
BEGIN
  FOR r IN SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'f') AND c.relname <> '{HISTORY_TABLE}'
  LOOP EXECUTE format('DROP TABLE IF EXISTS public.%I CASCADE', r.relname); END LOOP;
  FOR r IN SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relkind IN ('v', 'm', 'S') AND c.relname NOT LIKE '{HISTORY_TABLE}%'
           AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('a', 'e', 'i'))
  LOOP EXECUTE format('DROP %s IF EXISTS public.%I CASCADE',
       CASE r.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'SEQUENCE' END, r.relname);
  END LOOP;
  FOR r IN SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
           WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd')
           AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = t.oid AND d.deptype = 'e')
  LOOP EXECUTE format('DROP TYPE IF EXISTS public.%I CASCADE', r.typname); END LOOP;
  FOR r IN SELECT p.oid::regprocedure AS signature FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname = 'public'
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
  LOOP EXECUTE format('DROP ROUTINE IF EXISTS %s CASCADE', r.signature); END LOOP;
END
$dbrestore$;
"""


def tool(name: str) -> str:
    """The path of a PostgreSQL client program (``DBRESTORE["PG_BIN_DIR"]`` first, then PATH)."""
    bin_dir = conf.get("PG_BIN_DIR")
    found = shutil.which(name, path=bin_dir) if bin_dir else shutil.which(name)
    if not found:
        where = f"in {bin_dir}" if bin_dir else "on PATH"
        raise RestoreConfigError(f"{name} was not found {where}: install PostgreSQL's client programs")
    return found


def pg_environment(using: str) -> dict[str, str]:
    """Connection settings for psql / pg_restore / pg_dump, from Django's DATABASES entry."""
    settings = connections[using].settings_dict
    env = {**os.environ}
    for key, name in (
        ("HOST", "PGHOST"),
        ("PORT", "PGPORT"),
        ("USER", "PGUSER"),
        ("PASSWORD", "PGPASSWORD"),
        ("NAME", "PGDATABASE"),
    ):
        if settings.get(key):
            env[name] = str(settings[key])
    env["PGAPPNAME"] = "dbrestore"
    return env


def require_postgresql(using: str) -> None:
    if connections[using].vendor != "postgresql":
        raise RestoreConfigError(
            f"a native PostgreSQL dump restores only into PostgreSQL; database {using!r} is {connections[using].vendor}"
        )


def filter_history(
    lines: Iterable[bytes], on_copy: Callable[[str], None] | None = None, on_row: Callable[[], None] | None = None
) -> Iterator[bytes]:
    """Drop the dump's statements about dbrestore's history table from a pg_dump SQL stream
    (statements end with ``;`` at a line end; COPY data ends with ``\\.``)."""
    statement: list[bytes] = []
    in_copy, skip_copy = False, False
    marker = HISTORY_TABLE.encode()
    for line in lines:
        if in_copy:
            if line.rstrip(b"\r\n") == b"\\.":
                in_copy = False
                if not skip_copy:
                    yield line
            elif not skip_copy:
                if on_row:
                    on_row()
                yield line
            continue
        stripped = line.strip()
        if not statement and (not stripped or stripped.startswith(b"--")):
            yield line  # blank lines and comments between statements
            continue
        statement.append(line)
        if not stripped.endswith(b";"):
            continue
        text = b"".join(statement)
        statement.clear()
        match = _COPY_START.match(stripped.decode("utf-8", "replace"))  # pg_dump writes COPY on one line
        if match:
            in_copy, skip_copy = True, match.group(1) == HISTORY_TABLE
            if not skip_copy and on_copy:
                on_copy(match.group(1))
        if marker in text:
            continue
        yield text
    if statement:
        yield b"".join(statement)


def _pump(
    source: Iterable[bytes],
    process: subprocess.Popen[bytes],
    errors: list[str],
    producer: subprocess.Popen[bytes] | None = None,
    **callbacks: Callable[..., None],
) -> None:
    """Feed the filtered dump to psql. If reading the dump fails (a truncated gzip, pg_restore
    refusing a damaged file...), psql is killed before its input ends, so that its single
    transaction can never commit half a dump."""
    stdin = process.stdin
    assert stdin is not None  # psql is started with stdin=PIPE
    try:
        for chunk in filter_history(source, **callbacks):
            stdin.write(chunk)
        if producer is not None and producer.wait() != 0:
            assert producer.stderr is not None  # stderr=PIPE
            raise RuntimeError(_first_error(producer.stderr.read().decode("utf-8", "replace")) or "pg_restore failed")
    except BrokenPipeError:
        return  # psql stopped (ON_ERROR_STOP): its own message says why
    except Exception as exc:
        errors.append(f"cannot read the dump: {str(exc).strip()}")
        process.kill()
        return
    try:
        stdin.close()
    except BrokenPipeError:
        pass


def restore_dump(path: Path, fmt: str, *, using: str, jobs: int, on_table: Callable[[str], None]) -> dict[str, int]:
    """Replace the database's contents with the dump's (see the module docstring); return the
    rows streamed per table (none counted with pg_restore ``--jobs``, which reads the dump itself)."""
    require_postgresql(using)
    env = pg_environment(using)
    psql = [tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1"]
    counts: dict[str, int] = {}  # rows per table, counted by the pump thread as they stream
    current: dict[str, str | None] = {"table": None}

    def copy_started(table: str) -> None:  # in the pump thread: no database work here
        current["table"] = table
        counts[table] = 0

    def row() -> None:
        table = current["table"]
        assert table is not None  # on_copy comes first
        counts[table] += 1

    if fmt in ("pg-custom", "pg-directory") and jobs > 1:
        _run([*psql, "-c", DROP_PUBLIC_SQL], env, path)
        listing = _restore_list(path, env)
        command = [
            tool("pg_restore"),
            "--clean",
            "--if-exists",
            "--no-owner",
            "--verbose",
            "--jobs",
            str(jobs),
            "-L",
            str(listing),
            "-d",
            env["PGDATABASE"],
            str(path),
        ]
        try:
            _run(command, env, path, on_line=lambda line: _verbose_table(line, on_table))
        finally:
            listing.unlink(missing_ok=True)
        return {}
    # One transaction: the drop, then the dump as SQL, streamed into psql's standard input.
    process = subprocess.Popen(
        [*psql, "--single-transaction", "-c", DROP_PUBLIC_SQL, "-f", "-"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    producer = None
    source: IO[bytes] | gzip.GzipFile
    if fmt == "pg-sql":
        source = open(path, "rb")
    elif fmt == "pg-sql-gz":
        source = gzip.open(path, "rb")
    else:
        producer = subprocess.Popen(
            [tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "-f", "-", str(path)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert producer.stdout is not None  # stdout=PIPE
        source = producer.stdout
    errors: list[str] = []
    pump = threading.Thread(
        target=_pump,
        args=(source, process, errors, producer),
        kwargs={"on_copy": copy_started, "on_row": row},
        daemon=True,
    )
    pump.start()
    stderr_lines: list[bytes] = []
    psql_stderr = process.stderr
    assert psql_stderr is not None  # stderr=PIPE
    reader = threading.Thread(target=lambda: stderr_lines.extend(psql_stderr), daemon=True)
    reader.start()
    shown = None
    while process.poll() is None:  # progress is reported from this thread, the one with the connection
        table = current["table"]
        if table != shown and table is not None:  # (None until the first COPY: shown is None then too)
            shown = table
            on_table(table)
        time.sleep(0.1)
    pump.join()
    reader.join()
    stderr = b"".join(stderr_lines).decode("utf-8", "replace")
    if producer is None:
        source.close()
    if process.returncode != 0 or errors:
        message = _first_error(" ".join([*errors, stderr])) or f"exit status {process.returncode}"
        raise RestoreAbortedError(f"{path}: the dump did not restore (rolled back): {message}")
    return counts


def _restore_list(path: Path, env: dict) -> Path:
    listing = subprocess.run([tool("pg_restore"), "-l", str(path)], env=env, capture_output=True, text=True)
    if listing.returncode != 0:
        raise BackupFormatError(f"pg_restore cannot read it: {_first_error(listing.stderr)}", path=path)
    kept = [line for line in listing.stdout.splitlines() if HISTORY_TABLE not in line]
    target = conf.backup_dir() / f".pg_restore-{os.getpid()}-{int(time.time())}.list"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n".join(kept) + "\n")
    return target


def _verbose_table(line: str, on_table: Callable[[str], None]) -> None:
    match = re.search(r'processing data for table "(?:public\.)?([\w$]+)"', line)
    if match:
        on_table(match.group(1))


def _run(command: list[str], env: dict, path: Path, on_line: Callable[[str], None] | None = None) -> None:
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines = []
    assert process.stderr is not None  # stderr=PIPE
    for line in process.stderr:
        lines.append(line)
        if on_line:
            on_line(line)
    process.wait()
    if process.returncode != 0:
        raise RestoreAbortedError(f"{path}: {Path(command[0]).name} failed: {_first_error(''.join(lines))}")


def _first_error(text: str) -> str:
    for line in text.splitlines():
        if "error" in line.lower() or "fatal" in line.lower():
            return line.strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else ""


def table_counts(using: str) -> dict[str, int]:
    """Rows in every table of the public schema but dbrestore's history, after the load."""
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> %s ORDER BY tablename",
            [HISTORY_TABLE],
        )
        tables = [name for (name,) in cursor.fetchall()]
        counts = {}
        for name in tables:
            cursor.execute(f"SELECT count(*) FROM {connections[using].ops.quote_name(name)}")
            counts[name] = cursor.fetchone()[0]
    return counts


def dump_database(target: Path, using: str) -> Path:
    """``pg_dump -Fc`` of the whole database into ``target`` (the safety backup, --native backups)."""
    require_postgresql(using)
    target.parent.mkdir(parents=True, exist_ok=True)
    _run([tool("pg_dump"), "-Fc", "--no-owner", "-f", str(target)], pg_environment(using), target)
    return target


def terminate_other_sessions(using: str, keep: Iterable[int] = ()) -> int:
    """End the other sessions on the target database (never this process's own)."""
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND NOT (pid = ANY(%s))",
            [list(keep)],
        )
        return cursor.fetchone()[0]
