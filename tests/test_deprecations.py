"""Old import paths keep working for one release, with a DeprecationWarning naming the new one."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.parametrize(
    ("module", "name", "new_home"),
    [
        ("dbrestore.engine", "restore", "dbrestore.service"),
        ("dbrestore.loader", "TableLoader", "dbrestore.load.table"),
        ("dbrestore.copyload", "CopyTableLoader", "dbrestore.load.copy"),
    ],
)
def test_old_import_paths_warn_and_still_work(module, name, new_home, monkeypatch):
    monkeypatch.delitem(sys.modules, module, raising=False)
    with pytest.warns(DeprecationWarning, match=f"{module} is deprecated: import from .*{new_home}"):
        old = importlib.import_module(module)
    assert getattr(old, name) is getattr(importlib.import_module(new_home), name)


@pytest.mark.parametrize(
    ("removed", "replacement"), [("--force", "--noinput"), ("--no-indexes-after-load", "--keep-indexes")]
)
def test_removed_options_say_what_to_use_instead(removed, replacement, tmp_path):
    done = subprocess.run(
        [sys.executable, "manage.py", "restore_backup", str(tmp_path), removed],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2  # bad command-line usage
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .endswith(f"error: {removed} was removed: use {replacement} (see CHANGELOG.md)")
    )
