"""docs/architecture.md stays true under grep: every module it names exists, and its table of
packages names every module of the app."""

from __future__ import annotations

import re

from tests.support.paths import ROOT

APP = ROOT / "dbrestore"
PAGE = (ROOT / "docs" / "architecture.md").read_text()


def _modules_in_table() -> set[str]:
    named = set()
    for line in PAGE.splitlines():
        cells = [cell.strip() for cell in line.split("|")]
        if len(cells) < 5 or not cells[1].startswith("`") and cells[1] != "top level":
            continue
        package = "" if cells[1] == "top level" else cells[1].strip("`").rstrip("/")
        for name in re.findall(r"`([a-z0-9_]+\.py)`", cells[3]):
            named.add(f"{package}/{name}" if package else name)
    return named


def _modules_on_disk() -> set[str]:
    found = set()
    for path in APP.rglob("*.py"):
        relative = path.relative_to(APP).as_posix()
        if relative.startswith(("migrations/", "management/commands/")) or relative == "management/__init__.py":
            continue
        if path.name == "__init__.py" and relative not in ("__init__.py", "admin/__init__.py"):
            continue  # a package's docstring only
        found.add(relative)
    return found


def test_the_table_names_every_module_and_only_modules_that_exist():
    named, on_disk = _modules_in_table(), _modules_on_disk()
    assert not named - on_disk, f"named on the page but gone: {sorted(named - on_disk)}"
    assert not on_disk - named, f"modules the page does not name: {sorted(on_disk - named)}"


def test_every_path_the_page_mentions_exists():
    for path in set(re.findall(r"`([a-z_]+/[a-z_/]*[a-z0-9_]+\.py)`", PAGE)):
        assert (APP / path).exists() or (ROOT / path).exists(), path
