"""create_backup, the checks before a restore, the safety backup, verification, discovery, signals."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from django.core.management.base import CommandError

from dbrestore.models import RestoreRun
from dbrestore.signals import post_restore, pre_restore
from restoreproject.shop.models import Customer, Order, Tag
from tests.support.backup_data import manifest

pytestmark = pytest.mark.django_db(transaction=True)


def shas(directory: Path) -> dict[str, tuple[int, str]]:
    return {t["model"]: (t["rows"], t["sha256"]) for t in manifest(directory)["tables"]}


def test_round_trip_is_lossless(sample_backup, run_command, tmp_path):
    run_command("restore_backup", sample_backup(rows=500), "--noinput")
    run_command("create_backup", "--output", tmp_path / "first")
    first = shas(tmp_path / "first")
    assert first["shop.OrderItem"][0] > 0 and first["shop.Customer"][0] == 50

    run_command("restore_backup", tmp_path / "first", "--noinput", "--no-safety-backup")
    run_command("create_backup", "--output", tmp_path / "second", "--no-compress")
    assert shas(tmp_path / "second") == first  # same rows, same bytes
    assert all(name.endswith(".jsonl") for name in os.listdir(tmp_path / "second") if name != "manifest.json")


def test_create_backup_manifest_and_options(sample_backup, run_command, backup_dir, tmp_path):
    run_command("restore_backup", sample_backup(rows=100), "--noinput")
    out, _ = run_command("create_backup")  # into BACKUP_DIR/<timestamp>/
    (made,) = [p for p in backup_dir.iterdir() if p.is_dir() and not p.name.startswith("safety")]
    data = manifest(made)
    assert data["format"] == "dbrestore/1" and data["vendor"] and data["django_version"].startswith("5.2")
    assert "0001_initial" in data["migrations"]["shop"]
    customer = next(t for t in data["tables"] if t["model"] == "shop.Customer")
    assert customer["file"] == "shop_customer.jsonl.gz" and "referred_by_id" in customer["columns"]
    assert str(made) in out
    assert not any(t["model"] == "dbrestore.RestoreRun" for t in data["tables"])

    run_command("create_backup", "--output", tmp_path / "only", "--only", "shop.Tag,shop_category")
    assert {t["model"] for t in manifest(tmp_path / "only")["tables"]} == {"shop.Tag", "shop.Category"}
    run_command("create_backup", "--output", tmp_path / "exclude", "--exclude", "shop.OrderItem")
    assert "shop.OrderItem" not in {t["model"] for t in manifest(tmp_path / "exclude")["tables"]}
    with pytest.raises(CommandError, match="not empty"):
        run_command("create_backup", "--output", tmp_path / "only")


@pytest.fixture
def existing():
    Tag.objects.create(name="there-before")
    return ["there-before"]


def untouched(existing):
    return list(Tag.objects.values_list("name", flat=True)) == existing and not Customer.objects.exists()


def corrupt(backup: Path, how: str) -> None:
    path = backup / "manifest.json"
    data = json.loads(path.read_text())
    if how == "bad json":
        path.write_text("{not json")
    elif how == "wrong format":
        data["format"] = "other/9"
        path.write_text(json.dumps(data))
    elif how == "missing file":
        (backup / "shop_tag.jsonl").unlink()
    elif how == "sha mismatch":
        lines = (backup / "shop_order.jsonl").read_text().splitlines(keepends=True)
        (backup / "shop_order.jsonl").write_text("".join(lines[:-1]) + lines[-1].replace("new", "old"))
    elif how == "count mismatch":
        next(t for t in data["tables"] if t["table"] == "shop_order")["rows"] += 1
        path.write_text(json.dumps(data))
    elif how == "truncated":
        body = (backup / "shop_orderitem.jsonl").read_bytes()
        (backup / "shop_orderitem.jsonl").write_bytes(body[: len(body) // 2])


@pytest.mark.parametrize(
    "how, message",
    [
        ("bad json", "invalid JSON in manifest"),
        ("wrong format", "unsupported manifest format 'other/9'"),
        ("missing file", "'shop_tag.jsonl' listed in the manifest is missing"),
        ("sha mismatch", "shop_order.jsonl: sha256"),
        ("count mismatch", "shop_order.jsonl: 400 rows, but the manifest says 401"),
        ("truncated", "shop_orderitem.jsonl: sha256"),
    ],
)
def test_a_damaged_backup_is_refused_before_any_write(sample_backup, run_command, existing, how, message):
    backup = sample_backup(rows=2000)
    corrupt(backup, how)
    with pytest.raises(CommandError, match=message):
        run_command("restore_backup", backup, "--noinput")
    assert untouched(existing)


def test_skip_checksum_restores_a_changed_file(sample_backup, run_command):
    backup = sample_backup(rows=2000)
    corrupt(backup, "sha mismatch")
    run_command("restore_backup", backup, "--noinput", "--skip-checksum")
    assert Order.objects.filter(status="old").exists()


def test_count_mismatch_found_after_the_load_marks_the_run_partial(sample_backup, run_command, tmp_path):
    backup = sample_backup(rows=300, data_format="json")  # arrays: counted while loading, not up front
    data = json.loads((backup / "manifest.json").read_text())
    tags = next(t for t in data["tables"] if t["table"] == "shop_tag")
    real = tags["rows"]
    tags["rows"] += 2
    for table in data["tables"]:
        table.pop("sha256")
    (backup / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(CommandError) as info:
        run_command("restore_backup", backup, "--noinput")
    assert info.value.returncode == 3
    run = RestoreRun.objects.get()
    assert run.status == "partial"
    assert run.verification["tables"]["shop.Tag"] == {**run.verification["tables"]["shop.Tag"], "ok": False}
    assert f"shop.Tag: read {real} rows, the manifest says {real + 2}" in run.errors


def test_migration_drift_is_reported(sample_backup, run_command):
    run_command("restore_backup", sample_backup(rows=100), "--noinput")
    backup = sample_backup(rows=100, name="drift")
    data = json.loads((backup / "manifest.json").read_text())
    data["migrations"] = {
        "shop": ["0001_initial", "0002_customer_last_order", "0003_future"],
        "newapp": ["0001_initial"],
    }
    (backup / "manifest.json").write_text(json.dumps(data))
    out, _ = run_command("restore_backup", backup, "--noinput")
    assert "has migrations this database has not applied, in: newapp, shop" in out
    assert "without, in: admin, auth" in out


def test_safety_backup_and_rollback(sample_backup, run_command, tmp_path):
    run_command("restore_backup", sample_backup(rows=200), "--noinput", "--no-safety-backup")
    Tag.objects.create(name="made-by-hand")
    tags_before = sorted(Tag.objects.values_list("name", flat=True))
    report = tmp_path / "report.json"
    run_command(
        "restore_backup", sample_backup(rows=100, name="other", compress=True), "--noinput", "--report-json", report
    )
    safety = json.loads(report.read_text())["safety_backup"]
    run = RestoreRun.objects.latest("pk")
    assert safety and run.safety_backup == safety and Path(safety, "manifest.json").exists()
    assert "made-by-hand" not in Tag.objects.values_list("name", flat=True)

    run_command("restore_backup", "--rollback", run.pk, "--noinput")
    assert sorted(Tag.objects.values_list("name", flat=True)) == tags_before


def test_safety_backup_failure_stops_before_emptying(sample_backup, run_command, backup_dir, existing, settings):
    backup = sample_backup(rows=100)
    blocked = backup_dir / "not-a-directory"
    blocked.write_text("")
    settings.DBRESTORE = {**settings.DBRESTORE, "BACKUP_DIR": str(blocked)}
    with pytest.raises(CommandError, match="cannot write the backup"):
        run_command("restore_backup", backup, "--noinput")
    assert untouched(existing)


def test_list_latest_and_names(sample_backup, run_command, backup_dir):
    shutil.copytree(sample_backup(rows=100, name="a"), backup_dir / "2024-01-01")
    newer = backup_dir / "2025-06-01"
    shutil.copytree(sample_backup(rows=200, name="b"), newer)
    data = json.loads((newer / "manifest.json").read_text())
    data["created_at"] = "2099-01-01T00:00:00+00:00"
    (newer / "manifest.json").write_text(json.dumps(data))
    out, _ = run_command("restore_backup", "--list")
    lines = out.splitlines()
    assert lines[1].startswith("2025-06-01") and lines[2].startswith("2024-01-01")
    assert lines[1].split()[-2:] == ["7", "200"]  # tables, rows

    run_command("restore_backup", "--latest", "--noinput")
    assert RestoreRun.objects.get().source == str(newer)
    run_command("restore_backup", "2024-01-01", "--noinput")  # a name in BACKUP_DIR
    assert Customer.objects.count() == 10


def test_signals(sample_backup, run_command):
    seen = []

    def pre(sender, run, tables, **kwargs):
        seen.append(("pre", run.status, tables))

    def post(sender, run, tables, result, **kwargs):
        seen.append(("post", result.status, tables))

    pre_restore.connect(pre)
    post_restore.connect(post)
    try:
        run_command("restore_backup", sample_backup(rows=100), "--noinput")
    finally:
        pre_restore.disconnect(pre)
        post_restore.disconnect(post)
    assert [event[:2] for event in seen] == [("pre", "running"), ("post", "succeeded")]
    assert "shop.OrderItem" in seen[0][2] and seen[0][2] == seen[1][2]
