"""A feature whose optional dependencies are not installed (``dbrestore[zstd]``, ``dbrestore[s3]``)
stops with one line naming the extra to install, before anything is written."""

from __future__ import annotations

import sys

import pytest
from django.core.files.storage import storages
from django.core.management.base import CommandError

from restoreproject.shop.models import Tag

pytestmark = pytest.mark.django_db(transaction=True)


def test_zstd_without_zstandard_names_the_extra(tmp_path, run_command, monkeypatch):
    Tag.objects.create(name="red")
    run_command("create_backup", "--output", tmp_path / "zst", "--compress", "zstd", "-v", "0")
    monkeypatch.setitem(sys.modules, "zstandard", None)  # as if the extra were not installed
    for command in (
        ("create_backup", "--output", tmp_path / "again", "--compress", "zstd"),
        ("restore_backup", tmp_path / "zst", "--noinput"),
    ):
        with pytest.raises(CommandError) as error:
            run_command(*command)
        assert str(error.value).endswith("needs the zstandard package (not installed): pip install 'dbrestore[zstd]'")
        assert "\n" not in str(error.value)
    assert list(Tag.objects.values_list("name", flat=True)) == ["red"]


def test_an_s3_storage_without_django_storages_names_the_extra(tmp_path, run_command, settings, monkeypatch):
    monkeypatch.setitem(sys.modules, "storages.backends.s3", None)  # as if django-storages were not installed
    settings.STORAGES = {**settings.STORAGES, "nos3": {"BACKEND": "storages.backends.s3.S3Storage"}}
    storages._storages.pop("nos3", None)
    monkeypatch.setattr(storages, "_backends", None)
    with pytest.raises(CommandError) as error:
        run_command("create_backup", "--storage", "nos3", "-v", "0")
    assert str(error.value) == (
        "the storage 'nos3' (storages.backends.s3.S3Storage) needs django-storages and boto3 (not installed): "
        "pip install 'dbrestore[s3]'"
    )
