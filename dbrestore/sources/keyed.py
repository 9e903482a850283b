"""One JSON object keyed by table: ``{"metadata": {...}, "shop_order": [...], ...}``.

Keys may come in any order. The file is never loaded whole: one pass of parser events lists the
tables (and reads ``metadata``), then each table's array is streamed on its own with ijson.
"""

from __future__ import annotations

import functools

import ijson

from dbrestore.exceptions import BackupFormatError, first_line
from dbrestore.files.storage import Location
from dbrestore.sources.base import Backup, TableData
from dbrestore.sources.bounds import PARSER_BUFFER
from dbrestore.sources.readers import is_json_lines_name, iter_json_array, open_binary

METADATA_KEY = "metadata"


def is_keyed_object(path: Location, first: bytes) -> bool:
    return first == b"{" and not is_json_lines_name(path)


def _scan(path: Location) -> tuple[list[str], dict]:
    """The top-level keys whose values are arrays, and the metadata object."""
    tables: list[str] = []
    seen: set[str] = set()
    metadata: dict = {}
    with open_binary(path) as stream:
        try:
            events = ijson.parse(stream, buf_size=PARSER_BUFFER)
            key = None
            for prefix, event, value in events:
                stream.mark()
                if prefix == "" and event == "map_key":
                    key = value
                    seen.add(value)
                elif key is not None and prefix == key and event == "start_array" and key != METADATA_KEY:
                    tables.append(key)
        except (ijson.JSONError, UnicodeDecodeError) as exc:
            raise BackupFormatError(f"invalid or truncated JSON: {first_line(exc)}", path=path) from exc
    if METADATA_KEY in seen:
        with open_binary(path) as stream:
            try:
                found = next(ijson.items(stream, METADATA_KEY, buf_size=PARSER_BUFFER), None)
            except (ijson.JSONError, UnicodeDecodeError) as exc:
                raise BackupFormatError(f"invalid metadata: {first_line(exc)}", path=path) from exc
            if isinstance(found, dict):
                metadata = found
    return tables, metadata


def open_keyed_object(path: Location) -> Backup:
    tables, metadata = _scan(path)
    if not tables:
        raise BackupFormatError("a JSON object with no table arrays in it", path=path)
    return Backup(
        path=path,
        format="json-object",
        tables=[
            TableData(key=key, origin=path, open_rows=functools.partial(iter_json_array, path, f"{key}.item"))
            for key in tables
        ],
        metadata=metadata,
    )
