"""A chunk loaded by the restoring process converts its rows in forked processes, as one
transaction does: the same rows, counts and rejects as converting them itself."""

from __future__ import annotations

import logging

import pytest

from dbrestore.models import RestoreChunk, RestoreRun
from dbrestore.service import restore
from tests.support.chunked_runs import clean_restore, table_checksums

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


def test_chunks_converted_in_forked_processes_load_the_same_rows(
    sample_backup, run_command, tmp_path, settings, caplog
):
    settings.DBRESTORE = {**settings.DBRESTORE, "CONVERT_MIN_ROWS": 0, "COPY_BATCH_SIZE": 50}
    backup = sample_backup(rows=600)
    clean = clean_restore(run_command, backup, tmp_path / "clean")
    caplog.set_level(logging.INFO, logger="dbrestore.load.copy")
    forked = restore(backup, atomic=False, chunk_bytes=8000, convert_processes=2, safety_backup=False)
    assert forked.status == "succeeded", forked.errors
    run = RestoreRun.objects.get(pk=forked.run_id)
    assert RestoreChunk.objects.filter(run_id=run.pk).count() > len(run.tables)  # cut into chunks
    assert "shop.OrderItem: rows converted in 2 forked processes" in caplog.text
    assert table_checksums(run_command, tmp_path / "forked") == clean
    assert run.rows_inserted == run.rows_processed
