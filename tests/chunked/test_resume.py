"""--no-atomic restores in chunks with checkpoints, and --resume: the same rows, counts and
rejects as a restore that was never interrupted."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from django.core.management.base import CommandError

from dbrestore.chunked.reject_parts import postload_path
from dbrestore.exceptions import RestoreCancelled
from dbrestore.load.rejects import default_rejects_path
from dbrestore.models import RestoreChunk, RestoreRun
from dbrestore.runs.progress import BaseListener
from dbrestore.service import restore
from dbrestore.sources import open_backup
from dbrestore.sources.ranges import line_ranges, range_rows
from tests.support.backup_data import assert_table_matches, manifest, table_counts
from tests.support.processes import killed, start, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


class StopAt(BaseListener):
    """Interrupts the restore inside table ``label`` once it has read ``rows`` rows."""

    def __init__(self, label: str, rows: int):
        self.label, self.rows = label, rows

    def batch_done(self, table) -> None:
        if table.label == self.label and table.total >= self.rows:
            raise RestoreCancelled("interrupted by the test")


def counts(run_id: int) -> dict:
    run = RestoreRun.objects.get(pk=run_id)
    return {label: (t["total"], t["inserted"], t["skipped"], t["rejected"]) for label, t in run.tables.items()}


def rejects(path: str | None) -> list[tuple]:
    if not path:
        return []
    lines = [json.loads(line) for line in Path(path).read_text().splitlines()]
    return sorted((r["table"], r["position"] or 0, r["reason"]) for r in lines)


def test_ranges_cover_the_file_on_line_boundaries(sample_backup):
    backup = open_backup(sample_backup(rows=300))
    data = next(t for t in backup.tables if t.key == "shop_customer")
    ranges = line_ranges(data, 1000)
    assert len(ranges) > 5 and ranges[0][0] == 0 and ranges[-1][1] is None
    assert all(end == following[0] for (_, end, _), following in itertools.pairwise(ranges))
    rows = [row for start, end, first in ranges for row in range_rows(data, start, end, first)]
    assert rows == list(data.rows())  # the same rows, numbered by their line in the whole file


def test_interrupted_restore_resumes_to_the_same_rows_counts_and_rejects(bad_backup, run_command):
    clean = restore(bad_backup, atomic=False, batch_size=2, chunk_bytes=600, safety_backup=False)
    clean_counts, clean_rejects = counts(clean.run_id), rejects(clean.rejects_file)

    stopped = restore(
        bad_backup,
        atomic=False,
        batch_size=2,
        chunk_bytes=600,
        safety_backup=False,
        listeners=[StopAt("shop.Customer", 8)],
    )
    assert stopped.status == "cancelled"
    run = RestoreRun.objects.get(pk=stopped.run_id)
    assert any(f"--resume {run.pk}" in error and "shop.Customer partial" in error for error in run.errors)
    out, _ = run_command("restore_status", run.pk)
    assert "shop.Customer: " in out and "partial: " in out and "untouched" in out

    with pytest.raises(CommandError) as info:  # rejected rows: ends partial, as the clean run did
        run_command("restore_backup", "--resume", run.pk, "--noinput")
    assert info.value.returncode == 3
    assert counts(run.pk) == clean_counts
    run.refresh_from_db()
    assert run.status == "partial" and rejects(run.rejects_file) == clean_rejects  # no line lost nor doubled
    assert not Path(run.rejects_file + ".parts").exists()  # joined into the rejects file: the run is over
    assert run.rows_inserted + run.rows_skipped + run.rows_rejected == run.rows_processed
    with pytest.raises(CommandError, match=f"restore #{run.pk} cannot resume: it finished"):
        run_command("restore_backup", "--resume", run.pk, "--noinput")


def test_resume_in_two_steps_gives_the_whole_backup(sample_backup, run_command):
    backup = sample_backup(rows=600)
    first = restore(backup, atomic=False, chunk_bytes=4000, batch_size=50, listeners=[StopAt("shop.Order", 100)])
    assert first.status == "cancelled"
    chunks = RestoreChunk.objects.filter(run_id=first.run_id)
    assert chunks.filter(state="done").exists() and chunks.exclude(state="done").exists()
    out, _ = run_command("restore_backup", "--resume", first.run_id, "--noinput", "--async")  # SYNC_JOBS: in-process
    assert out.strip() == str(first.run_id)
    for entry in manifest(backup)["tables"]:
        assert_table_matches(backup, entry)
    run = RestoreRun.objects.get(pk=first.run_id)
    assert run.status == "succeeded" and run.rows_inserted == sum(e["rows"] for e in manifest(backup)["tables"])
    assert not chunks.exclude(state="done").exists()


def test_resume_refuses_a_changed_backup_other_options_and_atomic_runs(sample_backup, run_command):
    backup = sample_backup(rows=300)
    stopped = restore(backup, atomic=False, chunk_bytes=2000, listeners=[StopAt("shop.Order", 10)])
    with pytest.raises(CommandError, match=f"restore #{stopped.run_id} cannot resume: the option mode='merge' differs"):
        run_command("restore_backup", "--resume", stopped.run_id, "--noinput", "--mode", "merge")
    data = backup / "shop_order.jsonl"
    data.write_bytes(data.read_bytes() + b"\n")
    with pytest.raises(
        CommandError,
        match=f"restore #{stopped.run_id} cannot resume: the backup changed since it "
        r"began \(.*shop_order.jsonl",
    ):
        run_command("restore_backup", "--resume", stopped.run_id, "--noinput")
    atomic = restore(backup, skip_checksum=True, listeners=[StopAt("shop.Order", 10)])
    with pytest.raises(CommandError, match="atomic restores roll back: run it again"):
        run_command("restore_backup", "--resume", atomic.run_id, "--noinput")


def test_admin_run_page_shows_chunks_and_resumes(sample_backup, admin_client):
    from django.urls import reverse

    backup = sample_backup(rows=300)
    stopped = restore(backup, atomic=False, chunk_bytes=2000, listeners=[StopAt("shop.Order", 10)])
    page = admin_client.get(reverse("admin:dbrestore_restorerun_change", args=[stopped.run_id])).content.decode()
    assert 'class="dbrestore-resume"' in page
    assert '<td class="chunks">done (1)</td>' in page and ("partial: " in page or "untouched" in page)
    response = admin_client.post(reverse("admin:dbrestore_restorerun_resume", args=[stopped.run_id]))
    assert response.status_code == 302  # to the progress page; SYNC_JOBS ran the resume in-process
    run = RestoreRun.objects.get(pk=stopped.run_id)
    assert run.status == "succeeded"
    for entry in manifest(backup)["tables"]:
        assert_table_matches(backup, entry)
    page = admin_client.get(reverse("admin:dbrestore_restorerun_change", args=[run.pk])).content.decode()
    assert 'class="dbrestore-resume"' not in page
    response = admin_client.post(reverse("admin:dbrestore_restorerun_resume", args=[run.pk]), follow=True)
    assert f"Restore #{run.pk} cannot resume: it finished (succeeded)" in response.content.decode()


def checksums(run_command, output: Path) -> dict[str, str]:
    """The sha256 of each table's rows as create_backup writes them: equal means equal tables."""
    run_command("create_backup", "--output", output, "--no-compress")
    return {
        entry["model"]: entry["sha256"] for entry in manifest(output)["tables"] if entry["model"].startswith("shop.")
    }


@pytest.mark.parametrize("jobs", [1, 2], ids=["one process", "jobs 2"])
def test_sigkill_midway_then_resume_gives_the_database_of_a_clean_restore(
    sample_backup, subprocess_env, run_command, tmp_path, jobs, vendor
):
    if jobs > 1 and vendor != "postgresql":
        pytest.skip("--jobs N needs PostgreSQL")
    backup = sample_backup(rows=20000, name="kill")
    total = sum(entry["rows"] for entry in manifest(backup)["tables"])
    run_command("restore_backup", backup, "--noinput", "--no-atomic", "--no-safety-backup")
    clean = checksums(run_command, tmp_path / "clean")

    process = start(
        [
            "restore_backup",
            backup,
            "--noinput",
            "--no-atomic",
            "--chunk-bytes",
            "30000",
            "--jobs",
            jobs,
            "--batch-size",
            "200",
        ],
        subprocess_env(),
    )
    # Killed once a few of shop.OrderItem's chunks are done (its parents are 42% of the rows).
    clean_run = RestoreRun.objects.latest("pk").pk
    done = RestoreChunk.objects.filter(run_id__gt=clean_run, table="shop.OrderItem", state="done")
    wait_for(lambda: done.count() >= 3, "chunks of shop.OrderItem done", process=process, interval=0.01)
    killed(process)
    run = RestoreRun.objects.get(pk=done.first().run_id)
    out, _ = run_command("restore_status", run.pk)
    run.refresh_from_db()
    assert run.status == "failed" and "partial: " in out
    held = table_counts()
    assert {label: t["inserted"] for label, t in run.tables.items()} == {label: held[label] for label in run.tables}
    assert 0 < run.rows_inserted < total

    run_command("restore_backup", "--resume", run.pk, "--noinput", "--jobs", jobs)
    run.refresh_from_db()
    assert run.status == "succeeded", run.errors
    assert checksums(run_command, tmp_path / "resumed") == clean
    assert run.rows_processed == run.rows_inserted == total  # no row counted twice, none lost
    now = table_counts()
    assert {label: t["inserted"] for label, t in run.tables.items()} == {label: now[label] for label in run.tables}


class StopAtPhase(BaseListener):
    def __init__(self, phase: str):
        self.phase = phase

    def phase_started(self, phase: str) -> None:
        if phase == self.phase:
            raise RestoreCancelled("interrupted by the test")


def test_post_load_steps_interrupted_then_resumed_count_each_row_once(bad_backup, run_command):
    """Killed after the FK fill-in rejected its orphans (deleted them): resumed, those steps run
    again and find nothing new; the counts and rejects equal those of a run never interrupted."""
    clean = restore(bad_backup, atomic=False, batch_size=2, chunk_bytes=600, safety_backup=False)
    clean_counts, clean_rejects = counts(clean.run_id), rejects(clean.rejects_file)
    stopped = restore(
        bad_backup,
        atomic=False,
        batch_size=2,
        chunk_bytes=600,
        safety_backup=False,
        listeners=[StopAtPhase("verifying row counts")],
    )
    assert stopped.status == "cancelled"
    earlier = postload_path(default_rejects_path(RestoreRun.objects.get(pk=stopped.run_id)))
    assert "shop_customer" in earlier.read_text()  # the orphans the first attempt rejected and deleted
    with pytest.raises(CommandError):  # partial: rows rejected, as the clean run
        run_command("restore_backup", "--resume", stopped.run_id, "--noinput")
    run = RestoreRun.objects.get(pk=stopped.run_id)
    assert counts(run.pk) == clean_counts and rejects(run.rejects_file) == clean_rejects


def test_progress_json_of_a_stopped_run_says_each_tables_chunks(sample_backup, admin_client):
    from django.urls import reverse

    stopped = restore(sample_backup(rows=300), atomic=False, chunk_bytes=2000, listeners=[StopAt("shop.Order", 10)])
    data = admin_client.get(reverse("admin:dbrestore_restorerun_progress", args=[stopped.run_id])).json()
    states = {label: table.get("state") for label, table in data["tables"].items()}
    assert states["shop.Customer"] == "done" and states["shop.OrderItem"] == "untouched"
    assert data["rows_inserted"] == sum(table["inserted"] for table in data["tables"].values())
