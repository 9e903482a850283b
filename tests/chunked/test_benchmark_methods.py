"""restore_benchmark's chunked methods and pg_restore run side by side (a tiny size: speed is not tested)."""

from __future__ import annotations

import json

import pytest

from dbrestore.models import RestoreRun
from restoreproject.shop.models import OrderItem

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


def test_chunked_methods_and_pg_restore_are_measured(run_command, tmp_path, monkeypatch):
    from restoreproject.shop import benchmark

    monkeypatch.setattr(benchmark, "PARENT_ROWS", 300)
    report = tmp_path / "bench.json"
    run_command(
        "restore_benchmark", "--rows", 300, "--methods", "no_atomic,no_atomic_1chunk,pg_restore", "--json", report
    )
    figures = json.loads(report.read_text())["methods"]
    assert set(figures) == {"no_atomic", "no_atomic_1chunk", "pg_restore"}
    assert all(entry["rows"] == 300 and entry["rows_per_s"] > 0 for entry in figures.values())
    assert OrderItem.objects.count() == 0


def test_the_benchmark_refuses_a_schema_without_its_indexes(run_command):
    from django.core.management.base import CommandError

    fake = RestoreRun.objects.create(
        source="/x",
        database="default",
        status="failed",
        checkpoint={"set_aside": {"indexes": [["public.i", "CREATE INDEX i ON t (c)"]]}},
    )
    with pytest.raises(CommandError, match="dbrestore.W004|are set aside"):
        run_command("restore_benchmark", "--rows", 10, "--methods", "no_atomic")
    fake.delete()  # its record names no real index
