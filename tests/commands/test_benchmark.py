"""restore_benchmark runs every method on the same rows (a tiny size: speed is not tested)."""

from __future__ import annotations

import json

import pytest

from restoreproject.shop.models import OrderItem

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.postgres
def test_benchmark_measures_every_method(run_command, tmp_path, monkeypatch):
    from restoreproject.shop import benchmark

    monkeypatch.setattr(benchmark, "PARENT_ROWS", 500)
    report = tmp_path / "bench.json"
    out, _ = run_command("restore_benchmark", "--rows", 400, "--slow-rows", 40, "--json", report)
    data = json.loads(report.read_text())
    assert data["rows"] == 400 and set(data["methods"]) == {
        "loaddata",
        "naive",
        "orm",
        "copy",
        "copy_late_indexes",
        "default",
        "psql",
        "diff",
        "read",
        "select",
    }
    for method, figures in data["methods"].items():
        assert figures["rows"] == (40 if method in ("loaddata", "naive") else 400)
        assert figures["rows_per_s"] > 0 and figures["peak_rss_mb"] > 0 and figures["peak_pss_all_mb"] > 0
    assert "(subset)" in out
    assert OrderItem.objects.count() == 0  # the table is left empty


def test_default_method_restores_the_whole_backup_as_typed(run_command, tmp_path, monkeypatch):
    """``default`` is restore_backup with no flag but --noinput, on SQLite too."""
    from restoreproject.shop import benchmark

    monkeypatch.setattr(benchmark, "PARENT_ROWS", 300)
    files = {"whole": tmp_path / "whole"}
    assert benchmark.command_for("default", files, "")[2:] == ["restore_backup", str(files["whole"]), "--noinput"]
    report = tmp_path / "bench.json"
    run_command("restore_benchmark", "--rows", 250, "--methods", "orm,default", "--json", report)
    figures = json.loads(report.read_text())["methods"]
    assert set(figures) == {"orm", "default"} and figures["default"]["rows"] == 250
    assert figures["default"]["rows_per_s"] > 0
    assert OrderItem.objects.count() == 0
