"""Values validated as the field and the database define them: what a column cannot hold is a
rejected row with the reason (never stored changed), what cannot be read is a one-line error,
and rows of excluded models are counted. Run on SQLite and on PostgreSQL."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import orjson
import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import connection

from restoreproject.fidelity.models import AllFields, Member, Person, Place, Restaurant, TaggedItem

pytestmark = pytest.mark.django_db(transaction=True)


def table_file(tmp_path: Path, rows: list[dict], suffix: str = "jsonl") -> Path:
    path = tmp_path / f"fidelity_allfields.{suffix}"
    if suffix == "jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    else:
        path.write_text(json.dumps(rows))
    return path


@pytest.mark.parametrize("suffix", ["jsonl", "json"])
def test_big_integers_in_json_are_kept_exact(tmp_path, suffix, restore_outcome):
    values = [2**53 + 1, 2**64 + 1, -(2**70), {"n": [2**100]}, 1e100, 0.1]
    path = table_file(tmp_path, [{"id": i, "data": value} for i, value in enumerate(values, 1)], suffix)
    status, message, _, _ = restore_outcome(path)
    assert status == 0, message
    restored = [row.data for row in AllFields.objects.order_by("id")]
    # What the ORM itself stores (PostgreSQL's jsonb writes 1e100 out as an integer; SQLite keeps the float).
    AllFields.objects.all().delete()
    saved = [AllFields.objects.create(data=value).pk for value in values]
    assert restored == [AllFields.objects.get(pk=pk).data for pk in saved]
    assert restored[:4] == values[:4] and restored[5] == 0.1
    if connection.vendor == "sqlite":
        assert isinstance(restored[4], float)


@pytest.mark.parametrize("suffix", ["jsonl", "json"])
def test_values_the_column_cannot_hold_are_rejected(tmp_path, suffix, settings, restore_outcome):
    settings.TIME_ZONE = "Asia/Kolkata"
    bad = [
        ("when", "0001-01-01T00:00:00+05:30", "outside the range"),
        ("when", "9999-12-31T23:59:59-01:00", "outside the range"),
        ("when", "0001-01-01T03:00:00", "outside the range"),  # naive: read in Asia/Kolkata
        ("amount", "123456789.5", "no more than 8 digits before the decimal point"),
        ("amount", "1.005", "no more than 2 decimal places"),
        ("big", 2**63, "less than or equal to 9223372036854775807"),
        ("small", -(2**70), "greater than or equal to"),
        ("id", 2**70, "less than or equal to"),
        ("positive_big", -1, "greater than or equal to 0"),
        ("data", {"key\u0000": 1}, "NUL character"),
        ("data", json.loads("[" * 600 + "]" * 600), "nested more than"),
        ("char", "__DEEP__" if suffix == "json" else "x" * 51, ""),  # JSON Lines: see the test below
    ]
    if suffix == "jsonl":  # ijson (JSON arrays) reads a lone surrogate escape as "?": not seen here
        bad.append(("text", "lone \ud800 surrogate", "not valid UTF-8"))
    rows = [{"id": 1, "char": "good"}] + [{"id": i, field: value} for i, (field, value, _) in enumerate(bad, 2)]
    path = table_file(tmp_path, rows, suffix)
    path.write_text(path.read_text().replace('"__DEEP__"', "[" * 900 + "]" * 900))  # a deep value in a CharField
    status, message, report, rejects = restore_outcome(path)
    assert status == 3, message
    assert list(AllFields.objects.values_list("id", flat=True)) == [1], [r["reason"] for r in rejects]
    assert report["tables"]["fidelity.AllFields"]["rejected"] == len(bad)
    reasons = [reject["reason"] for reject in rejects]
    for (column, _, reason), got in zip(bad, reasons, strict=True):
        assert column in got and reason in got, (reason, got)


@pytest.mark.parametrize("layout", ["table", "dumpdata"])
def test_lone_surrogate_escape_in_a_json_array_is_a_rejected_row_not_a_question_mark(tmp_path, layout, restore_outcome):
    """ijson reads ``\\ud800`` as ``?``: the reader marks the escape so that it is read as that
    code point, as json.loads reads it in JSON Lines, and the row is rejected (issue 26: the
    whole restore stopped before); a valid surrogate pair (an emoji) and an escaped backslash
    before ``ud800`` still restore as written."""
    good = {"id": 1, "text": "\U0001f600 and \\ud800 as text"}
    cut = {"id": 2, "text": "\U0001f600"}
    if layout == "table":
        path = tmp_path / "fidelity_allfields.json"
        path.write_text(json.dumps([good, cut, {"id": 3, "text": "after"}]))
    else:
        path = tmp_path / "fixture.json"
        path.write_text(
            json.dumps(
                [
                    {"model": "fidelity.allfields", "pk": row["id"], "fields": {"text": row["text"]}}
                    for row in (good, cut, {"id": 3, "text": "after"})
                ]
            )
        )
    path.write_text(path.read_text().replace('\\ud83d\\ude00"}', '\\ud83d"}'))  # the second pair cut in half
    status, message, report, rejects = restore_outcome(path)
    assert status == 3, message
    assert dict(AllFields.objects.values_list("id", "text")) == {1: good["text"], 3: "after"}
    assert report["tables"]["fidelity.AllFields"]["rejected"] == 1
    assert len(rejects) == 1 and "not valid UTF-8" in rejects[0]["reason"] and "'text'" in rejects[0]["reason"]
    assert rejects[0]["row"]["text"] == "\ud83d"  # the lone surrogate itself, not "?"


def test_sqlite_keeps_nul_in_text_postgresql_rejects_it(tmp_path, vendor, restore_outcome):
    path = table_file(tmp_path, [{"id": 1, "text": "a\u0000b"}])
    status, _, _, rejects = restore_outcome(path)
    if vendor == "sqlite":
        assert status == 0 and AllFields.objects.get().text == "a\x00b"
    else:
        assert status == 3 and "NUL character" in rejects[0]["reason"] and not AllFields.objects.exists()


def test_deep_json_in_json_lines_is_a_rejected_row(tmp_path, restore_outcome):
    """Valid JSON too deep for the standard library's parser: the row is rejected, not the file
    (issue 26: this was a one-line error before)."""
    path = tmp_path / "fidelity_allfields.jsonl"
    path.write_text(
        json.dumps({"id": 1})
        + "\n"
        + '{"id": 2, "data": '
        + "[" * 10000
        + "]" * 10000
        + "}\n"
        + json.dumps({"id": 3})
        + "\n"
    )
    status, message, report, rejects = restore_outcome(path)
    assert status == 3, message
    assert sorted(AllFields.objects.values_list("id", flat=True)) == [1, 3]
    assert [r["position"] for r in rejects] == [2]
    assert "column 'data': a value nested more than 1000 levels deep" in rejects[0]["reason"]


def fixture(tmp_path: Path, objects: list[dict]) -> Path:
    path = tmp_path / "fixture.json"
    path.write_text(json.dumps(objects))
    return path


def test_rows_of_excluded_models_are_counted_as_skipped(tmp_path, restore_outcome):
    path = fixture(
        tmp_path,
        [
            {"model": "contenttypes.contenttype", "pk": 99, "fields": {"app_label": "x", "model": "y"}},
            {
                "model": "auth.permission",
                "fields": {"name": "p", "codename": "p", "content_type": ["fidelity", "person"]},
            },
            {"model": "dbrestore.restorerun", "pk": 5, "fields": {"source": "elsewhere"}},
            {"model": "fidelity.person", "pk": 1, "fields": {"name": "ann", "boss": None}},
        ],
    )
    status, message, report, _ = restore_outcome(path)
    assert status == 0, message
    tables = report["tables"]
    for label in ("contenttypes.ContentType", "auth.Permission", "dbrestore.RestoreRun"):
        assert tables[label]["total"] == tables[label]["skipped"] == 1, label
        assert any(label in warning and "excluded" in warning for warning in report["warnings"])
    assert Person.objects.count() == 1 and not connection.introspection.table_names() == []


def test_a_natural_key_naming_no_content_type_is_a_reject(tmp_path, restore_outcome):
    path = fixture(
        tmp_path,
        [
            {
                "model": "fidelity.taggeditem",
                "pk": 1,
                "fields": {"content_type": ["nope", "nothing"], "object_id": 1, "tag": "a"},
            },
            {"model": "fidelity.taggeditem", "pk": 2, "fields": {"content_type": ["nope"], "object_id": 1, "tag": "b"}},
            {"model": "fidelity.taggeditem", "pk": 3, "fields": {"content_type": [["x"]], "object_id": 1, "tag": "c"}},
            {
                "model": "fidelity.taggeditem",
                "pk": 4,
                "fields": {"content_type": ["fidelity", "person"], "object_id": 1, "tag": "ok"},
            },
        ],
    )
    status, message, report, rejects = restore_outcome(path)
    assert status == 3, message
    assert list(TaggedItem.objects.values_list("tag", flat=True)) == ["ok"]
    assert "no contenttypes.ContentType with natural key ['nope', 'nothing']" in rejects[0]["reason"]
    assert "not a natural key of contenttypes.ContentType" in rejects[1]["reason"]
    assert len(rejects) == 3


def test_an_m2m_value_that_is_not_a_list_rejects_its_object_only(tmp_path, restore_outcome):
    """loaddata fails the whole fixture; here the object is a counted reject with the reason,
    and the rest of the fixture, M2M lists included, is restored."""
    path = fixture(
        tmp_path,
        [
            {"model": "fidelity.member", "pk": 1, "fields": {"name": "m", "friends": 7}},
            {"model": "fidelity.member", "pk": 2, "fields": {"name": "n", "friends": [3]}},
            {"model": "fidelity.member", "pk": 3, "fields": {"name": "o", "friends": [2], "people": {"a": 1}}},
        ],
    )
    status, message, report, rejects = restore_outcome(path)
    assert status == 3, message
    assert list(Member.objects.values_list("pk", flat=True)) == [2]
    assert [r["position"] for r in rejects if r["model"] == "fidelity.Member"] == [1, 3]
    assert "fidelity.member.friends: a many-to-many value must be a list, found int" in rejects[0]["reason"]
    assert "fidelity.member.people: a many-to-many value must be a list, found dict" in rejects[1]["reason"]
    assert report["tables"]["fidelity.Member"]["rejected"] == 2
    # The friends of the rejected object 3 point at a row that is not there: rejected, counted.
    assert (
        report["tables"]["fidelity.Member_friends"]["rejected"] == report["tables"]["fidelity.Member_friends"]["total"]
    )


def test_a_childs_list_for_its_parents_m2m_is_rejected_not_dropped(tmp_path, restore_outcome):
    """A multi-table child's object that gives its parent's M2M field (Django's own
    fixtures_regress/feature.json): loaddata drops that list without a word; the restore leaves
    what loaddata leaves and rejects the list's rows with the reason."""
    objects = [
        {"model": "fidelity.label", "pk": 1, "fields": {"name": "cosy"}},
        {"model": "fidelity.place", "pk": 5, "fields": {"name": "Chez Nous", "labels": []}},
        {"model": "fidelity.restaurant", "pk": 5, "fields": {"serves_pizza": True, "labels": [1]}},
    ]
    call_command("loaddata", str(fixture(tmp_path, objects)), verbosity=0)
    assert not Place.objects.get(pk=5).labels.exists()  # the oracle: loaddata dropped it
    Place.objects.all().delete()
    status, message, report, rejects = restore_outcome(fixture(tmp_path, objects))
    assert status == 3, message
    assert Restaurant.objects.get(pk=5).serves_pizza and not Place.objects.get(pk=5).labels.exists()
    assert [r["position"] for r in rejects] == [3]
    assert (
        "a multi-table child's object gives the fidelity.Place field 'labels', which loaddata ignores"
        in rejects[0]["reason"]
    )
    assert report["tables"]["fidelity.Place_labels"]["rejected"] == 1


def test_m2m_values_of_objects_known_by_natural_primary_key(tmp_path, restore_outcome):
    path = fixture(
        tmp_path,
        [
            {
                "model": "auth.group",
                "fields": {"name": "editors", "permissions": [["view_person", "fidelity", "person"]]},
            },
            {"model": "fidelity.place", "fields": {"name": "no natural key", "labels": [["cosy"]]}},
            {"model": "fidelity.label", "fields": {"name": "cosy"}},
        ],
    )
    status, message, report, rejects = restore_outcome(path)
    assert status == 3, message  # the place's labels are counted rejects, the rest goes in
    assert [r["reason"] for r in rejects] == [
        "fidelity.place: many-to-many values of an object without pk need its natural key, which could not be "
        "made: ValueError: fidelity.Place has no natural_key()"
    ]
    assert report["tables"]["fidelity.Place_labels"] == {
        **report["tables"]["fidelity.Place_labels"],
        "total": 1,
        "rejected": 1,
    }
    assert list(Group.objects.get(name="editors").permissions.values_list("codename", flat=True)) == ["view_person"]


def test_integers_too_large_for_any_column_are_rejects_not_tracebacks(tmp_path, restore_outcome):
    path = tmp_path / "shop_orderitem.jsonl"
    huge = 2**70
    path.write_bytes(
        b"".join(
            orjson.dumps(row) + b"\n"
            for row in [
                {"id": 1, "order_id": 1, "product_id": 1, "quantity": 1, "unit_price": "1.00", "created_at": None},
            ]
        ).replace(b'"id":1', f'"id":{huge}'.encode())
        + f'{{"id": 2, "order_id": {huge}, "quantity": {huge}}}\n'.encode()
    )
    status, message, report, rejects = restore_outcome(path)
    assert status == 3, message
    assert report["tables"]["shop.OrderItem"]["rejected"] == 2
    assert all("less than or equal to" in reject["reason"] for reject in rejects)


@pytest.mark.parametrize("layout", ["directory", "table-file", "keyed-object"])
def test_naive_datetimes_are_read_in_the_current_time_zone_in_every_format(tmp_path, settings, layout, restore_outcome):
    settings.TIME_ZONE = "Asia/Kolkata"
    row = {"id": 1, "when": "2021-03-04T05:06:07", "created": "2021-03-04T05:06:07+00:00"}
    if layout == "directory":
        path = tmp_path / "backup"
        path.mkdir()
        (path / "fidelity_allfields.jsonl").write_text(json.dumps(row) + "\n")
        (path / "manifest.json").write_text(
            json.dumps(
                {
                    "format": "dbrestore/1",
                    "tables": [
                        {
                            "model": "fidelity.AllFields",
                            "table": "fidelity_allfields",
                            "file": "fidelity_allfields.jsonl",
                        }
                    ],
                }
            )
        )
    elif layout == "table-file":
        path = table_file(tmp_path, [row], "json")
    else:
        path = tmp_path / "backup.json"
        path.write_text(json.dumps({"metadata": {}, "fidelity_allfields": [row]}))
    status, message, _, _ = restore_outcome(path)
    assert status == 0, message
    stored = AllFields.objects.get()
    assert stored.when.astimezone(datetime.UTC).isoformat() == "2021-03-03T23:36:07+00:00"
    assert stored.created.astimezone(datetime.UTC).isoformat() == "2021-03-04T05:06:07+00:00"


def test_multi_table_inheritance_round_trip(tmp_path, run_command, restore_outcome):
    from restoreproject.fidelity.models import Pizzeria, Place

    Pizzeria.objects.create(name="Luigi", serves_pizza=True, oven="wood")
    Place.objects.create(name="a park")
    run_command(
        "create_backup",
        "--output",
        tmp_path / "backup",
        "--only",
        "fidelity.Place,fidelity.Restaurant,fidelity.Pizzeria",
    )
    Place.objects.all().delete()
    status, message, _, _ = restore_outcome(tmp_path / "backup")
    assert status == 0, message
    assert Pizzeria.objects.get().name == "Luigi" and Place.objects.count() == 2
