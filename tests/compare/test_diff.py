"""The diff (``restore_backup --diff``, ``dbrestore.compare.compare``) against a real database:
the sample restored, then known rows changed through the ORM."""

from __future__ import annotations

import io
import json
import uuid

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from dbrestore.compare import compare
from dbrestore.runs import locks
from tests.support.diff_changes import ADDED_COUNT, BACKUP_SPELLED, DELETED, SPELLED, UPDATED, checksums, rewrite_row

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_diff_finds_exactly_the_rows_changed_through_the_orm(changed):
    report = compare(changed.backup, samples=10)

    items = report.tables["shop.OrderItem"]
    assert (items.changed, items.added, items.removed) == (len(UPDATED), len(DELETED), ADDED_COUNT)
    assert items.unchanged == 168 - len(UPDATED) - len(DELETED)  # the spelled rows among them
    assert items.rejected == 0
    assert sorted(row.pk for row in items.changed_rows) == UPDATED
    for row in items.changed_rows:
        assert set(row.fields) == {"quantity"}
        old, new = row.fields["quantity"]
        assert old == 1000 + row.pk and new != old
    assert sorted(items.added_pks) == DELETED
    assert sorted(items.removed_pks) == changed.added
    assert SPELLED not in [row.pk for row in items.changed_rows]
    assert BACKUP_SPELLED not in [row.pk for row in items.changed_rows]
    for label, table in report.tables.items():  # nothing else differs
        if label != "shop.OrderItem":
            assert not table.differs, label


@pytest.mark.parametrize("mode", ["merge", "append"])
def test_merge_and_append_remove_nothing(changed, mode):
    items = compare(changed.backup, mode=mode).tables["shop.OrderItem"]
    assert (items.changed, items.added, items.removed) == (len(UPDATED), len(DELETED), 0)
    assert items.removed_pks == []


def test_the_database_is_left_byte_for_byte_as_it_was(changed, tmp_path, run_command):
    before = checksums(tmp_path / "before")
    run_command("restore_backup", changed.backup, "--diff", "--mode", "replace", "--cascade")
    compare(changed.backup, mode="merge")
    assert checksums(tmp_path / "after") == before


def test_the_command_prints_the_table_and_the_samples_and_writes_the_json_report(changed, tmp_path, run_command):
    report_path = tmp_path / "diff.json"
    out, _ = run_command(
        "restore_backup", changed.backup, "--diff", "--diff-samples", "2", "--report-json", report_path
    )

    line = next(line for line in out.splitlines() if line.startswith("shop.OrderItem "))
    assert line.split()[1:5] == [str(len(DELETED)), str(len(UPDATED)), str(ADDED_COUNT), "158"]
    assert f"changed pk {UPDATED[0]}: quantity: {1000 + UPDATED[0]} -> " in out
    assert "nothing written: 3 added, 7 changed, 2 removed" in out
    document = json.loads(report_path.read_text())
    diff = document["tables"]["shop.OrderItem"]["diff"]
    assert {key: diff[key] for key in ("added", "changed", "removed", "unchanged")} == {
        "added": 3,
        "changed": 7,
        "removed": 2,
        "unchanged": 158,
    }
    assert all(type(diff[key]) is int for key in ("added", "changed", "removed", "unchanged", "rejected"))
    assert len(diff["samples"]["changed"]) == 2
    assert diff["samples"]["changed"][0]["fields"]["quantity"]["old"] == 1000 + UPDATED[0]
    assert diff["samples"]["removed"] == changed.added
    assert document["totals"]["changed"] == 7 and document["mode"] == "replace"


def test_a_backup_with_bad_rows_reports_them_as_the_restore_rejects_them(changed, restore_outcome):
    rewrite_row(changed.backup, "shop_orderitem.jsonl", 7, lambda row: {"quantity": 2.5})
    rewrite_row(changed.backup, "shop_orderitem.jsonl", 8, lambda row: {"added_at": "not a date"})
    items = compare(changed.backup).tables["shop.OrderItem"]

    assert items.rejected == 2
    assert (items.changed, items.added) == (len(UPDATED), len(DELETED))  # counted apart
    _, _, _, rejected = restore_outcome(changed.backup, "--dry-run")
    assert {(r.pk, r.reason) for r in items.rejected_rows} == {(r["row"]["id"], r["reason"]) for r in rejected}
    assert items.removed == ADDED_COUNT + 2  # replace: their rows in the database go, nothing comes back


def test_a_backup_out_of_primary_key_order_is_compared_by_keys(changed, tmp_path):
    rows = [json.loads(line) for line in (changed.backup / "shop_orderitem.jsonl").read_text().splitlines()]
    single = tmp_path / "shop_orderitem.jsonl"
    single.write_text("".join(json.dumps(row) + "\n" for row in reversed(rows)))

    items = compare(single, batch_size=10).tables["shop.OrderItem"]
    assert (items.changed, items.added, items.removed, items.unchanged) == (7, 3, 2, 158)
    assert items.removed_pks == [] and "not in primary-key order" in items.notes[0]


def test_bad_input_is_refused_with_the_restores_own_error(changed, tmp_path):
    def refusal(*args: str) -> str:
        with pytest.raises(CommandError) as caught:
            call_command("restore_backup", *args, stdout=io.StringIO(), stderr=io.StringIO())
        return str(caught.value)

    damaged = changed.backup / "shop_tag.jsonl"
    damaged.write_text(damaged.read_text().replace("1", "2", 1))
    missing = str(tmp_path / "nowhere")
    unknown = tmp_path / "no_such_model.jsonl"
    unknown.write_text('{"id": 1}\n')
    for args in ([str(changed.backup)], [missing], [str(unknown)], [str(changed.backup), "--only", "nothing"]):
        restore_error = refusal(*args, "--noinput", "--no-safety-backup")
        assert refusal(*args, "--diff") == restore_error
        assert "\n" not in restore_error


def test_the_diff_takes_no_restore_lock(changed):
    with locks.holding("default"):  # a restore running
        report = compare(changed.backup)
    assert report.tables["shop.OrderItem"].changed == len(UPDATED)


def test_refused_combinations(changed, run_command):
    with pytest.raises(CommandError, match="drop --async"):
        run_command("restore_backup", changed.backup, "--diff", "--async")
    with pytest.raises(CommandError, match="--diff-samples must be 0 or more"):
        run_command("restore_backup", changed.backup, "--diff", "--diff-samples", "-1")


def test_outside_rows_a_replace_would_affect_are_reported(changed):
    from restoreproject.shop.models import Order, OrderItem

    order = Order.objects.get(pk=1)
    order.pk, order.number = None, uuid.uuid4()
    order.save()  # an order the backup does not hold, with an item pointing to it
    item = OrderItem.objects.get(pk=1)
    item.pk, item.order = None, order
    item.save()

    report = compare(changed.backup, only=["shop.Order"])
    assert report.tables["shop.Order"].removed == 1 and report.tables["shop.Order"].removed_pks == [order.pk]
    [effect] = report.outside
    assert (effect.label, effect.field, effect.target, effect.rows) == ("shop.OrderItem", "order", "shop.Order", 1)
    assert effect.example_pk == item.pk and not effect.emptied

    cascaded = compare(changed.backup, only=["shop.Order"], cascade=True)
    assert cascaded.outside == []
    emptied = cascaded.tables["shop.OrderItem"]
    assert emptied.removed == OrderItem.objects.count() and "--cascade" in emptied.notes[0]


def test_a_fixtures_lists_are_matched_by_their_pair_and_set_exactly_in_a_merge(changed, tmp_path):
    from restoreproject.shop.models import Product, Tag

    fixture = tmp_path / "shop.json"
    call_command("dumpdata", "shop.product", "shop.tag", output=str(fixture), stdout=io.StringIO())
    assert compare(fixture).tables["shop.Product_tags"].unchanged == 24  # auto: merged, as loaddata does
    first, second = Product.objects.get(pk=1), Product.objects.get(pk=2)
    given = second.tags.count()
    first.tags.add(Tag.objects.exclude(pk__in=first.tags.all()).first())
    second.tags.clear()

    tags = compare(fixture).tables["shop.Product_tags"]
    assert (tags.added, tags.removed, tags.unchanged) == (given, 1, 24 - given)
    assert "list exactly" in tags.notes[0]


def test_a_running_restore_is_named_and_not_waited_for(changed):
    from dbrestore.models import RestoreRun

    run = RestoreRun.objects.create(source="/elsewhere", status="running", database="default")
    report = compare(changed.backup)
    assert any(f"restore #{run.pk} of /elsewhere is running" in warning for warning in report.warnings)


@pytest.mark.postgres
def test_a_table_a_restore_is_writing_is_not_waited_for(changed):
    """A restore's TRUNCATE holds its table: the diff gives up after its lock timeout, saying so,
    instead of queueing behind it (and holding up whatever queues behind the diff)."""
    import time

    import psycopg
    from django.db import connection

    from dbrestore.compare.reading import LOCK_TIMEOUT

    settings = connection.settings_dict
    with psycopg.connect(
        dbname=settings["NAME"], user=settings["USER"], host=settings["HOST"], port=settings["PORT"]
    ) as restoring:
        restoring.execute("LOCK TABLE shop_orderitem IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        with pytest.raises(CommandError, match="a restore is writing the tables now"):
            call_command("restore_backup", str(changed.backup), "--diff", stdout=io.StringIO())
        assert time.monotonic() - started < int(LOCK_TIMEOUT.removesuffix("s")) + 10
        restoring.rollback()
    with connection.cursor() as cursor:  # the session's own lock timeout is put back
        cursor.execute("SELECT current_setting('lock_timeout')")
        assert cursor.fetchone()[0] == "0"


def test_excluded_tables_are_named_not_compared(changed):
    report = compare(changed.backup, exclude=["shop.OrderItem"])
    assert "shop.OrderItem" not in report.tables
    assert any("shop.OrderItem is excluded" in warning for warning in report.warnings)
