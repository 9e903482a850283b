"""Copies of the migrated test database, and the default connection pointed at one of them.

Migrating Wagtail and the others takes seconds, so pytest-django migrates once per session and
every comparison gets copies: on PostgreSQL ``CREATE DATABASE copy TEMPLATE source`` (nobody may
be connected to the source, so every connection is closed first), on SQLite a file copy."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.db import connection, connections


class Databases:
    def __init__(self, directory: Path):
        self.vendor = connection.vendor
        self.directory = directory  # the SQLite copies' files
        self.original = connection.settings_dict["NAME"]  # pytest-django's migrated test database
        self.names: dict[str, str] = {"migrated": self.original}
        self._count = 0

    def copy(self, source: str, label: str) -> str:
        """A new database holding what ``source`` (a label) holds; its label."""
        self._count += 1
        connections.close_all()
        if self.vendor == "sqlite":
            name = str(self.directory / f"{self._count:03d}-{label}.sqlite3")
            shutil.copyfile(self.names[source], name)
        else:
            name = f"{self.original}_{self._count:03d}_{re.sub(r'[^a-z0-9]+', '_', label.lower())}"[:63]
            with self._admin() as cursor:
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                cursor.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.names[source]}"')
        self.names[label] = name
        return label

    def drop(self, label: str) -> None:
        name = self.names.pop(label)
        connections.close_all()
        if self.vendor == "sqlite":
            Path(name).unlink(missing_ok=True)
        else:
            with self._admin() as cursor:
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def drop_all(self) -> None:
        for label in [label for label in self.names if label != "migrated"]:
            self.drop(label)

    @contextmanager
    def using(self, label: str) -> Iterator[None]:
        """The default connection on the copy ``label`` for the block."""
        connections.close_all()
        connection.settings_dict["NAME"] = self.names[label]
        try:
            yield
        finally:
            connections.close_all()
            connection.settings_dict["NAME"] = self.original

    @contextmanager
    def _admin(self):
        import psycopg

        settings = connection.settings_dict
        with (
            psycopg.connect(
                dbname="postgres",
                host=settings["HOST"] or None,
                port=settings["PORT"] or None,
                user=settings["USER"] or None,
                password=settings["PASSWORD"] or None,
                autocommit=True,
            ) as admin,
            admin.cursor() as cursor,
        ):
            yield cursor
