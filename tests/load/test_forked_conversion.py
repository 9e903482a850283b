"""Rows converted in forked processes (the default COPY path for big JSON Lines tables) end
exactly as when the restoring process converts them alone: the same rows stored, the same counts,
the same rejects in the same order, the same warnings and errors. The one-process run is the
oracle; the settings below make every JSON Lines table go through the children in blocks of a
row or two, so that bad rows, failed COPYs and blocks done by the parent land everywhere."""

from __future__ import annotations

import json
import logging
import os
import signal
from pathlib import Path

import pytest
from django.apps import apps
from django.core.management.base import CommandError

from dbrestore.models import RestoreRun
from restoreproject.shop.models import Customer, Tag
from tests.support.backup_data import assert_table_matches, manifest, read_rejects, table_counts
from tests.support.processes import children, killed, run_worker, start_restore, wait_for
from tests.support.shop_rows import customer, order, write_jsonl

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

#: Every JSON Lines table through the children, in blocks of about 200 bytes (one or two rows).
FORKED = {"CONVERT_MIN_ROWS": 0, "COPY_BATCH_SIZE": 2}


@pytest.fixture
def forked_settings(settings):
    settings.DBRESTORE = {**settings.DBRESTORE, **FORKED}


@pytest.fixture
def awkward_backup(tmp_path) -> Path:
    """Rows that cannot be converted, orphans and duplicates (their COPY fails and the ORM chain
    takes the block), rows without a primary key, unknown columns, a row too long for a block's
    shared memory slot (done by the restoring process), blank lines."""
    folder = tmp_path / "awkward"
    folder.mkdir()
    customers = [
        customer(1),
        customer(2, referred_by_id=1),
        customer(3, joined_at="yesterday"),
        customer(4, name=None),
        customer(1, email="dup@example.com"),
        customer(6, referred_by_id=999),
        customer(7, notes="n" * 2000),
        {**customer(8), "legacy": 1, "colour": "red"},
        customer(9, is_active="perhaps"),
        customer(10, referred_by_id=7),
        customer(11, external_id="not-a-uuid"),
        customer(12),
    ]
    write_jsonl(folder / "shop_customer.jsonl", customers)
    with open(folder / "shop_customer.jsonl", "a") as stream:
        stream.write("\n   \n" + json.dumps(customer(13)) + "\n")
    write_jsonl(
        folder / "shop_order.jsonl",
        [
            order(1, 1),
            order(2, 999),
            order(3, 1, total="abc"),
            order(4, 3),
            order(5, 12),
        ],
    )
    tags = [{"name": f"t{n}"} for n in range(1, 6)] + [{"id": 100, "name": "with-id"}, {"name": None}]
    write_jsonl(folder / "shop_tag.jsonl", tags)
    return folder


def restore_outcome(run_command, backup: Path, report_path: Path, *flags) -> dict:
    """What a user sees of a restore: counts, rejects (in file order), warnings, every stored row."""
    try:
        run_command("restore_backup", backup, "--noinput", "--batch-size", 1, "--report-json", report_path, *flags)
    except CommandError as exc:
        assert exc.returncode == 3, exc  # partial: rows were rejected
    report = json.loads(report_path.read_text())
    rows = {}
    for model in apps.get_app_config("shop").get_models(include_auto_created=True):
        fields = ["name"] if model is Tag else [f.attname for f in model._meta.concrete_fields]  # tags numbered anew
        rows[model._meta.label] = sorted(map(repr, model._base_manager.values_list(*fields)))
    return {
        "status": report["status"],
        "tables": {
            label: {k: t[k] for k in ("total", "inserted", "skipped", "rejected")}
            for label, t in report["tables"].items()
        },
        "rejects": [(r["table"], r["position"], r["reason"], r["row"]) for r in read_rejects(report["rejects_file"])],
        "warnings": report["warnings"],
        "rows": rows,
    }


def test_forked_processes_restore_what_one_process_restores(
    awkward_backup, run_command, tmp_path, forked_settings, caplog
):
    alone = restore_outcome(run_command, awkward_backup, tmp_path / "one.json", "--convert-processes", 1)
    with caplog.at_level(logging.INFO, logger="dbrestore"):
        forked = restore_outcome(run_command, awkward_backup, tmp_path / "two.json", "--convert-processes", 2)
    assert "shop.Customer: rows converted in 2 forked processes" in caplog.text
    assert forked == alone
    # and what that outcome is, so that the comparison cannot pass on two equally wrong runs
    assert alone["tables"]["shop.Customer"] == {"total": 13, "inserted": 7, "skipped": 1, "rejected": 5}
    assert sorted(position for table, position, *_ in alone["rejects"] if table == "shop_customer") == [3, 4, 6, 9, 11]
    assert any("colour, legacy" in w and "2 values dropped" in w for w in alone["warnings"])
    assert Customer.objects.get(pk=7).notes == "n" * 2000
    assert alone["tables"]["shop.Tag"] == {"total": 7, "inserted": 6, "skipped": 0, "rejected": 1}
    assert alone["tables"]["shop.Order"]["rejected"] == 3  # customer 999, total "abc", customer 3 rejected


def test_three_processes_and_a_sample_restore_every_row(sample_backup, run_command, forked_settings, caplog):
    backup = sample_backup(rows=1500)
    with caplog.at_level(logging.INFO, logger="dbrestore"):
        run_command("restore_backup", backup, "--noinput", "--convert-processes", 3)
    assert "rows converted in 3 forked processes" in caplog.text
    for entry in manifest(backup)["tables"]:
        assert_table_matches(backup, entry)
    assert RestoreRun.objects.get().status == "succeeded"


def test_a_bad_line_deep_in_the_file_fails_as_without_forks(sample_backup, run_command, forked_settings):
    backup = sample_backup(rows=600)
    path = backup / "shop_orderitem.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    lines[150] = b'{"id": 151, "order_id": \n'
    path.write_bytes(b"".join(lines))
    messages = []
    for processes in (1, 2):
        before = table_counts()
        with pytest.raises(CommandError) as info:
            run_command("restore_backup", backup, "--noinput", "--skip-checksum", "--convert-processes", processes)
        messages.append(str(info.value))
        assert table_counts() == before
    assert messages[0] == messages[1]
    assert "shop_orderitem.jsonl" in messages[1] and "line 151" in messages[1] and "\n" not in messages[1]


# -- real processes, killed ----------------------------------------------------------------------

#: Only OrderItem (11,520 rows of the 20,000-row sample) is converted in children, in blocks of
#: about 15 rows: its load lasts seconds, and the children seen are its.
ORDER_ITEMS_FORKED = json.dumps({"CONVERT_MIN_ROWS": 10000, "COPY_BATCH_SIZE": 20})


def converters_of(process) -> list[int]:
    """The restoring process's converting children, once there are two."""
    found = children(process.pid)
    return found if len(found) >= 2 else []


def test_sigkill_of_the_restore_takes_its_converting_children_with_it(sample_backup, subprocess_env, run_command):
    backup = sample_backup(rows=20000, name="big")
    Customer.objects.create(**{k: v for k, v in customer(50).items() if not k.endswith("_id") and k != "id"})
    before = table_counts()
    process = start_restore(
        backup, subprocess_env(DBRESTORE_SETTINGS_JSON=ORDER_ITEMS_FORKED), "--convert-processes", "2"
    )
    converters = wait_for(lambda: converters_of(process), "the converting processes", process=process, interval=0.01)
    killed(process)  # and its database sessions gone
    wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in converters), "the children to die", timeout=10)
    assert table_counts() == before
    run_command("restore_backup", backup, "--noinput", "--no-safety-backup")
    assert RestoreRun.objects.order_by("-pk").first().status == "succeeded"


def test_a_killed_child_leaves_its_blocks_to_the_restoring_process(sample_backup, subprocess_env):
    backup = sample_backup(rows=20000, name="big")
    process = start_restore(
        backup, subprocess_env(DBRESTORE_SETTINGS_JSON=ORDER_ITEMS_FORKED), "--convert-processes", "2"
    )
    converters = wait_for(lambda: converters_of(process), "the converting processes", process=process, interval=0.01)
    os.kill(converters[0], signal.SIGKILL)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert "A conversion process died" in err
    run = RestoreRun.objects.get()
    assert run.status == "succeeded"
    for entry in manifest(backup)["tables"]:
        assert_table_matches(backup, entry)


def test_a_restore_queued_for_a_real_rqworker_converts_in_children_of_its_work_horse(
    redis_queue, sample_backup, run_command, subprocess_env
):
    backup = sample_backup(rows=2000)
    out, _ = run_command("restore_backup", backup, "--async", "--noinput")
    run_id = int(out.strip().splitlines()[-1])
    forked = json.dumps({**FORKED, "CONVERT_PROCESSES": 2})
    worker = run_worker(subprocess_env(DBRESTORE_SETTINGS_JSON=forked, DBRESTORE_LOG_LEVEL="INFO"))
    assert worker.returncode == 0, worker.stderr
    assert "shop.OrderItem: rows converted in 2 forked processes" in worker.stderr
    run = RestoreRun.objects.get(pk=run_id)
    assert run.status == "succeeded", run.errors
    for entry in manifest(backup)["tables"]:
        assert_table_matches(backup, entry)


def test_a_negative_count_is_refused_before_anything_is_touched(sample_backup, run_command):
    backup = sample_backup(rows=50)
    before = table_counts()
    with pytest.raises(CommandError, match=r"--convert-processes must be 0 or more \(got -1\)"):
        run_command("restore_backup", backup, "--noinput", "--convert-processes", -1)
    assert table_counts() == before
