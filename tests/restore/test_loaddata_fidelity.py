"""The differential test: every fixture of the corpus (``fidelity_corpus.py``) through
``loaddata`` and through ``restore_backup`` into the same database, emptied in between, both
dumped with ``dumpdata`` and compared (M2M values as sets). Under ``USE_TZ = True`` with a
half-hour-offset ``TIME_ZONE`` and under ``USE_TZ = False``; the suite runs it on SQLite and on
PostgreSQL. Where loaddata refuses a fixture, the restore must fail or reject rows with the
reason, never end ``succeeded``."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
from pathlib import Path

import pytest
from django.apps import apps
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction

from tests.support.fidelity_corpus import BAD, FIXTURES, MANGLED, SEEDED

pytestmark = pytest.mark.django_db(transaction=True)

DUMPED = ["fidelity", "auth.user", "auth.group", "admin.logentry", "sites", "flatpages", "redirects"]
_OPENERS = {
    "gz": gzip.open,
    "bz2": bz2.open,
    "xz": lzma.open,
    "lzma": lambda path, mode, **kw: lzma.open(path, mode, format=lzma.FORMAT_ALONE, **kw),
}


@pytest.fixture(params=[("Asia/Kolkata", True), ("Asia/Kolkata", False)], ids=["kolkata-use-tz", "kolkata-no-tz"])
def time_zone(request, settings):
    settings.TIME_ZONE, settings.USE_TZ = request.param
    return request.param


def write_fixture(directory: Path, name: str, kind: str, objects: list[dict]) -> Path:
    path = directory / f"{name}.{kind}"
    if kind.startswith("jsonl"):
        # Blank lines, as hand-edited or concatenated fixtures have them (loaddata skips them).
        text = "\n" + "\n\n".join(json.dumps(obj) for obj in objects) + "\n\n"
    else:
        text = json.dumps(objects, indent=2)
    compression = kind.rsplit(".", 1)[-1]
    if compression in _OPENERS:
        with _OPENERS[compression](path, "wt", encoding="utf-8") as stream:
            stream.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def wipe() -> None:
    """Empty what the fixtures fill, in one transaction (the FK checks are deferred to its end).
    Content types and permissions stay: fixtures name them by natural key."""
    models = list(apps.get_app_config("fidelity").get_models(include_auto_created=True))
    models += [
        apps.get_model(label)
        for label in (
            "admin.LogEntry",
            "flatpages.FlatPage",
            "redirects.Redirect",
            "sites.Site",
            "auth.User",
            "auth.Group",
        )
    ]
    models += [f.remote_field.through for model in models[-6:] for f in model._meta.local_many_to_many]
    with transaction.atomic(), connection.cursor() as cursor:
        for model in models:
            cursor.execute(f"DELETE FROM {connection.ops.quote_name(model._meta.db_table)}")


def dump() -> list[dict]:
    out = io.StringIO()
    call_command("dumpdata", *DUMPED, natural_foreign=True, natural_primary=True, stdout=out)
    objects = json.loads(out.getvalue())
    for obj in objects:
        for name, value in obj["fields"].items():
            if isinstance(value, list) and name in _m2m_names(obj["model"]):
                obj["fields"][name] = sorted(value, key=json.dumps)
    return sorted(objects, key=lambda obj: (obj["model"], json.dumps(obj.get("pk")), json.dumps(obj["fields"])))


def _without_pks(dumped: list[dict], objects: list[dict]) -> list[dict]:
    numbered = {obj["model"] for obj in objects if "pk" not in obj}
    return sorted(
        ({k: v for k, v in obj.items() if k != "pk" or obj["model"] not in numbered} for obj in dumped), key=json.dumps
    )


def _m2m_names(label: str) -> set[str]:
    return {f.name for f in apps.get_model(label)._meta.many_to_many}


def seeded(seed: Path | None) -> None:
    """An empty start, or one that already holds rows (``seed``, loaded by loaddata)."""
    wipe()
    if seed is not None:
        call_command("loaddata", str(seed), verbosity=0)


def through_loaddata(path: Path, seed: Path | None = None) -> tuple[list[dict] | None, str]:
    seeded(seed)
    try:
        call_command("loaddata", str(path), verbosity=0)
    except Exception as exc:
        wipe()
        return None, f"{type(exc).__name__}: {exc}"
    return dump(), ""


def through_restore(path: Path, seed: Path | None = None) -> tuple[list[dict], str, str]:
    seeded(seed)
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("restore_backup", str(path), "--noinput", "--no-safety-backup", "-v", "1", stdout=out, stderr=err)
        status = "succeeded"
    except CommandError as exc:
        status = str(exc)
    return dump(), status, out.getvalue() + err.getvalue()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # loaddata's "received a naive datetime"
@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_restore_stores_what_loaddata_stores(name, time_zone, tmp_path):
    kind, objects = FIXTURES[name]
    path = write_fixture(tmp_path, name, kind, objects)
    expected, refusal = through_loaddata(path)
    got, status, output = through_restore(path)
    if expected is None:
        assert status != "succeeded", f"loaddata refused {name} ({refusal}); the restore stored {got}"
        return
    assert status == "succeeded", output
    if any("pk" not in obj for obj in objects):  # numbered by the database: compare without them
        expected, got = _without_pks(expected, objects), _without_pks(got, objects)
    assert got == expected
    assert "warning" not in output.lower() and "missing from the backup" not in output, output


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("name", sorted(BAD))
def test_what_loaddata_refuses_is_rejected(name, time_zone, tmp_path):
    """loaddata refuses the fixture; the restore rejects exactly the objects loaddata refuses
    one by one, and stores the others as loaddata stores them."""
    kind, objects = BAD[name]
    path = write_fixture(tmp_path, name, kind, objects)
    assert through_loaddata(path)[0] is None, f"loaddata took {name}"
    taken = []
    for index, obj in enumerate(objects):
        alone, _ = through_loaddata(write_fixture(tmp_path, f"{name}-{index}", kind, [obj]))
        taken += alone or []
    got, status, output = through_restore(path)
    assert status.endswith(
        f"ended partial: {len(objects) - len(taken)} rows rejected; rejected rows are in {status.rsplit(' ', 1)[-1]}"
    ), status
    assert got == sorted(taken, key=lambda obj: (obj["model"], json.dumps(obj.get("pk")), json.dumps(obj["fields"])))


def keyed_dump(seed: list[dict]) -> list[dict]:
    """The rows the seed put in, by primary key (their FKs by natural key, as the database
    numbers new rows differently on each side): where they stand now."""
    out = io.StringIO()
    call_command("dumpdata", *DUMPED, natural_foreign=True, stdout=out)
    keys = {(obj["model"], json.dumps(obj["pk"])) for obj in seed}
    kept = [obj for obj in json.loads(out.getvalue()) if (obj["model"], json.dumps(obj["pk"])) in keys]
    for obj in kept:
        for name in _m2m_names(obj["model"]) & set(obj["fields"]):
            obj["fields"][name] = sorted(obj["fields"][name], key=json.dumps)
    return sorted(kept, key=json.dumps)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("name", sorted(SEEDED))
def test_restore_onto_rows_already_there_leaves_what_loaddata_leaves(name, time_zone, tmp_path):
    """A fixture restored with no options onto a database that already holds rows: the same
    rows as loaddata, and the rows that were there keep their primary keys."""
    kind, seed, objects = SEEDED[name]
    seed_path = write_fixture(tmp_path, f"{name}-seed", "json", seed)
    path = write_fixture(tmp_path, name, kind, objects)
    expected, refusal = through_loaddata(path, seed_path)
    assert expected is not None, refusal
    expected_keyed = keyed_dump(seed)
    got, status, output = through_restore(path, seed_path)
    assert status == "succeeded", output
    assert got == expected
    assert keyed_dump(seed) == expected_keyed
    assert "warning" not in output.lower(), output


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("name", sorted(MANGLED))
def test_what_loaddata_stores_changed_is_rejected(name, time_zone, tmp_path):
    """loaddata takes the fixture but stores some values changed (a repr, a fraction cut off);
    the restore rejects exactly those objects and stores the others as loaddata stores them."""
    kind, objects = MANGLED[name]
    first = objects[0]
    path = write_fixture(tmp_path, name, kind, objects)
    taken, refusal = through_loaddata(path)
    assert taken is not None, f"loaddata refused {name}: {refusal}"
    expected, _ = through_loaddata(write_fixture(tmp_path, f"{name}-clean", kind, [first]))
    got, status, output = through_restore(path)
    assert status.endswith(
        f"ended partial: {len(objects) - 1} rows rejected; rejected rows are in {status.rsplit(' ', 1)[-1]}"
    ), status
    assert got == expected
