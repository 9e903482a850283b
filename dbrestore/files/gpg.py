"""GnuPG encryption of backup data files, through the ``gpg`` binary (as django-dbbackup does).

Both directions stream through a gpg subprocess, so no plaintext is ever written to disk: the
writer pipes the (compressed) bytes into ``gpg --encrypt`` and copies its output to the backup
file as it comes; the reader pipes the stored bytes into ``gpg --decrypt`` and hands its output
to the readers. gpg's exit status is checked when its output ends, before the end of the stream
is reported: a truncated or tampered file raises instead of passing as a short table (gpg
writes plaintext before it has seen the integrity check at the end).

Keys come from the user's keyring, or the one ``GNUPGHOME`` names.
"""

from __future__ import annotations

import io
import subprocess
import tempfile
import threading
from collections.abc import Iterable
from typing import IO, Any, Protocol

from dbrestore import conf
from dbrestore.conf import split_commas
from dbrestore.exceptions import EncryptionError

SUFFIX = ".gpg"
_CHUNK = 1024 * 1024


def gpg_command(*args: str) -> list[str]:
    return [conf.get("GPG_BINARY"), "--batch", "--no-tty", "--quiet", *args]


def _start(args: list[str], label: object, stdin: int = subprocess.PIPE) -> tuple[subprocess.Popen[bytes], IO[bytes]]:
    stderr = tempfile.TemporaryFile()  # gpg's messages only, never data
    try:
        process = subprocess.Popen(args, stdin=stdin, stdout=subprocess.PIPE, stderr=stderr)
    except OSError as exc:
        stderr.close()
        raise EncryptionError(
            f"{label}: cannot run gpg ({args[0]!r}: {exc.strerror or exc}); "
            "install GnuPG or set DBRESTORE['GPG_BINARY']"
        ) from exc
    return process, stderr


def _stderr_line(stderr: IO[bytes]) -> str:
    stderr.seek(0)
    lines = [line.strip() for line in stderr.read().decode("utf-8", "replace").splitlines() if line.strip()]
    # gpg says what it tried first and why it failed last; the last "gpg:" line is the reason.
    reasons = [line for line in lines if line.startswith("gpg:")] or lines
    return reasons[-1] if reasons else "no message"


def recipients_from(options: Iterable[str] | None) -> list[str]:
    """``--encrypt`` values, else ``DBRESTORE["GPG_RECIPIENTS"]``."""
    chosen = split_commas(options or [])
    return chosen or list(conf.get("GPG_RECIPIENTS") or [])


def check_recipients(recipients: list[str]) -> None:
    """Fail before anything is written when a recipient has no usable public key."""
    for recipient in recipients:
        args = gpg_command("--list-keys", "--with-colons", "--", recipient)
        process, stderr = _start(args, f"recipient {recipient!r}", stdin=subprocess.DEVNULL)
        output, _ = process.communicate()
        with stderr:
            if process.returncode != 0 or b"\npub:" not in b"\n" + output:
                raise EncryptionError(
                    f"no public key for GPG recipient {recipient!r} in the keyring "
                    f"({_stderr_line(stderr)}); import it or check GNUPGHOME"
                )


class Sink(Protocol):
    """A writable binary stream: a file, a storage writer, a compressor, gpg."""

    def write(self, data: bytes, /) -> int: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class _GpgPipe(io.RawIOBase):
    """A stream through a gpg process, with a thread pumping its other end."""

    _process: subprocess.Popen[bytes]
    _pump: threading.Thread
    _stderr: IO[bytes]
    _error: BaseException | None
    _label: object

    @property
    def _stdin(self) -> IO[bytes]:
        stdin = self._process.stdin
        assert stdin is not None  # started with stdin=PIPE
        return stdin

    @property
    def _stdout(self) -> io.BufferedReader:
        stdout = self._process.stdout
        assert isinstance(stdout, io.BufferedReader)  # stdout=PIPE, buffered (Popen's default bufsize)
        return stdout

    def _wait_for_gpg(self, doing: str) -> None:
        """Wait for the pump and gpg; raise the pump's error, or gpg's reason when it failed."""
        self._pump.join()
        self._process.wait()
        if self._error is not None:
            raise self._error
        if self._process.returncode != 0:
            raise EncryptionError(f"{self._label}: gpg could not {doing}: {_stderr_line(self._stderr)}")


class EncryptingWriter(_GpgPipe):
    """Writable: bytes in, ``gpg --encrypt`` for ``recipients``, ciphertext out to ``sink``."""

    def __init__(self, sink: Sink, recipients: list[str], *, label: object):
        self._sink, self._label = sink, label
        args = ["--compress-algo", "none", "--encrypt", "--output", "-"]
        if conf.get("GPG_ALWAYS_TRUST"):
            args = ["--trust-model", "always", *args]
        for recipient in recipients:
            args[-3:-3] = ["--recipient", recipient]
        self._process, self._stderr = _start(gpg_command(*args), label)
        self._error: BaseException | None = None
        self._pump = threading.Thread(target=self._copy_out, name="dbrestore-gpg-out", daemon=True)
        self._pump.start()

    def _copy_out(self) -> None:
        try:
            while chunk := self._stdout.read(_CHUNK):
                self._sink.write(chunk)
        except BaseException as exc:  # handed to the writing thread in close()
            self._error = exc
            self._process.kill()

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        try:
            self._stdin.write(data)
        except (BrokenPipeError, ValueError):
            self._finish()  # raises gpg's reason
            raise EncryptionError(f"{self._label}: gpg stopped reading") from None
        return len(data)

    def _finish(self) -> None:
        try:
            self._stdin.close()
        except BrokenPipeError:
            pass
        self._wait_for_gpg("encrypt")

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._finish()
        finally:
            self._stderr.close()
            super().close()


class DecryptingReader(_GpgPipe):
    """Readable: ``source``'s ciphertext through ``gpg --decrypt``; the plaintext is read from
    gpg's stdout and never stored. The end of the stream is only reported once gpg has exited 0."""

    def __init__(self, source: IO[bytes], *, label: object):
        self._source, self._label = source, label
        self._process, self._stderr = _start(gpg_command("--decrypt"), label)
        self._error: BaseException | None = None
        self._finished = False
        self._pump = threading.Thread(target=self._copy_in, name="dbrestore-gpg-in", daemon=True)
        self._pump.start()

    def _copy_in(self) -> None:
        stdin = self._stdin
        try:
            while chunk := self._source.read(_CHUNK):
                stdin.write(chunk)
        except (BrokenPipeError, ValueError):
            pass  # gpg stopped reading: its exit status says why
        except BaseException as exc:  # a storage read failed: raised by the reading thread
            self._error = exc
            self._process.kill()
        finally:
            try:
                stdin.close()
            except BrokenPipeError:
                pass

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._finished:
            return 0
        count = self._stdout.readinto(buffer)
        if not count:
            self._end()
        return count or 0

    def _end(self) -> None:
        self._finished = True
        self._wait_for_gpg("decrypt")

    def close(self) -> None:
        if self.closed:
            return
        try:
            if self._process.poll() is None:  # closed before the end (format detection): stop gpg
                self._process.kill()
            self._process.wait()
            self._pump.join()
            self._stdout.close()
        finally:
            self._stderr.close()
            self._source.close()
            super().close()


def decrypting(source: IO[bytes], label: object) -> IO[bytes]:
    return io.BufferedReader(DecryptingReader(source, label=label), buffer_size=_CHUNK)


__all__ = ["SUFFIX", "EncryptingWriter", "DecryptingReader", "decrypting", "check_recipients", "recipients_from"]
