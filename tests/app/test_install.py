"""The package as a new user gets it: build the wheel, install it into a fresh virtualenv, make a
``django-admin startproject`` project, add exactly the README's "Use it in your project"
snippets, and run migrate, check, create_backup and restore_backup there."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest
from django.db import connection

from tests.support.paths import ROOT

pytestmark = pytest.mark.django_db


def readme_snippets() -> tuple[str, str]:
    """The settings.py and urls.py blocks of the README's "Use it in your project"."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Use it in your project", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 2, "the section has one settings.py block and one urls.py block"
    return blocks[0], blocks[1]


def run(*args, cwd: Path, env: dict, timeout: int = 120) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Built from a copy of the sources: setuptools writes ``build/`` and ``*.egg-info`` beside
    them, which would collide with the other database's pass running at the same time."""
    out = tmp_path_factory.mktemp("wheel")
    sources = tmp_path_factory.mktemp("sources") / "dbrestore"
    local = shutil.ignore_patterns(".*", "build", "dist", "site", "backups", "test-output", "*.egg-info", "*.sqlite3")

    def left_out(folder: str, names: list[str]) -> set[str]:  # the checkout's own, at its top only
        return {"__pycache__", *(local(folder, names) if Path(folder) == ROOT else ())} & set(names)

    shutil.copytree(ROOT, sources, ignore=left_out)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run(sys.executable, "-m", "pip", "wheel", sources, "--no-deps", "-q", "-w", out, cwd=out, env=env, timeout=300)
    (path,) = out.glob("dbrestore-*.whl")
    return path


def test_the_wheel_holds_only_the_app(wheel):
    import dbrestore

    assert wheel.name.startswith(f"dbrestore-{dbrestore.__version__}-")
    checked = subprocess.run(
        [sys.executable, str(ROOT / ".ci" / "check_wheel.py"), str(wheel)], capture_output=True, text=True
    )  # what `make check-dist` checks
    assert checked.returncode == 0, checked.stderr
    metadata = zipfile.ZipFile(wheel).read(f"dbrestore-{dbrestore.__version__}.dist-info/METADATA").decode()
    assert "Requires-Dist: Django" in metadata and "Framework :: Django :: 5.2" in metadata
    assert "License-Expression: MIT" in metadata and "Requires-Python: >=3.11" in metadata


def test_installed_wheel_in_a_startproject(wheel, tmp_path):
    if connection.vendor != "sqlite":
        pytest.skip("runs once, in the SQLite pass (the new project has its own SQLite database)")
    # A fresh virtualenv that sees this project's dependencies (not the project itself) through a
    # .pth file, so that installing takes seconds and needs no network.
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site) / "project-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE", "DATABASE_URL")}
    run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        python,
        "install",
        "--no-index",
        "--no-deps",
        "-q",
        wheel,
        cwd=tmp_path,
        env=env,
    )

    project = tmp_path / "mysite"
    project.mkdir()
    run(python, "-m", "django", "startproject", "mysite", ".", cwd=project, env=env)
    settings_block, urls_block = readme_snippets()
    with open(project / "mysite" / "settings.py", "a") as settings:
        settings.write("\n" + settings_block)
    with open(project / "mysite" / "urls.py", "a") as urls:
        urls.write("\n" + urls_block)

    where = run(python, "-c", "import dbrestore; print(dbrestore.__file__)", cwd=project, env=env).stdout.strip()
    assert where.startswith(site) and not where.startswith(str(ROOT))  # the wheel's copy, not the checkout
    manage = [python, "manage.py"]
    run(*manage, "migrate", "-v", "0", cwd=project, env=env)
    check = run(*manage, "check", cwd=project, env=env)
    assert "System check identified no issues (0 silenced)." in check.stdout
    run(
        python,
        "-c",
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'mysite.settings'; django.setup(); "
        "from django.contrib.auth.models import User; User.objects.create_superuser('admin', '', 'pw')",
        cwd=project,
        env=env,
    )
    backup = run(*manage, "create_backup", cwd=project, env=env)
    assert "Backed up" in backup.stdout and str(project / "backups") in backup.stdout
    restored = run(*manage, "restore_backup", "--latest", "--noinput", cwd=project, env=env)
    assert "succeeded" in restored.stdout and "auth.User" in restored.stdout
    listed = run(*manage, "restore_backup", "--list", cwd=project, env=env).stdout
    assert len(listed.splitlines()) == 2  # the backup, not the safety backup the restore took
    assert "safety/" in run(*manage, "restore_backup", "--list", "--all", cwd=project, env=env).stdout
    dashboard = run(
        *manage,
        "shell",
        "-c",
        "from django.urls import reverse; print(reverse('django_rq:home'))",
        cwd=project,
        env=env,
    )
    assert dashboard.stdout.strip().endswith("/django-rq/")
