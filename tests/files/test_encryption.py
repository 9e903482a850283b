"""GPG-encrypted and zstd-compressed backups: written by create_backup, restored as streams,
and every fault (no key, a corrupt or truncated file, no gpg) one line with the database as it was."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from django.core.management.base import CommandError

from dbrestore.models import RestoreRun
from restoreproject.shop.models import Customer, OrderItem, Tag
from tests.support.backup_data import manifest
from tests.support.backup_data import shop_counts as counts

pytestmark = pytest.mark.django_db(transaction=True)


def test_encrypted_backup_round_trip(gpg_recipient, loaded, run_command, tmp_path):
    run_command("create_backup", "--output", tmp_path / "plain")
    out, _ = run_command("create_backup", "--output", tmp_path / "enc", "--encrypt", gpg_recipient)
    assert f"encrypted for {gpg_recipient}" in out
    data = manifest(tmp_path / "enc")
    assert data["encryption"] == {"method": "gpg", "recipients": [gpg_recipient]}
    files = {t["file"] for t in data["tables"]}
    assert "shop_customer.jsonl.gz.gpg" in files and set(os.listdir(tmp_path / "enc")) == files | {"manifest.json"}
    # sha256 of the plaintext: the same as the unencrypted backup's
    plain = {t["table"]: t["sha256"] for t in manifest(tmp_path / "plain")["tables"]}
    assert {t["table"]: t["sha256"] for t in data["tables"]} == plain
    first = (tmp_path / "enc" / "shop_customer.jsonl.gz.gpg").read_bytes()
    assert first[:1] in (b"\x84", b"\x85", b"\xc1")  # an OpenPGP public-key encrypted session key packet

    Customer.objects.update(name="changed")
    run_command("restore_backup", tmp_path / "enc", "--noinput")
    assert counts() == loaded and not Customer.objects.filter(name="changed").exists()
    run = RestoreRun.objects.latest("pk")
    safety = manifest(Path(run.safety_backup))
    assert safety["encryption"]["recipients"] == [gpg_recipient]  # the safety backup is encrypted too
    assert all(t["file"].endswith(".gpg") for t in safety["tables"])


def test_recipients_from_settings_and_zstd(gpg_recipient, loaded, run_command, tmp_path, settings):
    settings.DBRESTORE = {**settings.DBRESTORE, "GPG_RECIPIENTS": [gpg_recipient]}
    run_command("create_backup", "--output", tmp_path / "enc", "--compress", "zstd")
    assert "shop_order.jsonl.zst.gpg" in os.listdir(tmp_path / "enc")
    OrderItem.objects.all().delete()
    run_command("restore_backup", tmp_path / "enc", "--noinput", "--no-safety-backup")
    assert counts() == loaded


def test_unknown_recipient_writes_nothing(keyring, loaded, run_command, tmp_path):
    with pytest.raises(CommandError, match="no public key for GPG recipient 'nobody@example.invalid'") as error:
        run_command("create_backup", "--output", tmp_path / "enc", "--encrypt", "nobody@example.invalid")
    assert "\n" not in str(error.value)
    assert not (tmp_path / "enc").exists() or not any((tmp_path / "enc").iterdir())


@pytest.fixture
def encrypted(gpg_recipient, loaded, run_command, tmp_path):
    run_command("create_backup", "--output", tmp_path / "enc", "--encrypt", gpg_recipient, "--no-compress")
    Tag.objects.create(name="kept")
    return tmp_path / "enc"


def fails_cleanly(run_command, source, *flags, match: str) -> str:
    before = counts()
    with pytest.raises(CommandError) as error:
        run_command("restore_backup", source, "--noinput", "--no-safety-backup", *flags)
    message = str(error.value)
    assert "\n" not in message and match in message, message
    assert counts() == before and Tag.objects.filter(name="kept").exists()
    return message


def test_missing_secret_key(encrypted, run_command, monkeypatch, tmp_path):
    empty = tmp_path / "empty-gnupg"
    empty.mkdir(mode=0o700)
    monkeypatch.setenv("GNUPGHOME", str(empty))
    message = fails_cleanly(run_command, encrypted, match="gpg could not decrypt")
    assert ".jsonl.gpg" in message and "secret key" in message.lower()
    fails_cleanly(run_command, encrypted, "--skip-checksum", match="gpg could not decrypt")


def test_corrupt_encrypted_file(encrypted, run_command):
    target = encrypted / "shop_orderitem.jsonl.gpg"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    message = fails_cleanly(run_command, encrypted, match="shop_orderitem.jsonl.gpg")
    assert "gpg could not decrypt" in message  # the checksum pass reads to the end: gpg's integrity check
    # Without it, the garbage gpg writes before its integrity check may fail the JSON parser first.
    fails_cleanly(run_command, encrypted, "--skip-checksum", match="shop_orderitem.jsonl.gpg")


def test_truncated_encrypted_file_never_passes_as_a_short_table(encrypted, run_command):
    target = encrypted / "shop_orderitem.jsonl.gpg"
    data = target.read_bytes()
    target.write_bytes(data[: len(data) * 2 // 3])
    # Without the checksum check, the rows gpg wrote before the cut reach the loader: the exit
    # status at the end of the stream must still fail the restore (and roll it back).
    fails_cleanly(run_command, encrypted, "--skip-checksum", match="shop_orderitem.jsonl.gpg")
    fails_cleanly(run_command, encrypted, match="shop_orderitem.jsonl.gpg")
    assert RestoreRun.objects.latest("pk").status == "failed"


def test_gpg_missing(encrypted, gpg_recipient, run_command, settings, tmp_path):
    settings.DBRESTORE = {**settings.DBRESTORE, "GPG_BINARY": str(tmp_path / "no-gpg-here")}
    fails_cleanly(run_command, encrypted, match="cannot run gpg")
    with pytest.raises(CommandError, match="cannot run gpg"):
        run_command("create_backup", "--output", tmp_path / "x", "--encrypt", gpg_recipient)


def test_zstd_backup_round_trip_and_truncation(loaded, run_command, tmp_path):
    run_command("create_backup", "--output", tmp_path / "gz")
    run_command("create_backup", "--output", tmp_path / "zst", "--compress", "zstd")
    sha256 = lambda name: {t["sha256"] for t in manifest(tmp_path / name)["tables"]}  # noqa: E731
    assert sha256("zst") == sha256("gz")
    zst = tmp_path / "zst" / "shop_orderitem.jsonl.zst"
    assert zst.read_bytes()[:4] == b"\x28\xb5\x2f\xfd"  # the zstd frame magic
    OrderItem.objects.all().delete()
    run_command("restore_backup", tmp_path / "zst", "--noinput", "--no-safety-backup")
    assert counts() == loaded

    Tag.objects.create(name="kept")
    zst.write_bytes(zst.read_bytes()[:-20])
    fails_cleanly(run_command, tmp_path / "zst", "--skip-checksum", match="shop_orderitem.jsonl.zst")
    fails_cleanly(run_command, tmp_path / "zst", match="shop_orderitem.jsonl.zst")
    zst.write_bytes(b"\x28\xb5\x2f\xfd" + b"garbage" * 10)
    fails_cleanly(run_command, tmp_path / "zst", match="invalid zstd data")


def test_single_zstd_file(run_command, tmp_path):
    import zstandard

    rows = "".join(json.dumps({"id": i, "name": f"tag {i}"}) + "\n" for i in range(1, 51))
    (tmp_path / "shop_tag.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(rows.encode()))
    run_command("restore_backup", tmp_path / "shop_tag.jsonl.zst", "--noinput", "--no-safety-backup")
    assert sorted(Tag.objects.values_list("name", flat=True))[:2] == ["tag 1", "tag 10"] and Tag.objects.count() == 50
