"""Restore mutated backups into the configured database, one after the other, and check what a user
would: no traceback (every failure is one of dbrestore's one-line errors), no run left running,
and counts that add up (per table inserted + skipped + rejected == total; the rejects file holds
exactly the rejected rows). Outside CI (issue 26): ``python manage.py fuzz_restore --mutants
10000`` (docs/development.md, "Tests"). The seeds are the reader fuzz test's valid backups of every format
plus tables and fixtures over every kind of column; each mutant changes one file, at the byte
level (bit flips, truncations, insertions of hostile tokens) or at the value level (a value
replaced by a container, a fraction, a huge or deep number, NUL, a lone surrogate, a natural key
that names nothing...). Failures are kept under ``--keep DIR`` with what was done to them."""

from __future__ import annotations

import io
import json
import random
import shutil
import tempfile
import time
import traceback
from pathlib import Path

from django.apps import apps
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from dbrestore.models import RestoreRun
from dbrestore.sources.readers import loads_line

#: Values a row may get instead of one of its own: raw JSON text (so that any JSON can be written).
HOSTILE = [
    b'["x"]',
    b'{"a": 1}',
    b"{}",
    b"[]",
    b"1.5",
    b"-2.5",
    b"1e400",
    b"1e2000000",
    b"2.0",
    b"true",
    b"2",
    b'"true"',
    b'"\\u0000"',
    b'"a\\ud800b"',
    b'"\\udc80"',
    b"1180591620717411303424",
    b'""',
    b"null",
    b'"2020-13-01"',
    b"1000000000000000.5",
    b'"P1DT2H"',
    b'["nobody"]',
    b'["add_x", "noapp", "nomodel"]',
    b"[" * 1200 + b"]" * 1200,
    b'{"k": ' + b"[" * 300 + b"]" * 300 + b"}",
    b'"' + b"x" * 300 + b'"',
    b'"1_000"',
    b'" 13 "',
    b"-0.0",
    b"9223372036854775808",
    b'"inf"',
    b'"\\ud83d\\ude00"',
]


def _seeds() -> dict[str, dict[str, bytes]]:
    from tests.support.fidelity_corpus import ALL_FIELDS
    from tests.support.fuzz_seeds import SEEDS, jsonl

    seeds = dict(SEEDS)
    all_fields = [{"id": 1, **ALL_FIELDS}, {"id": 2, **ALL_FIELDS, "char": "two", "data": [1, 2]}]
    seeds["all-fields-jsonl"] = {"fidelity_allfields.jsonl": jsonl(all_fields)}
    seeds["all-fields-json"] = {"fidelity_allfields.json": json.dumps(all_fields).encode()}
    seeds["natural-keys"] = {
        "fixture.json": json.dumps(
            [
                {"model": "fidelity.person", "pk": 1, "fields": {"name": "ann", "boss": ["bob"]}},
                {"model": "fidelity.person", "pk": 2, "fields": {"name": "bob", "boss": None}},
                {
                    "model": "auth.group",
                    "pk": 1,
                    "fields": {"name": "editors", "permissions": [["change_person", "fidelity", "person"]]},
                },
                {
                    "model": "fidelity.taggeditem",
                    "pk": 1,
                    "fields": {"content_type": ["fidelity", "person"], "object_id": 1, "tag": "t"},
                },
            ]
        ).encode()
    }
    seeds["customers-jsonl"] = {
        "shop_customer.jsonl": jsonl(
            [
                {
                    "id": 1,
                    "email": "a@example.com",
                    "name": "a",
                    "external_id": "00000000-0000-0000-0000-000000000001",
                    "joined_at": "2020-01-01T00:00:00+00:00",
                    "is_active": True,
                    "notes": "",
                    "referred_by_id": None,
                    "last_order_id": None,
                    "birth_date": "1990-01-02",
                    "avatar": "AAE=",
                }
            ]
        )
    }
    return seeds


def _values_mutated(data: bytes, name: str, rng: random.Random) -> bytes | None:
    """``data`` with one value of one row replaced by a hostile one (None: not a file of rows)."""
    jsonl = ".jsonl" in name
    try:
        rows = [json.loads(line) for line in data.splitlines() if line.strip()] if jsonl else json.loads(data)
    except ValueError:
        return None
    if isinstance(rows, dict):  # a keyed object: one of its tables
        tables = [key for key, value in rows.items() if isinstance(value, list) and value]
        if not tables:
            return None
        holder = rows[rng.choice(tables)]
    else:
        holder = rows
    if not holder or not isinstance(holder, list):
        return None
    row = rng.choice(holder)
    if isinstance(row, dict) and isinstance(row.get("fields"), dict):
        row = row["fields"] if rng.random() < 0.9 else row
    if isinstance(row, dict) and isinstance(row.get("row"), dict):
        row = row["row"]
    if not isinstance(row, dict) or not row:
        return None
    row[rng.choice(sorted(row))] = "\x01HOSTILE\x01"
    hostile = rng.choice(HOSTILE)
    if jsonl:
        text = b"".join(json.dumps(line).encode() + b"\n" for line in rows)
    else:
        text = json.dumps(rows).encode()
    return text.replace(b'"\\u0001HOSTILE\\u0001"', hostile, 1)


def mutate(seeds: dict[str, dict[str, bytes]], rng: random.Random) -> tuple[str, dict[str, bytes], str]:
    from tests.support.fuzz_seeds import TOKENS, compress

    seed = rng.choice(sorted(seeds))
    files = dict(seeds[seed])
    target = rng.choice(sorted(files))
    data = files[target]
    kind = rng.choice(["value", "value", "value", "flip", "truncate", "insert"])
    if kind == "value":
        changed = _values_mutated(data, target, rng)
        if changed is None:
            kind = "insert"
        else:
            data = changed
    data = bytearray(data)
    if kind == "flip":
        for _ in range(rng.randint(1, 8)):
            if data:
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif kind == "truncate":
        del data[rng.randint(0, len(data)) :]
    elif kind == "insert":
        position = rng.randint(0, len(data))
        data[position:position] = rng.choice(TOKENS) if rng.random() < 0.7 else rng.randbytes(rng.randint(1, 16))
    stored = {name: compress(name, content) for name, content in files.items()}
    stored[target] = compress(target, bytes(data))
    return seed, stored, f"{kind} {target}"


class Command(BaseCommand):
    help = __doc__.split("\n\n")[0]

    def add_arguments(self, parser):
        parser.add_argument("--mutants", type=int, default=1000)
        parser.add_argument("--seed", type=int, default=26)
        parser.add_argument("--keep", default="fuzz-failures", help="Where failing mutants are kept.")

    def handle(self, *args, mutants: int, seed: int, keep: str, **options):
        from tests.support.fuzz_seeds import write_backup

        rng = random.Random(seed)
        seeds = _seeds()
        outcomes: dict[str, int] = {}
        failures: list[str] = []
        started = time.monotonic()
        for number in range(1, mutants + 1):
            if number % 200 == 1:
                self._wipe()
            seed_name, stored, what = mutate(seeds, rng)
            with tempfile.TemporaryDirectory() as tmp:
                root = Path(tmp) / "backup"
                root.mkdir()
                source = write_backup(root, seed_name, stored)
                problem, outcome = self._restore_one(source, Path(tmp))
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
                if problem:
                    failures.append(f"#{number} {seed_name}, {what}: {problem}")
                    kept = Path(keep) / f"{number}-{seed_name}"
                    shutil.copytree(root, kept, dirs_exist_ok=True)
                    (kept / "WHAT.txt").write_text(f"{what}\n{problem}\n")
            if number % 500 == 0:
                self.stdout.write(
                    f"{number} mutants, {time.monotonic() - started:.0f} s: {outcomes}, {len(failures)} failures"
                )
        self.stdout.write(
            f"{mutants} mutants on {connection.vendor} in {time.monotonic() - started:.0f} s: "
            f"{outcomes}; {len(failures)} failures"
        )
        for failure in failures[:50]:
            self.stdout.write(failure)
        if failures:
            raise CommandError(f"{len(failures)} of {mutants} mutants failed the checks (kept in {keep})")

    def _restore_one(self, source: Path, tmp: Path) -> tuple[str | None, str]:
        report, rejects = tmp / "report.json", tmp / "rejects.jsonl"
        before = RestoreRun.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        try:
            call_command(
                "restore_backup",
                str(source),
                "--noinput",
                "--no-safety-backup",
                "--mode",
                "append",
                "--ignore-unknown",
                "--rejects-file",
                str(rejects),
                "--report-json",
                str(report),
                "-v",
                "0",
                stdout=io.StringIO(),
                stderr=io.StringIO(),
            )
            outcome = "succeeded"
        except CommandError as exc:
            message = str(exc)
            outcome = "partial" if "ended partial" in message else "one-line error"
            if "\n" in message or "Traceback" in message:
                return f"a message of more than one line: {message[:300]!r}", "problem"
        except Exception:
            return "traceback: " + traceback.format_exc()[-1500:], "traceback"
        run = RestoreRun.objects.filter(pk__gt=before).order_by("-pk").first()
        if run is None:
            return (None, outcome) if outcome == "one-line error" else ("no run recorded", "problem")
        if run.status in RestoreRun.ACTIVE_STATUSES:
            return f"run #{run.pk} left {run.status}", "problem"
        if report.exists():
            data = json.loads(report.read_text())
            for label, table in data["tables"].items():
                if table["inserted"] + table["skipped"] + table["rejected"] != table["total"]:
                    return f"{label}: counts do not add up: {table}", "problem"
            try:
                lines = [loads_line(line) for line in rejects.read_bytes().splitlines()] if rejects.exists() else []
            except ValueError as exc:
                shutil.copy(rejects, tmp / "backup" / "REJECTS.jsonl")
                return f"the rejects file cannot be read back: {exc}", "problem"
            rejected = sum(1 for line in lines if line.get("kind", "rejected") == "rejected")
            if rejected != run.rows_rejected or rejected != sum(t["rejected"] for t in data["tables"].values()):
                return f"{rejected} rejected lines, run says {run.rows_rejected}", "problem"
        return None, outcome

    def _wipe(self) -> None:
        models = [
            m
            for label in ("shop", "fidelity")
            for m in apps.get_app_config(label).get_models(include_auto_created=True)
        ]
        models += [apps.get_model("auth", "Group").permissions.through, apps.get_model("auth", "Group")]
        with transaction.atomic(), connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                tables = ", ".join(connection.ops.quote_name(m._meta.db_table) for m in models)
                cursor.execute(f"TRUNCATE {tables} CASCADE")
            else:
                for model in models:
                    cursor.execute(f"DELETE FROM {connection.ops.quote_name(model._meta.db_table)}")
        RestoreRun.objects.all().delete()
