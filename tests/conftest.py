"""Shared fixtures. The suite runs once on SQLite and once on PostgreSQL (tests/run.sh)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection


def pytest_collection_modifyitems(config, items):
    skip_pg = pytest.mark.skip(reason="needs PostgreSQL; runs in the PostgreSQL pass of tests/run.sh")
    is_pg = os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://"))
    for item in items:
        if "postgres" in item.keywords and not is_pg:
            item.add_marker(skip_pg)


@pytest.fixture(autouse=True)
def backup_dir(settings, tmp_path):
    """Every test gets its own BACKUP_DIR (rejects files and safety backups land there)."""
    directory = tmp_path / "backups"
    directory.mkdir()
    settings.DBRESTORE = {**settings.DBRESTORE, "BACKUP_DIR": str(directory), "PROGRESS_INTERVAL": 0.0}
    return directory


@pytest.fixture
def run_command():
    """Run a management command; return (stdout, stderr)."""

    def run(name: str, *args, **options):
        out, err = io.StringIO(), io.StringIO()
        call_command(name, *[str(a) for a in args], stdout=out, stderr=err, **options)
        return out.getvalue(), err.getvalue()

    return run


@pytest.fixture
def sample_backup(tmp_path, run_command):
    """A factory for sample backups: ``sample_backup(rows=300, **make_sample_backup options)``."""

    def make(rows: int = 300, name: str = "sample", **options) -> Path:
        output = tmp_path / name
        flags = []
        if options.get("compress"):
            flags.append("--compress")
        if options.get("data_format"):
            flags += ["--data-format", options["data_format"]]
        run_command("make_sample_backup", "--rows", rows, "--output", output, *flags)
        return output

    return make


@pytest.fixture
def vendor():
    return connection.vendor
