"""Bad input: one clear line naming the file, no traceback, and the database as it was."""

from __future__ import annotations

import gzip
import json

import pytest
from django.core.management.base import CommandError

from dbrestore.models import RestoreRun
from restoreproject.shop.models import Tag

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def existing_rows():
    Tag.objects.create(name="already-here")
    return ["already-here"]


def assert_untouched(existing_rows):
    assert list(Tag.objects.values_list("name", flat=True)) == existing_rows


def restore_error(run_command, *args) -> str:
    with pytest.raises(CommandError) as info:
        run_command("restore_backup", *args, "--noinput")
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_missing_path(run_command, tmp_path, existing_rows):
    message = restore_error(run_command, tmp_path / "nope")
    assert "nope" in message and "no such file" in message
    assert_untouched(existing_rows)


def test_empty_file(run_command, tmp_path, existing_rows):
    path = tmp_path / "shop_tag.json"
    path.write_text("")
    assert "shop_tag.json: the file is empty" in restore_error(run_command, path)
    assert_untouched(existing_rows)


def test_invalid_json(run_command, tmp_path, existing_rows):
    path = tmp_path / "shop_tag.json"
    path.write_text('[{"id": 1, "name": "a"}, {"id": 2, "name": ]')
    message = restore_error(run_command, path)
    assert "shop_tag.json" in message and "row 1" in message
    assert_untouched(existing_rows)


def test_truncated_json_array_in_a_backup_directory(run_command, sample_backup, existing_rows):
    backup = sample_backup(rows=200, data_format="json")
    data = backup / "shop_orderitem.json"
    data.write_bytes(data.read_bytes()[: len(data.read_bytes()) // 2])
    message = restore_error(run_command, backup)
    assert "shop_orderitem.json" in message and "truncated" in message
    assert_untouched(existing_rows)
    assert RestoreRun.objects.get().status == RestoreRun.Status.FAILED


def test_invalid_json_line_names_the_line(run_command, tmp_path, existing_rows):
    path = tmp_path / "shop_tag.jsonl"
    path.write_text('{"id": 1, "name": "a"}\n{"id": 2, "name": \n')
    message = restore_error(run_command, path)
    assert "shop_tag.jsonl (line 2)" in message
    assert_untouched(existing_rows)


def test_truncated_gzip(run_command, tmp_path, existing_rows):
    path = tmp_path / "shop_tag.jsonl.gz"
    payload = gzip.compress(b"".join(json.dumps({"id": i, "name": f"t{i}"}).encode() + b"\n" for i in range(5000)))
    path.write_bytes(payload[: len(payload) // 2])
    message = restore_error(run_command, path)
    assert "shop_tag.jsonl.gz" in message
    assert_untouched(existing_rows)


def test_table_without_model(run_command, tmp_path, existing_rows):
    path = tmp_path / "no_such_table.json"
    path.write_text('[{"id": 1}]')
    message = restore_error(run_command, path)
    assert "no_such_table" in message and "matches no installed model" in message
    assert_untouched(existing_rows)


def test_unknown_database_alias(run_command, sample_backup, existing_rows):
    message = restore_error(run_command, sample_backup(rows=50), "--database", "elsewhere")
    assert "unknown database alias 'elsewhere'" in message
    assert_untouched(existing_rows)


def test_missing_source_argument(run_command):
    with pytest.raises(CommandError, match="Give the backup to restore"):
        run_command("restore_backup")


def test_bad_batch_size(run_command, sample_backup, existing_rows):
    assert "batch size must be at least 1" in restore_error(run_command, sample_backup(rows=50), "--batch-size", 0)
    assert_untouched(existing_rows)
