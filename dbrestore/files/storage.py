"""Backups kept in a Django storage (``settings.STORAGES``; S3 through django-storages).

A backup in a storage is addressed by a :class:`StoragePath`, written ``storage://ALIAS/KEY``
(the form stored on ``RestoreRun.source``, so an RQ worker opens the same object). It offers the
part of :class:`pathlib.Path` the readers use (``name``, ``suffix``, ``/``, ``exists()``,
``is_file()``, ``is_dir()``, ``iterdir()``, ``read_bytes()``, ``open("rb")``), so every reader
works unchanged on local files and on stored objects.

Reads stream: on S3 the object's body (``get_object()["Body"]``) is read through a 1 MB buffer,
never the whole object into memory or a temporary file (django-storages' ``S3File`` downloads
the whole object first). Writes stream too: S3 objects are written as multipart uploads of
``PART_SIZE`` bytes held in memory, aborted on failure. Faults (a missing object, a denied
request, a dropped connection) become one line naming the object.
"""

from __future__ import annotations

import io
import logging
import os
import posixpath
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal, TypeAlias, overload

from dbrestore.exceptions import BackupNotFoundError, StorageError
from dbrestore.files.backends import configured_alias, describe, get_storage, is_missing, is_s3, storage_faults

logger = logging.getLogger(__name__)

__all__ = [
    "SCHEME",
    "Location",
    "Source",
    "StoragePath",
    "StorageWriter",
    "as_location",
    "configured_alias",
    "get_storage",
    "is_s3",
    "storage_root",
]

SCHEME = "storage://"
READ_BUFFER = 1024 * 1024
PART_SIZE = 8 * 1024 * 1024  # bytes per multipart upload part (S3's minimum is 5 MB)


@dataclass(frozen=True, order=True)  # ordered: a folder's objects are sorted, as Paths are
class StoragePath:
    """An object (or a "folder", a key prefix) in a Django storage; see the module docstring."""

    alias: str
    key: str

    @classmethod
    def parse(cls, text: str) -> StoragePath:
        """``storage://ALIAS/KEY`` -> StoragePath."""
        alias, _, key = text[len(SCHEME) :].partition("/")
        return cls(alias, key.strip("/"))

    def __str__(self) -> str:
        return f"{SCHEME}{self.alias}/{self.key}"

    def __truediv__(self, name: str) -> StoragePath:
        return StoragePath(self.alias, posixpath.join(self.key, name) if self.key else name)

    @property
    def storage(self):
        return get_storage(self.alias)

    @property
    def name(self) -> str:
        return posixpath.basename(self.key)

    @property
    def suffix(self) -> str:
        return posixpath.splitext(self.name)[1]

    @property
    def suffixes(self) -> list[str]:
        name = self.name.lstrip(".")
        return ["." + part for part in name.split(".")[1:]]

    @property
    def stem(self) -> str:
        return self.name[: len(self.name) - len(self.suffix)] if self.suffix else self.name

    @property
    def parent(self) -> StoragePath:
        return StoragePath(self.alias, posixpath.dirname(self.key))

    def with_suffix(self, suffix: str) -> StoragePath:
        return StoragePath(self.alias, posixpath.join(posixpath.dirname(self.key), self.stem + suffix))

    def resolve(self) -> StoragePath:
        key = posixpath.normpath("/" + self.key).lstrip("/")
        return StoragePath(self.alias, "" if key == "." else key)

    def expanduser(self) -> StoragePath:
        return self

    def guarded(self, what: str, function, *args):
        try:
            return function(*args)
        except storage_faults() as exc:
            raise StorageError(f"{self}: cannot {what}: {describe(exc)}") from exc

    def is_file(self) -> bool:
        return bool(self.key) and self.guarded("check", self.storage.exists, self.key)

    def is_dir(self) -> bool:
        dirs, files = self.listdir()
        return bool(dirs or files)

    def exists(self) -> bool:
        return self.is_file() or self.is_dir()

    def listdir(self) -> tuple[list[str], list[str]]:
        return self.guarded("list", self.storage.listdir, self.key)

    def iterdir(self) -> Iterator[StoragePath]:
        dirs, files = self.listdir()
        for name in sorted(dirs) + sorted(files):
            yield self / name

    def size(self) -> int:
        return self.guarded("read the size of", self.storage.size, self.key)

    def read_bytes(self) -> bytes:
        with self.open("rb") as stream:
            return stream.read()

    @overload
    def open(self, mode: Literal["rb"] = "rb", buffering: int = READ_BUFFER) -> IO[bytes]: ...

    @overload
    def open(self, mode: Literal["wb"], buffering: int = READ_BUFFER) -> StorageWriter: ...

    @overload
    def open(self, mode: str, buffering: int = READ_BUFFER) -> IO[bytes] | StorageWriter: ...

    def open(self, mode: str = "rb", buffering: int = READ_BUFFER) -> IO[bytes] | StorageWriter:
        """A streaming reader (``"rb"``) or writer (``"wb"``) of the object."""
        if mode == "rb":
            return open_reader(self, buffering)
        if mode == "wb":
            return open_writer(self)
        raise ValueError(f"unsupported mode {mode!r}")


#: Where a backup is: a local path, or an object (or key prefix) in a storage.
Location: TypeAlias = Path | StoragePath
#: A location as given: a path, ``storage://ALIAS/KEY`` text, a StoragePath.
Source: TypeAlias = str | os.PathLike[str] | StoragePath


def as_location(source: Source) -> Location:
    """A source as given (a path, ``storage://...`` text, a StoragePath) -> Path or StoragePath."""
    if isinstance(source, StoragePath):
        return source
    text = str(source)
    if text.startswith(SCHEME):
        return StoragePath.parse(text)
    return Path(text).expanduser()


class _StreamingBody(io.RawIOBase):
    """A raw, read-only stream over an S3 object's body; faults are OSError naming the object, so
    the readers report them like any unreadable file (and the restore rolls back)."""

    def __init__(self, path: StoragePath, body: Any):
        self._path = path
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            data = self._body.read(len(buffer))
        except storage_faults() as exc:
            raise OSError(f"connection to storage {self._path.alias!r} lost: {describe(exc)}") from exc
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            try:
                self._body.close()
            finally:
                super().close()


def open_reader(path: StoragePath, buffering: int = READ_BUFFER) -> IO[bytes]:
    storage = path.storage
    try:
        if is_s3(storage):
            from storages.utils import clean_name

            name = storage._normalize_name(clean_name(path.key))
            body = storage.bucket.Object(name).get()["Body"]
            return io.BufferedReader(_StreamingBody(path, body), buffer_size=buffering)
        # Other storages: their own file object (FileSystemStorage's streams from disk).
        return io.BufferedReader(_StreamingBody(path, storage.open(path.key, "rb")), buffer_size=buffering)
    except storage_faults() as exc:
        if is_missing(exc):
            raise BackupNotFoundError(f"{path}: no such object in storage {path.alias!r}") from exc
        raise StorageError(f"{path}: cannot read: {describe(exc)}") from exc


class _S3MultipartWriter(io.RawIOBase):
    """Writes an S3 object as a multipart upload, one ``PART_SIZE`` part in memory at a time."""

    def __init__(self, path: StoragePath, storage: Any):
        from storages.utils import clean_name

        self._path = path
        name = storage._normalize_name(clean_name(path.key))
        params = {**storage.get_object_parameters(name), "ContentType": "application/octet-stream"}
        self._object = storage.bucket.Object(name)
        self._upload: Any = None  # boto3's MultipartUpload, once started
        self._params = params
        self._parts: list[dict[str, Any]] = []
        self._buffer = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._buffer += data
        while len(self._buffer) >= PART_SIZE:
            self._send(bytes(self._buffer[:PART_SIZE]))
            del self._buffer[:PART_SIZE]
        return len(data)

    def _send(self, part: bytes) -> None:
        if self._upload is None:
            self._upload = self._object.initiate_multipart_upload(**self._params)
        number = len(self._parts) + 1
        response = self._upload.Part(number).upload(Body=part)
        self._parts.append({"ETag": response["ETag"], "PartNumber": number})

    def close(self) -> None:
        if self.closed:
            return
        try:
            if self._upload is None:  # small: one PUT
                self._object.put(Body=bytes(self._buffer), **self._params)
            else:
                if self._buffer:
                    self._send(bytes(self._buffer))
                self._upload.complete(MultipartUpload={"Parts": self._parts})
        except BaseException:
            self.abort()
            raise
        finally:
            self._buffer = bytearray()
            super().close()

    def abort(self) -> None:
        """Drop the parts sent so far (an S3 upload left open is billed)."""
        if self._upload is not None:
            try:
                self._upload.abort()
            except storage_faults():
                logger.warning("Could not abort the multipart upload of %s", self._path)
            self._upload = None
        self._buffer = bytearray()
        if not self.closed:
            super().close()


class _SpooledStorageWriter(io.RawIOBase):
    """Other storages take a whole file in ``save()``: spool it, then save it on close."""

    def __init__(self, path: StoragePath, storage: Any):
        self._path, self._storage = path, storage
        self._spool = tempfile.SpooledTemporaryFile(max_size=PART_SIZE)

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        return self._spool.write(data)

    def close(self) -> None:
        if self.closed:
            return
        from django.core.files import File

        try:
            self._spool.seek(0)
            if self._storage.exists(self._path.key):
                self._storage.delete(self._path.key)
            self._storage.save(self._path.key, File(self._spool))
        finally:
            self._spool.close()
            super().close()

    def abort(self) -> None:
        self._spool.close()
        if not self.closed:
            super().close()


class StorageWriter(io.BufferedIOBase):
    """The writable stream :meth:`StoragePath.open` returns: faults become :class:`StorageError`
    naming the object, and :meth:`abort` drops a half-written object."""

    def __init__(self, path: StoragePath):
        storage = path.storage
        self._path = path
        self._raw = _S3MultipartWriter(path, storage) if is_s3(storage) else _SpooledStorageWriter(path, storage)

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        try:
            return self._raw.write(data)
        except storage_faults() as exc:
            self.abort()
            raise StorageError(f"{self._path}: cannot write: {describe(exc)}") from exc

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._raw.close()
        except storage_faults() as exc:
            raise StorageError(f"{self._path}: cannot write: {describe(exc)}") from exc
        finally:
            super().close()

    def abort(self) -> None:
        self._raw.abort()
        if not self.closed:
            super().close()


def open_writer(path: StoragePath) -> StorageWriter:
    try:
        return StorageWriter(path)
    except storage_faults() as exc:
        raise StorageError(f"{path}: cannot write: {describe(exc)}") from exc


def storage_root(alias: str) -> StoragePath:
    return StoragePath(alias, "")


__all__ = ["StoragePath", "as_location", "configured_alias", "get_storage", "storage_root", "SCHEME"]
