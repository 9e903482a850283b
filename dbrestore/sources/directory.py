"""The directory formats: dbrestore's own (manifest.json + data files) and a plain folder of
``<table>.json`` / ``<table>.jsonl`` files (the old tool's ``backups/<timestamp>/users.json``)."""

from __future__ import annotations

import functools
from pathlib import Path

import orjson

from ..exceptions import BackupFormatError
from .base import Backup, TableData
from .readers import data_suffix, iter_rows

MANIFEST_NAME = "manifest.json"
FORMAT_ID = "dbrestore/1"
DATA_SUFFIXES = (".json", ".jsonl", ".ndjson")


def is_data_file(path: Path) -> bool:
    return path.is_file() and path.name != MANIFEST_NAME and data_suffix(path) in DATA_SUFFIXES


def table_key(path: Path) -> str:
    """``users.json.gz`` -> ``users``."""
    name = path.name
    while Path(name).suffix:
        name = Path(name).stem
    return name


def read_manifest(path: Path) -> dict:
    try:
        manifest = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise BackupFormatError(f"invalid JSON in manifest: {exc}", path=path) from exc
    except OSError as exc:
        raise BackupFormatError(f"cannot read manifest: {exc.strerror or exc}", path=path) from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("tables"), list):
        raise BackupFormatError('manifest must be an object with a "tables" list', path=path)
    fmt = manifest.get("format")
    if fmt != FORMAT_ID:
        raise BackupFormatError(f"unsupported manifest format {fmt!r} (expected {FORMAT_ID!r})", path=path)
    return manifest


def open_manifest_directory(directory: Path) -> Backup:
    manifest_path = directory / MANIFEST_NAME
    manifest = read_manifest(manifest_path)
    tables = []
    for index, entry in enumerate(manifest["tables"], start=1):
        if not isinstance(entry, dict) or not entry.get("file"):
            raise BackupFormatError(f'table entry {index} has no "file"', path=manifest_path)
        data_path = directory / entry["file"]
        if data_path.resolve().parent != directory.resolve():
            raise BackupFormatError(f"table entry {index}: file {entry['file']!r} is outside the backup", path=manifest_path)
        if not data_path.is_file():
            raise BackupFormatError(f"data file {entry['file']!r} listed in the manifest is missing", path=manifest_path)
        tables.append(
            TableData(
                key=entry.get("table") or table_key(data_path),
                origin=data_path,
                open_rows=functools.partial(iter_rows, data_path),
                model_label=entry.get("model"),
                expected_rows=entry.get("rows"),
                expected_sha256=entry.get("sha256"),
                columns=entry.get("columns"),
            )
        )
    metadata = {key: value for key, value in manifest.items() if key != "tables"}
    return Backup(path=directory, format="dbrestore", tables=tables, metadata=metadata)


def open_plain_directory(directory: Path) -> Backup:
    files = sorted(path for path in directory.iterdir() if is_data_file(path))
    if not files:
        raise BackupFormatError("no manifest.json and no .json/.jsonl data files", path=directory)
    tables = [TableData(key=table_key(path), origin=path, open_rows=functools.partial(iter_rows, path)) for path in files]
    return Backup(path=directory, format="json-directory", tables=tables)


def open_directory(directory: Path) -> Backup:
    if (directory / MANIFEST_NAME).exists():
        return open_manifest_directory(directory)
    return open_plain_directory(directory)
