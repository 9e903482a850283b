"""``restore_benchmark --methods diff``: the whole backup compared with the database holding it."""

from __future__ import annotations

import json

import pytest

from restoreproject.shop.models import OrderItem

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_benchmark_times_the_diff(run_command, tmp_path, monkeypatch):
    from restoreproject.shop import benchmark

    monkeypatch.setattr(benchmark, "PARENT_ROWS", 300)
    files = {"whole": tmp_path / "whole"}
    assert benchmark.command_for("diff", files, "")[2:5] == ["restore_backup", str(files["whole"]), "--diff"]
    report = tmp_path / "bench.json"
    run_command("restore_benchmark", "--rows", 250, "--methods", "default,diff", "--json", report)
    figures = json.loads(report.read_text())["methods"]
    assert set(figures) == {"default", "diff"} and figures["diff"]["rows"] == 250
    assert figures["diff"]["rows_per_s"] > 0 and figures["diff"]["peak_rss_mb"] > 0
    assert OrderItem.objects.count() == 0  # the table is left empty
