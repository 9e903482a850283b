"""The real-app corpus: fixtures dumped from content made through Wagtail's, taggit's,
treebeard's, reversion's and guardian's own APIs, and target databases that already hold rows.

Runs only under ``--ds restoreproject.settings_realapps`` (``tests/conftest.py`` leaves this
folder out of any other pass, and the main suite out of this one). Once per session: pytest-django
migrates the test database; a copy of it gets the content (``content.make_content``) and the
fixtures are dumped from it (``DUMPS``); one copy per target (``content.TARGETS``) gets its
outside rows. Each comparison then takes two copies of its target."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

SETTINGS = "restoreproject.settings_realapps"

if os.environ.get("DJANGO_SETTINGS_MODULE") != SETTINGS:  # another pass: nothing here is collected
    collect_ignore_glob = ["*"]
else:
    import wagtail
    from django.core.management import call_command

    from tests.realapps import snapshot
    from tests.realapps.content import TARGETS, make_content
    from tests.realapps.databases import Databases

    # What a user would leave out of a dump: what migrate makes (content types, permissions),
    # sessions, the admin's log, dbrestore's run history, django-rq's table-less model.
    EXCLUDE = [
        f"--exclude={label}"
        for label in ("contenttypes", "auth.permission", "sessions", "admin.logentry", "dbrestore", "django_rq")
    ]

    # Fixture file name -> dumpdata arguments (the format follows the name: .jsonl, .gz).
    DUMPS: dict[str, list[str]] = {
        "full.json": [*EXCLUDE, "--indent=2"],
        "full.json.gz": [*EXCLUDE],
        "full.jsonl": [*EXCLUDE, "--format=jsonl"],
        "natural-foreign.jsonl": [*EXCLUDE, "--natural-foreign", "--format=jsonl"],
        # taggit's TaggedItemBase has natural_key() but no natural_key_fields: under
        # --natural-primary loaddata cannot read its objects at all, so a user leaves it out.
        "natural.json": [
            *EXCLUDE,
            "--exclude=realapps.articletag",
            "--natural-foreign",
            "--natural-primary",
            "--indent=2",
        ],
        "groups.json": ["auth.group", "--indent=2"],  # groups and their permissions, alone
        "groups-users.json": ["auth.group", "realapps.user", "--indent=2"],  # groups and users (the user model)
    }

    # Fixtures the apps ship that load with these settings (Wagtail's others need its test apps).
    SHIPPED = {
        "wagtail-test_empty.json": Path(wagtail.__file__).parent / "test" / "testapp" / "fixtures" / "test_empty.json",
    }

    @pytest.fixture(scope="session")
    def django_db_setup(django_test_environment, django_db_blocker):
        """The migrated test database, made once. pytest-django's own fixture makes only the
        databases that ``django_db``-marked tests name; these tests are not marked (the mark would
        wrap them in a transaction, or flush the migrated database after each of them)."""
        from django.test.utils import setup_databases, teardown_databases

        with django_db_blocker.unblock():
            config = setup_databases(verbosity=0, interactive=False, aliases={"default"})
        yield
        with django_db_blocker.unblock():
            teardown_databases(config, verbosity=0)

    @dataclass
    class Corpus:
        databases: Databases
        fixtures: dict[str, Path]
        backup: Path  # create_backup of the content (dbrestore's own format)
        content: snapshot.Snapshot  # every row of the content, as the backup holds it

    @pytest.fixture(scope="session")
    def corpus(django_db_setup, django_db_blocker, tmp_path_factory):
        with django_db_blocker.unblock():
            databases = Databases(tmp_path_factory.mktemp("realapps-databases"))
            directory = tmp_path_factory.mktemp("realapps-fixtures")
            fixtures = dict(SHIPPED)
            databases.copy("migrated", "content")
            with databases.using("content"):
                make_content()
                for name, arguments in DUMPS.items():
                    # A folder each: loaddata refuses a name that two files of one folder share
                    # (full.json, full.json.gz, full.jsonl).
                    (directory / name.replace(".", "_")).mkdir()
                    fixtures[name] = directory / name.replace(".", "_") / name
                    call_command("dumpdata", *arguments, f"--output={fixtures[name]}", verbosity=0)
                backup = directory / "own-backup"
                call_command("create_backup", f"--output={backup}", verbosity=0)
                content = snapshot.take(set())
            databases.drop("content")
            for target, seed in TARGETS.items():
                if target != "migrated":
                    databases.copy("migrated", target)
                    with databases.using(target):
                        seed()
            try:
                yield Corpus(databases, fixtures, backup, content)
            finally:
                databases.drop_all()
