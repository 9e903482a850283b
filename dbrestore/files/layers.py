"""The layers around a data file's bytes, told by its suffixes: compression (``.gz``, ``.bz2``,
``.xz``, ``.lzma``, ``.zst``) inside, GnuPG encryption (``.gpg``) outside, e.g. ``shop_order.jsonl.zst.gpg``.

Reading peels them as a stream (decrypt, then decompress); writing adds them the same way.
The raw bytes come from a local file or a stored object (:class:`dbrestore.files.storage.StoragePath`),
both opened with ``path.open("rb")``.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
from collections.abc import Callable
from pathlib import PurePath
from typing import IO, Any

from dbrestore.exceptions import MissingExtraError
from dbrestore.files import gpg as crypto
from dbrestore.files.gpg import Sink

READ_BUFFER = 1024 * 1024
_ZSTD_READ = 128 * 1024  # compressed bytes per step: the output of one step stays a few MB
COMPRESSIONS = {"gzip": ".gz", "zstd": ".zst"}  # what create_backup --compress writes


def _zstandard() -> Any:
    """The zstandard module (the ``zstd`` extra), or a one-line error saying how to get it."""
    try:
        import zstandard
    except ImportError:
        raise MissingExtraError("zstd compression (.zst)", "zstd", "the zstandard package") from None
    return zstandard


class _ZstdReader(io.RawIOBase):
    """Decompresses a zstd stream frame by frame. zstandard's ``stream_reader`` ends quietly on a
    truncated frame; this raises EOFError instead, so a cut file never passes as a short table."""

    def __init__(self, raw: io.RawIOBase):
        zstandard = _zstandard()
        self._zstd = zstandard
        self._raw = raw
        self._frame = zstandard.ZstdDecompressor().decompressobj()
        self._pending = memoryview(b"")
        self._started = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            chunk = self._raw.read(_ZSTD_READ)
            if not chunk:
                if self._started and not self._frame.eof:
                    raise EOFError("compressed file ended before the end-of-stream marker was reached")
                return 0
            self._started = True
            self._pending = memoryview(self._decompress(chunk))
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count

    def _decompress(self, chunk: bytes) -> bytes:
        out = []
        try:
            while chunk:
                if self._frame.eof:  # the next frame of a multi-frame file
                    self._frame = self._zstd.ZstdDecompressor().decompressobj()
                out.append(self._frame.decompress(chunk))
                chunk = self._frame.unused_data if self._frame.eof else b""
        except self._zstd.ZstdError as exc:
            raise OSError(f"invalid zstd data: {exc}") from exc
        return b"".join(out)

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
            super().close()


def _zstd_reader(raw: io.RawIOBase) -> _ZstdReader:
    return _ZstdReader(raw)


def _lzma_reader(raw: io.RawIOBase) -> lzma.LZMAFile:
    return lzma.LZMAFile(raw, "rb")  # type: ignore[arg-type]  # typeshed asks IO[bytes]; any object with read() does


#: Suffix -> the decompressor over a raw stream of compressed bytes (a :class:`_CountingReader`).
_DECOMPRESSORS: dict[str, Callable[[io.RawIOBase], io.RawIOBase | io.BufferedIOBase]] = {
    ".gz": lambda raw: gzip.GzipFile(fileobj=raw, mode="rb"),
    ".bz2": lambda raw: bz2.BZ2File(raw, "rb"),
    ".xz": _lzma_reader,
    ".lzma": _lzma_reader,  # the legacy .lzma format, as loaddata reads it
    ".zst": _zstd_reader,
}
COMPRESSION_SUFFIXES = tuple(_DECOMPRESSORS)


def _name(path: Any) -> str:
    return path.name if hasattr(path, "name") else PurePath(str(path)).name


def is_encrypted(path: Any) -> bool:
    return _name(path).lower().endswith(crypto.SUFFIX)


def compression_suffix(path: Any) -> str | None:
    """``.gz`` for ``t.jsonl.gz`` and ``t.jsonl.gz.gpg``; None when not compressed."""
    name = _name(path)
    if is_encrypted(path):
        name = name[: -len(crypto.SUFFIX)]
    suffix = PurePath(name).suffix
    return suffix if suffix in _DECOMPRESSORS else None


def content_name(path: Any) -> str:
    """The name without its layer suffixes: ``t.jsonl.zst.gpg`` -> ``t.jsonl``."""
    name = _name(path)
    if is_encrypted(path):
        name = name[: -len(crypto.SUFFIX)]
    suffix = PurePath(name).suffix
    return name[: -len(suffix)] if suffix in _DECOMPRESSORS else name


class _CountingReader(io.RawIOBase):
    """The compressed bytes under a decompressor, counted: ``tell()`` is how many were read,
    whatever they came from (a pipe from gpg, a stored object), for the inflation bound."""

    def __init__(self, raw: IO[bytes]):
        self._raw = raw
        self._count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        buffer[: len(data)] = data
        self._count += len(data)
        return len(data)

    def tell(self) -> int:
        return self._count

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
            super().close()


def open_layers(path: Any) -> tuple[IO[bytes], io.RawIOBase | None]:
    """The plaintext, decompressed bytes of a data file as a buffered stream, and the compressed
    stream under its decompressor (None when not compressed), whose ``tell()`` counts its bytes."""
    stream: IO[bytes] = path.open("rb", buffering=READ_BUFFER)
    compressed: _CountingReader | None = None
    try:
        if is_encrypted(path):
            stream = crypto.decrypting(stream, label=path)
        suffix = compression_suffix(path)
        if suffix is not None:
            compressed = _CountingReader(stream)
            stream = io.BufferedReader(_DECOMPRESSORS[suffix](compressed), buffer_size=READ_BUFFER)
    except BaseException:
        stream.close()
        raise
    return stream, compressed


class _ZstdSink(io.RawIOBase):
    """zstandard's stream writer, closed without closing the stream under it."""

    def __init__(self, sink: Sink, level: int):
        zstandard = _zstandard()
        self._writer = zstandard.ZstdCompressor(level=level).stream_writer(sink, closefd=False)

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        return self._writer.write(data)

    def close(self) -> None:
        if not self.closed:
            self._writer.close()
            super().close()


def compressing(sink: Sink, compression: str | None) -> Sink:
    """A writer that compresses into ``sink`` (deterministic bytes: gzip without name or mtime)."""
    if compression == "gzip":
        return gzip.GzipFile(filename="", mode="wb", fileobj=sink, mtime=0, compresslevel=6)
    if compression == "zstd":
        return _ZstdSink(sink, level=3)
    return sink


__all__ = ["open_layers", "compressing", "compression_suffix", "content_name", "is_encrypted", "COMPRESSIONS"]
