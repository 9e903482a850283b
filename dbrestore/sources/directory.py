"""The directory formats: dbrestore's own (manifest.json + data files) and a plain folder of
``<table>.json`` / ``<table>.jsonl`` files (the old tool's ``backups/<timestamp>/users.json``)."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import orjson

from dbrestore import conf
from dbrestore.exceptions import BackupFormatError, InputTooLargeError
from dbrestore.files.storage import Location, StoragePath
from dbrestore.sources.base import Backup, TableData
from dbrestore.sources.bounds import require_regular_file
from dbrestore.sources.readers import (
    JSON_LINES_SUFFIXES,
    JsonLinesBlocks,
    data_suffix,
    first_significant_byte,
    is_json_lines_name,
    iter_rows,
)

MANIFEST_NAME = "manifest.json"
FORMAT_ID = "dbrestore/1"
DATA_SUFFIXES = (".json", *JSON_LINES_SUFFIXES)


def is_data_file(path: Location) -> bool:
    return path.is_file() and path.name != MANIFEST_NAME and data_suffix(path) in DATA_SUFFIXES


def table_key(path: Location) -> str:
    """``users.json.gz`` -> ``users``."""
    name = path.name
    while Path(name).suffix:
        name = Path(name).stem
    return name


def file_table(key: str, path: Location, **known: Any) -> TableData:
    """One table's rows in a data file of its own (a JSON array, or JSON Lines, which can also
    be read in blocks)."""
    blocks = JsonLinesBlocks(path) if is_json_lines_name(path) else None
    return TableData(key=key, origin=path, open_rows=functools.partial(iter_rows, path), blocks=blocks, **known)


def read_manifest(path: Location) -> dict:
    """The manifest, checked: an object of the dbrestore format, every field of the JSON type it must have."""
    require_regular_file(path)
    limit = conf.get("MAX_ROW_BYTES")
    try:
        size = path.size() if isinstance(path, StoragePath) else path.stat().st_size
        if limit and size > limit:
            raise InputTooLargeError(f"manifest larger than {limit} bytes (DBRESTORE['MAX_ROW_BYTES'])", path=path)
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
    migrations = manifest.get("migrations")
    if migrations is not None and not (
        isinstance(migrations, dict)
        and all(isinstance(names, list) and all(isinstance(n, str) for n in names) for names in migrations.values())
    ):
        raise BackupFormatError('"migrations" must be an object of lists of migration names', path=path)
    for index, entry in enumerate(manifest["tables"], start=1):
        _check_entry(entry, index, path)
    return manifest


def _is_type(value: Any, expected: type | tuple[type, ...]) -> bool:
    return isinstance(value, expected) and not isinstance(value, bool)


def _check_entry(entry: Any, index: int, path: Location) -> None:
    """One ``"tables"`` entry: ``file`` a name, the rest (when given) of their JSON types."""

    def wrong(message: str) -> BackupFormatError:
        return BackupFormatError(f"table entry {index}: {message}", path=path)

    if not isinstance(entry, dict):
        raise wrong(f"must be an object, not {_json_type(entry)}")
    if not entry.get("file"):
        raise BackupFormatError(f'table entry {index} has no "file"', path=path)
    if not isinstance(entry["file"], str):
        raise wrong(f'"file" must be a string, not {_json_type(entry["file"])}')
    for key in ("table", "model"):
        if entry.get(key) is not None and not (isinstance(entry[key], str) and entry[key]):
            raise wrong(f'"{key}" must be a non-empty string, not {_json_type(entry[key])}')
    rows = entry.get("rows")
    if rows is not None and not (_is_type(rows, int) and rows >= 0):
        raise wrong(f'"rows" must be a whole number of 0 or more, not {_json_type(rows)} {_short(rows)}')
    sha256 = entry.get("sha256")
    if sha256 is not None and not (isinstance(sha256, str) and re.fullmatch(r"[0-9a-f]{64}", sha256)):
        raise wrong(f'"sha256" must be 64 lowercase hex digits, not {_json_type(sha256)} {_short(sha256)}')
    columns = entry.get("columns")
    if columns is not None and not (isinstance(columns, list) and all(isinstance(c, str) for c in columns)):
        raise wrong('"columns" must be a list of column names')


def _json_type(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_table_file(path: Location) -> None:
    """A data file in a directory holds one table's rows (a JSON array, or JSON Lines of
    objects): a keyed object, a dumpdata fixture or a rejects file there is an error, not a table."""
    from dbrestore.sources.dumpdata import is_dumpdata
    from dbrestore.sources.rejects import is_rejects_file

    require_regular_file(path)
    first = first_significant_byte(path)
    if not first:
        return
    if data_suffix(path) == ".json" and first != b"[":
        raise BackupFormatError(
            "not a table's rows (a JSON array of objects): a JSON object (a keyed backup or a fixture?); "
            "restore that file on its own",
            path=path,
        )
    if is_dumpdata(path, first):
        raise BackupFormatError("a dumpdata fixture, not a table's rows: restore that file on its own", path=path)
    if is_rejects_file(path, first):
        raise BackupFormatError("a rejects file, not a table's rows: restore that file on its own", path=path)


def followed_link(path: Location, directory: Location) -> str | None:
    """The rule for symbolic links in a backup directory, plain or with a manifest: a data file
    that is a link (or under one) is followed when what it points at is a file of the directory
    itself, and then named in the report's warnings; one pointing anywhere else is refused.
    Returns that warning (None: not a link)."""
    if isinstance(path, StoragePath) or path.resolve() == directory.resolve() / path.name:
        return None
    target = path.resolve()
    if target.parent != directory.resolve():
        raise BackupFormatError(
            f"a link to {target}, outside the backup directory: refused (copy the file in)", path=path
        )
    return f"{path}: a link to {target.name} in the backup directory, followed"


def _data_file_problem(data_path: Location, name: str, directory: Location, manifest_path: Location) -> str | None:
    if data_path.resolve().parent != directory.resolve():
        return f"file {name!r} is outside the backup"
    if data_path.resolve() == manifest_path.resolve():
        return "the manifest lists itself as a data file"
    if not data_path.exists():
        return f"data file {name!r} listed in the manifest is missing"
    if data_suffix(data_path) not in DATA_SUFFIXES:
        return f"{name!r} is not a .json or .jsonl data file"
    return None


def open_manifest_directory(directory: Location) -> Backup:
    manifest_path = directory / MANIFEST_NAME
    manifest = read_manifest(manifest_path)
    tables, notes = [], []
    for index, entry in enumerate(manifest["tables"], start=1):
        data_path = directory / entry["file"]
        problem = _data_file_problem(data_path, entry["file"], directory, manifest_path)
        if problem:
            raise BackupFormatError(f"table entry {index}: {problem}", path=manifest_path)
        check_table_file(data_path)
        if (note := followed_link(data_path, directory)) is not None:
            notes.append(note)
        tables.append(
            file_table(
                entry.get("table") or table_key(data_path),
                data_path,
                model_label=entry.get("model"),
                expected_rows=entry.get("rows"),
                expected_sha256=entry.get("sha256"),
                columns=entry.get("columns"),
            )
        )
    metadata = {key: value for key, value in manifest.items() if key != "tables"}
    return Backup(path=directory, format="dbrestore", tables=tables, metadata=metadata, notes=notes)


def open_plain_directory(directory: Location) -> Backup:
    candidates = sorted(
        path for path in directory.iterdir() if path.name != MANIFEST_NAME and data_suffix(path) in DATA_SUFFIXES
    )
    files, notes = [], []
    for path in candidates:
        if path.is_dir():
            continue
        if (note := followed_link(path, directory)) is not None:
            notes.append(note)
        check_table_file(path)
        files.append(path)
    if not files:
        raise BackupFormatError("no manifest.json and no .json/.jsonl data files", path=directory)
    tables = [file_table(table_key(path), path) for path in files]
    return Backup(path=directory, format="json-directory", tables=tables, notes=notes)


def open_directory(directory: Location) -> Backup:
    if (directory / MANIFEST_NAME).exists():
        return open_manifest_directory(directory)
    return open_plain_directory(directory)
