"""``restore_backup FIXTURE --noinput`` leaves the database ``loaddata FIXTURE`` leaves, on real
apps: each case takes two copies of a target database (``content.TARGETS``), runs loaddata on one
and restore_backup on the other, and compares every row of every model (``snapshot``).

The cases, fixture on target (a new case is one line of ``CASES``):

* targets: ``migrated`` holds only what the migrations made; ``lived-in`` also users, a group,
  memberships in the migrations' groups, notes, projects, object permissions, a category, tags
  and a second page tree, all with pks past 1000 (no pk of the fixtures); ``collide`` the same
  rows made straight after migrate, so they hold the pks the fixtures' objects have, under other
  names (loaddata overwrites them by pk).
* fixtures (``conftest.DUMPS``): ``full`` dumpdata of everything a user would dump, as JSON,
  ``.json.gz`` and JSON Lines; ``natural-foreign.jsonl``; ``natural.json`` with
  ``--natural-foreign --natural-primary`` (objects without pk, matched by natural key);
  ``groups.json`` (``dumpdata auth.group``); ``groups-users.json`` (``dumpdata auth.group
  realapps.user``); ``wagtail-test_empty.json``, the fixture Wagtail ships for its own tests
  (root and welcome pages, a locale, the root collection, pks 1 and 2 as the migrations made).
"""

from __future__ import annotations

import gzip
import io
import json

import pytest
from django.core.management import call_command

from tests.realapps import snapshot

CASES = [
    ("full.json", "migrated"),
    ("full.json", "lived-in"),
    ("full.json", "collide"),
    ("full.json.gz", "lived-in"),
    ("full.jsonl", "lived-in"),
    ("natural-foreign.jsonl", "lived-in"),
    ("natural.json", "migrated"),
    ("natural.json", "lived-in"),
    ("groups.json", "lived-in"),
    ("groups.json", "collide"),
    ("groups-users.json", "lived-in"),
    ("wagtail-test_empty.json", "migrated"),
    ("wagtail-test_empty.json", "lived-in"),
]


def read_objects(path) -> list[dict]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as stream:
        text = stream.read()
    if ".jsonl" in path.name:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return json.loads(text)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize(("fixture", "target"), CASES, ids=[f"{fixture}-on-{target}" for fixture, target in CASES])
def test_restore_leaves_what_loaddata_leaves(corpus, django_db_blocker, fixture, target):
    path = corpus.fixtures[fixture]
    objects = read_objects(path)
    numbered, masked = snapshot.models_without_pk(objects), snapshot.random_defaults(objects)
    databases = corpus.databases
    with django_db_blocker.unblock():
        try:
            databases.copy(target, "loaddata")
            with databases.using("loaddata"):
                try:
                    call_command("loaddata", str(path), verbosity=0)
                except Exception as exc:
                    expected, refusal = None, f"{type(exc).__name__}: {exc}"
                else:
                    expected, refusal = snapshot.take(numbered, masked), ""
            databases.copy(target, "restore")
            with databases.using("restore"):
                out = io.StringIO()
                try:
                    call_command("restore_backup", str(path), "--noinput", "--no-safety-backup", stdout=out, stderr=out)
                    status = "succeeded"
                except Exception as exc:
                    status = f"{type(exc).__name__}: {exc}"
                got = snapshot.take(numbered, masked)
        finally:
            for label in ("loaddata", "restore"):
                if label in databases.names:
                    databases.drop(label)
    if expected is None:
        assert status != "succeeded", f"loaddata refused {fixture} ({refusal}); the restore succeeded"
        return
    diff = snapshot.differences(expected, got)
    assert status == "succeeded" and not diff, "\n".join(
        [
            f"restore_backup {fixture} on {target}: {status}",
            *diff,
            "--- restore_backup output (tail):",
            *out.getvalue().splitlines()[-15:],
        ]
    )


@pytest.mark.parametrize("target", ["migrated", "lived-in"])
def test_own_backup_of_real_apps_restores_every_row(corpus, django_db_blocker, target):
    """``create_backup`` of the real apps' content, restored by default (replace; on PostgreSQL
    the COPY path with its indexes set aside, Wagtail's StreamField written through its own
    methods) onto a migrated database, or one that holds other rows: every row as it was."""
    databases = corpus.databases
    with django_db_blocker.unblock():
        try:
            databases.copy(target, "restore")
            with databases.using("restore"):
                out = io.StringIO()
                call_command(
                    "restore_backup", str(corpus.backup), "--noinput", "--no-safety-backup", stdout=out, stderr=out
                )
                got = snapshot.take(set())
        finally:
            databases.drop("restore")
    diff = snapshot.differences(corpus.content, got)
    assert not diff, "\n".join([f"restore_backup of the own backup on {target}:", *diff])
