"""Fixtures of the storage and encryption tests: a real S3 endpoint, a throwaway GnuPG keyring."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def moto_server():
    """A real moto S3 server process on 127.0.0.1 (a free port), for the whole session; its
    endpoint URL. Fails (never skips) when it cannot start and CI is set."""
    import socket
    import time
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    binary = Path(sys.executable).parent / "moto_server"
    url = f"http://127.0.0.1:{port}"
    try:
        process = subprocess.Popen(
            [str(binary), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
    except OSError as exc:
        process, problem = None, f"cannot start {binary}: {exc}"
    else:
        problem = f"moto_server did not answer on {url} within 30 s"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1)
                problem = None
                break
            except OSError:
                time.sleep(0.2)
    if problem:
        if process is not None:
            process.kill()
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)
    yield url
    process.terminate()
    process.wait(timeout=10)


GPG_RECIPIENT = "dbrestore-test@example.invalid"


@pytest.fixture(scope="session")
def gpg_home(tmp_path_factory) -> Iterator[Path]:
    """A throwaway GnuPG keyring holding one key (``GPG_RECIPIENT``) without passphrase."""
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    subprocess.run(
        ["gpg", "--batch", "--passphrase", "", "--quick-gen-key", GPG_RECIPIENT, "default", "default", "never"],
        env={**os.environ, "GNUPGHOME": str(home)},
        check=True,
        capture_output=True,
    )
    yield home
    # gpg starts an agent per keyring; it would outlive the suite.
    subprocess.run(
        ["gpgconf", "--kill", "gpg-agent"], env={**os.environ, "GNUPGHOME": str(home)}, check=False, capture_output=True
    )


@pytest.fixture
def keyring(gpg_home, monkeypatch):
    """gpg (and so dbrestore) uses the throwaway keyring."""
    monkeypatch.setenv("GNUPGHOME", str(gpg_home))
    return gpg_home


@pytest.fixture
def gpg_recipient(keyring) -> str:
    """The user id of the throwaway keyring's one key, with that keyring in use."""
    return GPG_RECIPIENT
