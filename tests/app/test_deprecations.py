"""A public import path that moved keeps working for one release, with a DeprecationWarning naming
the new one; removed options name what to use instead."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.paths import ROOT


def test_the_dashboards_old_import_path_warns_and_still_works():
    import dbrestore.dashboard as old
    from dbrestore.admin import dashboard

    with pytest.warns(DeprecationWarning, match="import it from dbrestore.admin.dashboard"):
        urls = old.rq_dashboard_urls
    assert urls is dashboard.rq_dashboard_urls
    with pytest.raises(AttributeError):
        old.no_such_name  # noqa: B018


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
