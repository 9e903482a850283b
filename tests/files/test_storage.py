"""Backups in a Django storage: django-storages' S3 backend against a real ``moto_server``
process on 127.0.0.1 (started once per test session), on SQLite and on PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import socket
import threading

import pytest
from django.core.management.base import CommandError

from dbrestore.models import RestoreRun
from restoreproject.shop.models import Customer, OrderItem, Tag
from tests.support.backup_data import shop_counts as counts

pytestmark = pytest.mark.django_db(transaction=True)


def keys(s3) -> list[str]:
    return sorted(obj["Key"] for obj in s3.client.list_objects_v2(Bucket=s3.bucket).get("Contents", []))


def backup_keys(s3, backup: str) -> list[str]:
    folder = f"{s3.prefix}/{backup}/"
    return [key[len(folder) :] for key in keys(s3) if key.startswith(folder)]


def get(s3, backup: str, name: str) -> bytes:
    return s3.client.get_object(Bucket=s3.bucket, Key=f"{s3.prefix}/{backup}/{name}")["Body"].read()


def put(s3, backup: str, name: str, data: bytes) -> None:
    s3.client.put_object(Bucket=s3.bucket, Key=f"{s3.prefix}/{backup}/{name}", Body=data)


def only_backup(s3) -> str:
    (name,) = {key.split("/")[1] for key in keys(s3) if key.split("/")[1] != "safety"}
    return name


def test_create_backup_writes_to_s3_and_list_latest_restore_read_it(s3, loaded, run_command, backup_dir):
    out, _ = run_command("create_backup")
    name = only_backup(s3)
    assert f"storage://backups/{name}" in out
    files = backup_keys(s3, name)
    assert "manifest.json" in files and "shop_orderitem.jsonl.gz" in files
    assert not any(backup_dir.iterdir())  # nothing went to the local BACKUP_DIR
    manifest = json.loads(get(s3, name, "manifest.json"))
    items = next(t for t in manifest["tables"] if t["model"] == "shop.OrderItem")
    assert items["rows"] == loaded["items"]

    listed, _ = run_command("restore_backup", "--list")
    assert name in listed and str(sum(t["rows"] for t in manifest["tables"])) in listed

    OrderItem.objects.all().delete()
    Tag.objects.create(name="made after the backup")
    out, _ = run_command("restore_backup", "--latest", "--noinput")
    assert counts() == loaded
    run = RestoreRun.objects.latest("pk")
    assert run.status == "succeeded" and run.source == f"storage://backups/{name}"
    assert run.safety_backup.startswith("storage://backups/safety/safety-run")  # the safety backup went to S3 too
    safety = run.safety_backup.removeprefix("storage://backups/")
    assert "manifest.json" in backup_keys(s3, safety)

    run_command("restore_backup", "--rollback", run.pk, "--noinput", "--no-safety-backup")
    assert Tag.objects.filter(name="made after the backup").exists()


def test_restore_by_name_with_storage_option_and_zstd(s3, loaded, run_command, settings):
    settings.DBRESTORE = {**settings.DBRESTORE, "STORAGE": None}
    run_command("create_backup", "--storage", "backups", "--compress", "zstd", "--output", "storage://backups/nightly")
    assert "shop_order.jsonl.zst" in backup_keys(s3, "nightly")
    listed, _ = run_command("restore_backup", "--list")
    assert "nightly" not in listed  # without --storage: the local BACKUP_DIR
    listed, _ = run_command("restore_backup", "--list", "--storage", "backups")
    assert "nightly" in listed

    Customer.objects.update(name="changed")
    run_command("restore_backup", "nightly", "--storage", "backups", "--noinput", "--no-safety-backup")
    assert counts() == loaded and not Customer.objects.filter(name="changed").exists()


def test_restore_streams_large_objects_through_multipart_upload(s3, run_command, monkeypatch):
    from dbrestore.backups.writer import BackupWriter
    from dbrestore.files import storage
    from restoreproject.shop.sample import sample_tables

    monkeypatch.setattr(storage, "PART_SIZE", 5 * 1024 * 1024)  # S3's minimum part size
    writer = BackupWriter(storage.StoragePath("backups", "big"), compress=False)
    for model, rows in sample_tables(70_000, 42):
        writer.write_table(
            model=model._meta.label,
            table=model._meta.db_table,
            columns=[f.column for f in model._meta.concrete_fields],
            rows=rows,
        )
    writer.finish()
    head = s3.client.head_object(Bucket=s3.bucket, Key=f"{s3.prefix}/big/shop_orderitem.jsonl")
    assert head["ContentLength"] > 5 * 1024 * 1024 and "-" in head["ETag"]  # a multipart upload's ETag
    run_command("restore_backup", "storage://backups/big", "--noinput", "--no-safety-backup")
    expected = {t["model"]: t["rows"] for t in writer.tables}
    assert OrderItem.objects.count() == expected["shop.OrderItem"] > 40_000
    assert Customer.objects.count() == expected["shop.Customer"]


def test_checksum_mismatch_on_s3_leaves_the_database_untouched(s3, loaded, run_command):
    run_command("create_backup", "--no-compress", "--output", "storage://backups/tampered")
    data = get(s3, "tampered", "shop_tag.jsonl")
    put(s3, "tampered", "shop_tag.jsonl", data.replace(b'"name":"', b'"name":"X', 1))
    Tag.objects.create(name="kept")
    before = counts()
    with pytest.raises(CommandError) as error:
        run_command("restore_backup", "tampered", "--noinput")
    message = str(error.value)
    assert "storage://backups/tampered/shop_tag.jsonl" in message and "sha256" in message and "\n" not in message
    assert counts() == before


def test_missing_object_names_backup_and_object(s3, loaded, run_command):
    run_command("create_backup", "--output", "storage://backups/holed")
    s3.client.delete_object(Bucket=s3.bucket, Key=f"{s3.prefix}/holed/shop_order.jsonl.gz")
    before = counts()
    with pytest.raises(CommandError) as error:
        run_command("restore_backup", "holed", "--noinput")
    message = str(error.value)
    assert "storage://backups/holed/manifest.json" in message and "shop_order.jsonl.gz" in message
    assert "missing" in message and "\n" not in message
    assert counts() == before
    missing = "storage://backups/holed/shop_order.jsonl.gz: no such object in storage 'backups'"
    with pytest.raises(CommandError, match=missing):
        run_command("restore_backup", "storage://backups/holed/shop_order.jsonl.gz", "--noinput")


def test_unreachable_or_missing_bucket_is_one_line(s3, loaded, run_command, settings):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    settings.STORAGES = {
        **settings.STORAGES,
        "down": _s3_storage(f"http://127.0.0.1:{closed_port}", s3.bucket, s3.prefix),
        "nobucket": _s3_storage(s3.endpoint, "no-such-bucket", s3.prefix),
    }
    with pytest.raises(CommandError) as error:
        run_command("restore_backup", "--list", "--storage", "down")
    assert "storage://down/" in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(CommandError, match="no such bucket"):
        run_command("create_backup", "--storage", "nobucket")
    with pytest.raises(CommandError, match="unknown storage alias 'nope'"):
        run_command("restore_backup", "--list", "--storage", "nope")
    assert counts() == loaded


def test_dropped_connection_mid_object_rolls_back(s3, loaded, run_command, settings):
    """A proxy in front of moto_server cuts the connection after 64 KB of a data object."""
    run_command("create_backup", "--no-compress", "--output", "storage://backups/cut")
    put(s3, "cut", "shop_orderitem.jsonl", get(s3, "cut", "shop_orderitem.jsonl") * 20)  # > 64 KB
    proxy = CuttingProxy(s3.endpoint, cut_after=64 * 1024, cut_path="shop_orderitem")
    settings.STORAGES = {**settings.STORAGES, "flaky": _s3_storage(proxy.url, s3.bucket, s3.prefix)}
    Tag.objects.create(name="kept")
    before = counts()
    try:
        with pytest.raises(CommandError) as error:
            run_command("restore_backup", "storage://flaky/cut", "--noinput", "--skip-checksum")
    finally:
        proxy.close()
    message = str(error.value)
    assert "storage://flaky/cut/shop_orderitem.jsonl" in message and "\n" not in message
    assert counts() == before
    assert RestoreRun.objects.latest("pk").status == "failed"


def test_admin_restore_page_lists_stored_backups_and_uploads_into_storage(
    s3, loaded, run_command, admin_client, sample_backup
):
    from django.urls import reverse

    run_command("create_backup", "--output", "storage://backups/for-admin")
    page = admin_client.get(reverse("admin:dbrestore_restorerun_restore"))
    assert page.status_code == 200 and "for-admin" in page.content.decode()

    data = (sample_backup(rows=50, name="upload") / "shop_tag.jsonl").read_bytes()
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = admin_client.post(
        reverse("admin:dbrestore_restorerun_restore"),
        {
            "upload": SimpleUploadedFile("shop_tag.jsonl", data),
            "mode": "append",
            "atomic": "on",
        },
    )
    assert response.status_code == 200 and "Confirm" in response.content.decode()
    uploaded = [key for key in keys(s3) if key.startswith(f"{s3.prefix}/upload-")]
    assert len(uploaded) == 1 and uploaded[0].endswith("/shop_tag.jsonl")
    assert get(s3, uploaded[0].split("/")[1], "shop_tag.jsonl") == data


def test_encrypted_zstd_backup_on_s3(s3, gpg_recipient, loaded, run_command):
    run_command(
        "create_backup", "--encrypt", gpg_recipient, "--compress", "zstd", "--output", "storage://backups/sealed"
    )
    files = backup_keys(s3, "sealed")
    assert "shop_orderitem.jsonl.zst.gpg" in files
    sealed = get(s3, "sealed", "shop_customer.jsonl.zst.gpg")
    assert sealed[:1] in (b"\x84", b"\x85", b"\xc1")  # an OpenPGP encrypted session key packet
    assert json.loads(get(s3, "sealed", "manifest.json"))["encryption"]["method"] == "gpg"
    Customer.objects.update(name="changed")
    run_command("restore_backup", "sealed", "--noinput")
    assert counts() == loaded and not Customer.objects.filter(name="changed").exists()
    safety = RestoreRun.objects.latest("pk").safety_backup.removeprefix("storage://backups/")
    assert all(name.endswith(".gpg") for name in backup_keys(s3, safety) if name != "manifest.json")


# -- the S3 server -------------------------------------------------------------------------------


def _s3_storage(endpoint: str, bucket: str, prefix: str) -> dict:
    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": bucket,
            "endpoint_url": endpoint,
            "access_key": "testing",
            "secret_key": "testing",
            "region_name": "us-east-1",
            "location": prefix,
            "file_overwrite": False,
        },
    }


class S3Bucket:
    def __init__(self, endpoint: str, bucket: str, prefix: str):
        import boto3

        self.endpoint, self.bucket, self.prefix = endpoint, bucket, prefix
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        self.client.create_bucket(Bucket=bucket)


@pytest.fixture
def s3(moto_server, settings, request):
    """A fresh bucket on the moto server, as the storage alias ``backups``, configured as
    ``DBRESTORE["STORAGE"]``."""
    bucket = "t-" + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:20]
    s3 = S3Bucket(moto_server, bucket, "dbrestore")
    settings.STORAGES = {**settings.STORAGES, "backups": _s3_storage(moto_server, bucket, "dbrestore")}
    settings.DBRESTORE = {**settings.DBRESTORE, "STORAGE": "backups"}
    return s3


class CuttingProxy:
    """A TCP proxy that closes the client connection after ``cut_after`` response bytes of a
    request whose path contains ``cut_path`` (a connection dropped mid-download)."""

    def __init__(self, endpoint: str, cut_after: int, cut_path: str):
        host, port = endpoint.rsplit("/", 1)[1].split(":")
        self.target = (host, int(port))
        self.cut_after, self.cut_path = cut_after, cut_path.encode()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.create_connection(self.target)
        request = client.recv(65536)
        cut = self.cut_path in request.split(b"\r\n", 1)[0] and request.startswith(b"GET")
        upstream.sendall(request)
        threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()
        sent = 0
        try:
            while data := upstream.recv(16384):
                if cut and sent + len(data) > self.cut_after:
                    client.sendall(data[: self.cut_after - sent])
                    break
                client.sendall(data)
                sent += len(data)
        except OSError:
            pass
        finally:
            for sock in (client, upstream):
                try:
                    sock.shutdown(socket.SHUT_RDWR)  # wakes the other thread's recv; close() alone would not
                except OSError:
                    pass
                sock.close()

    @staticmethod
    def _pipe(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass

    def close(self) -> None:
        self.server.close()


def test_stored_directory_without_manifest_opens_with_its_files_sorted(s3):
    """A folder of table files without a manifest in a storage is read as a local one is: its
    objects are sorted by name (StoragePaths sort; they did not, and such a folder failed to open)."""
    from dbrestore.sources import open_backup

    put(s3, "plain", "shop_tag.jsonl", b'{"id": 1, "name": "a"}\n')
    put(s3, "plain", "shop_customer.jsonl", b'{"id": 1, "name": "b"}\n')
    backup = open_backup("storage://backups/plain")
    assert backup.format == "json-directory"
    assert [table.key for table in backup.tables] == ["shop_customer", "shop_tag"]


def test_report_json_of_a_stored_backup(s3, loaded, run_command, tmp_path):
    """--report-json with a backup in a storage: the report is written (checking that it is not
    the backup took the stored path for a local one, and raised TypeError)."""
    run_command("create_backup")
    name = only_backup(s3)
    report = tmp_path / "report.json"
    run_command("restore_backup", f"storage://backups/{name}", "--noinput", "--report-json", str(report))
    assert json.loads(report.read_text())["status"] == "succeeded"
