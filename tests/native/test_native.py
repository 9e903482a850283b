"""PostgreSQL native dumps through psql and pg_restore, with dumps made by pg_dump in the test."""

from __future__ import annotations

import gzip
import subprocess

import pytest
from django.core.management.base import CommandError
from django.db import connection

from dbrestore.models import RestoreRun
from dbrestore.native.tools import pg_environment
from restoreproject.shop.models import Customer, OrderItem, Tag

pytestmark = pytest.mark.django_db(transaction=True)
postgres = pytest.mark.postgres


def pg_dump(target, *args) -> None:
    subprocess.run(["pg_dump", "--no-owner", *args, "-f", str(target)], env=pg_environment("default"), check=True)


@pytest.fixture
def dumped(sample_backup, run_command, tmp_path):
    """A database with sample rows, and what it held when dumped."""
    run_command("restore_backup", sample_backup(rows=300), "--noinput", "--no-safety-backup")
    return {"customers": Customer.objects.count(), "items": OrderItem.objects.count(), "dir": tmp_path}


def change_everything():
    Tag.objects.create(name="made-after-the-dump")
    OrderItem.objects.all().delete()


@postgres
@pytest.mark.parametrize("fmt", ["plain", "gzip", "custom", "directory"])
def test_native_dump_replaces_the_contents(dumped, run_command, fmt):
    target = dumped["dir"] / {"plain": "db.sql", "gzip": "db.sql.gz", "custom": "db.dump", "directory": "db.dir"}[fmt]
    if fmt == "gzip":
        plain = dumped["dir"] / "tmp.sql"
        pg_dump(plain)
        target.write_bytes(gzip.compress(plain.read_bytes()))
    else:
        pg_dump(target, *{"plain": [], "custom": ["-Fc"], "directory": ["-Fd"]}[fmt])
    change_everything()
    before = set(RestoreRun.objects.values_list("pk", flat=True))

    out, _ = run_command("restore_backup", target, "--noinput")
    assert not Tag.objects.filter(name="made-after-the-dump").exists()
    assert OrderItem.objects.count() == dumped["items"] and Customer.objects.count() == dumped["customers"]
    runs = RestoreRun.objects.order_by("pk")
    assert before < set(runs.values_list("pk", flat=True))  # the history survives, the new run too
    run = runs.last()
    assert run.status == "succeeded" and run.source_format == f"pg-{ {'plain': 'sql', 'gzip': 'sql-gz'}.get(fmt, fmt) }"
    assert run.tables["shop_orderitem"]["inserted"] == dumped["items"]
    assert run.safety_backup.endswith(".dump")
    Customer.objects.create(email="new@example.com", name="n", joined_at="2024-01-01T00:00Z")  # sequences are right


@postgres
def test_parallel_pg_restore(dumped, run_command):
    target = dumped["dir"] / "db.dir"
    pg_dump(target, "-Fd")
    change_everything()
    run_command("restore_backup", target, "--noinput", "--jobs", "2", "--no-safety-backup")
    assert OrderItem.objects.count() == dumped["items"]
    assert RestoreRun.objects.latest("pk").status == "succeeded"


@postgres
def test_corrupt_dump_leaves_the_database_as_it_was(dumped, run_command):
    target = dumped["dir"] / "db.dump"
    pg_dump(target, "-Fc")
    body = target.read_bytes()
    target.write_bytes(body[: len(body) // 2])
    change_everything()
    with pytest.raises(CommandError, match="db.dump") as info:
        run_command("restore_backup", target, "--noinput", "--no-safety-backup")
    assert "\n" not in str(info.value)
    assert Tag.objects.filter(name="made-after-the-dump").exists() and OrderItem.objects.count() == 0
    assert RestoreRun.objects.latest("pk").status == "failed"


@postgres
def test_sql_error_rolls_everything_back(dumped, run_command):
    target = dumped["dir"] / "bad.sql"
    pg_dump(target)
    target.write_text(target.read_text() + "\nSELECT no_such_function();\n")
    change_everything()
    with pytest.raises(CommandError, match="no_such_function"):
        run_command("restore_backup", target, "--noinput", "--no-safety-backup")
    assert Tag.objects.filter(name="made-after-the-dump").exists()


@postgres
def test_missing_tool(dumped, run_command, settings, tmp_path):
    target = dumped["dir"] / "db.sql"
    pg_dump(target)
    empty = tmp_path / "no-bin"
    empty.mkdir()
    settings.DBRESTORE = {**settings.DBRESTORE, "PG_BIN_DIR": str(empty)}
    with pytest.raises(CommandError, match=r"(psql|pg_dump) was not found in"):
        run_command("restore_backup", target, "--noinput")


@postgres
def test_create_backup_native(dumped, run_command, tmp_path):
    run_command("create_backup", "--native", "--output", tmp_path / "native")
    change_everything()
    run_command("restore_backup", tmp_path / "native", "--noinput", "--no-safety-backup")
    assert OrderItem.objects.count() == dumped["items"]


def test_native_dump_needs_postgresql(tmp_path, run_command):
    if connection.vendor == "postgresql":
        pytest.skip("runs in the SQLite pass")
    target = tmp_path / "db.dump"
    target.write_bytes(b"PGDMP\x01\x0e\x00" + b"\x00" * 100)
    with pytest.raises(CommandError, match="restores only into PostgreSQL"):
        run_command("restore_backup", target, "--noinput")


@postgres
def test_terminate_connections_ends_other_sessions(dumped, run_command):
    import psycopg

    target = dumped["dir"] / "db.dump"
    pg_dump(target, "-Fc")
    settings = connection.settings_dict
    other = psycopg.connect(
        host=settings["HOST"], port=settings["PORT"], user=settings["USER"], dbname=settings["NAME"]
    )
    other.execute("SELECT 1")
    run_command("restore_backup", target, "--noinput", "--terminate-connections", "--no-safety-backup")
    with pytest.raises(psycopg.OperationalError):
        other.execute("SELECT 1")
    run = RestoreRun.objects.latest("pk")
    assert run.status == "succeeded" and any("ended 1 other sessions" in w for w in run.warnings)
