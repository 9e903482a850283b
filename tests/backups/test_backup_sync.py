"""A backup's data files are all on disk (fsynced) before its manifest is written: the files are
synced together, side by side, instead of one after the other as each is closed."""

from __future__ import annotations

import os

from dbrestore.backups.writer import BackupWriter
from dbrestore.sources.directory import MANIFEST_NAME


def test_every_data_file_is_fsynced_before_the_manifest(tmp_path, monkeypatch):
    events = []
    real_fsync = os.fsync

    def fsync(fd):
        events.append(("fsync", os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    writer = BackupWriter(tmp_path / "b", compress=False)
    for table in ("a", "b", "c"):
        writer.write_table(model=f"x.{table}", table=table, columns=["id"], rows=[{"id": i} for i in range(3)])
    assert events == []  # none yet: they go together
    manifest = writer.finish()
    events.append(("manifest", manifest.name))
    assert sorted(events[:3]) == [("fsync", "a.jsonl"), ("fsync", "b.jsonl"), ("fsync", "c.jsonl")]
    assert events[3] == ("manifest", MANIFEST_NAME)
    assert (tmp_path / "b" / "b.jsonl").read_bytes().count(b"\n") == 3
