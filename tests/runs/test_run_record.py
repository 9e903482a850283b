"""What dbrestore writes into its own tables takes any text (issue 26, item 4): NUL characters and
lone surrogates from the input (in a column name, a file name, a message) are escaped, lengths
bounded, on SQLite and PostgreSQL; a run whose record cannot be saved ends ``failed`` with a
reason that can be, never ``running``. And the rule for symbolic links in a backup directory."""

from __future__ import annotations

import json
import os

import pytest
from django.db import DataError

from dbrestore.models import RestoreRun
from dbrestore.runs.storable import storable_json, storable_text
from restoreproject.shop.models import Tag

pytestmark = pytest.mark.django_db(transaction=True)


def test_storable_text_escapes_and_bounds():
    assert storable_text("a\x00b\udc80c") == "a\\u0000b\\udc80c"
    assert storable_text("x" * 20, 10) == "xxxxxxx..."
    assert storable_json({"k\x00": ["\ud800", 1, None]}) == {"k\\u0000": ["\\ud800", 1, None]}


def test_nul_and_lone_surrogates_in_a_column_name_reach_the_run_record(tmp_path, restore_outcome):
    """The warning naming an unknown column holds the input's text: saved, escaped (PostgreSQL
    refused it before, and the run was left running)."""
    path = tmp_path / "shop_tag.jsonl"
    path.write_text(json.dumps({"id": 1, "name": "a", "bad\u0000key": 1, "lone\ud800": 2}) + "\n")
    status, message, report, _ = restore_outcome(path, "--mode", "append")
    assert status == 0, message
    run = RestoreRun.objects.get()
    assert run.status == RestoreRun.Status.SUCCEEDED
    warning = next(w for w in run.warnings if "not fields of shop.Tag" in w)
    assert "bad\\u0000key" in warning and "lone\\ud800" in warning
    assert list(Tag.objects.values_list("name", flat=True)) == ["a"]


def test_an_undecodable_file_name_reaches_the_run_record(tmp_path, restore_outcome):
    """A file name that is not UTF-8 (a lone surrogate in Python) in the source and the error."""
    directory = tmp_path / os.fsdecode(b"backup\xff")
    directory.mkdir()
    (directory / os.fsdecode(b"nomodel\xfe.jsonl")).write_text(json.dumps({"id": 1}) + "\n")
    status, message, _, _ = restore_outcome(directory)
    assert status == 1 and "\n" not in message
    run = RestoreRun.objects.get()
    assert run.status == RestoreRun.Status.FAILED and run.finished_at is not None
    assert "backup\\udcff" in run.source and any("\\udcfe" in error for error in run.errors), run.errors


def test_a_run_whose_record_cannot_be_saved_ends_failed_not_running(tmp_path, monkeypatch, restore_outcome):
    path = tmp_path / "shop_tag.jsonl"
    path.write_text(json.dumps({"id": 1, "name": "a"}) + "\n")
    save = RestoreRun.save

    def refuse_the_final_save(self, *args, **kwargs):
        if self.status != RestoreRun.Status.RUNNING and not kwargs.get("update_fields"):
            raise DataError("unsupported Unicode escape sequence")
        return save(self, *args, **kwargs)

    monkeypatch.setattr(RestoreRun, "save", refuse_the_final_save)
    status, message, _, _ = restore_outcome(path, "--mode", "append")
    assert status == 1 and "the run's record could not be saved: DataError: unsupported Unicode escape" in message
    run = RestoreRun.objects.get()
    assert run.status == RestoreRun.Status.FAILED and run.finished_at is not None
    assert "the run's record could not be saved" in run.errors[-1]


# -- symbolic links in a backup directory: followed when they point into it, refused otherwise


@pytest.mark.parametrize("manifest", [False, True], ids=["plain", "manifest"])
def test_a_link_out_of_the_backup_directory_is_refused(tmp_path, manifest, restore_outcome):
    outside = tmp_path / "elsewhere" / "secret.jsonl"
    outside.parent.mkdir()
    outside.write_text(json.dumps({"id": 1, "name": "secret"}) + "\n")
    directory = tmp_path / "backup"
    directory.mkdir()
    (directory / "shop_tag.jsonl").symlink_to(outside)
    if manifest:
        (directory / "manifest.json").write_text(
            json.dumps(
                {
                    "format": "dbrestore/1",
                    "tables": [{"model": "shop.Tag", "table": "shop_tag", "file": "shop_tag.jsonl"}],
                }
            )
        )
    status, message, _, _ = restore_outcome(directory, "--mode", "append")
    assert status == 1 and "\n" not in message
    assert "outside the backup" in message, message
    assert not Tag.objects.exists()


@pytest.mark.parametrize("manifest", [False, True], ids=["plain", "manifest"])
def test_a_link_inside_the_backup_directory_is_followed_and_reported(tmp_path, manifest, restore_outcome):
    directory = tmp_path / "backup"
    directory.mkdir()
    (directory / "tags.data").write_text(json.dumps({"id": 1, "name": "linked"}) + "\n")
    (directory / "shop_tag.jsonl").symlink_to("tags.data")
    if manifest:
        (directory / "manifest.json").write_text(
            json.dumps(
                {
                    "format": "dbrestore/1",
                    "tables": [{"model": "shop.Tag", "table": "shop_tag", "file": "shop_tag.jsonl"}],
                }
            )
        )
    status, message, report, _ = restore_outcome(directory, "--mode", "append")
    assert status == 0, message
    assert list(Tag.objects.values_list("name", flat=True)) == ["linked"]
    assert any(
        "shop_tag.jsonl: a link to tags.data in the backup directory, followed" in w for w in report["warnings"]
    ), report["warnings"]
