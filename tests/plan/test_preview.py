"""The admin's confirm page (``preview_restore``) and the restore say the same for the same
backup: they call the same functions for the plan, the outside references and the columns."""

from __future__ import annotations

import json
import re

import pytest

from dbrestore.exceptions import OutsideReferenceError
from dbrestore.plan.preview import preview_restore
from dbrestore.service import restore
from restoreproject.shop.models import Category, Order

pytestmark = pytest.mark.django_db(transaction=True)


def _write_jsonl(path, rows) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_preview_and_restore_give_the_same_warnings(tmp_path):
    backup = tmp_path / "drifted"
    backup.mkdir()
    # "colour" is no field of Category; "parent" is missing (nullable: NULL used).
    _write_jsonl(backup / "shop_category.jsonl", [{"id": i, "name": f"c{i}", "colour": "red"} for i in range(1, 4)])
    _write_jsonl(backup / "no_such_table.jsonl", [{"id": 1}])

    preview = preview_restore(backup, ignore_unknown=True, safety_backup=False)
    result = restore(backup, ignore_unknown=True, safety_backup=False)

    assert Category.objects.count() == 3
    assert len(result.warnings) == 3, result.warnings  # the unknown table, the extra column, the missing one
    # The preview reads one row, so it cannot count the values dropped; everything else is the same text.
    said = [re.sub(r"\b\d+ values dropped", "their values dropped", w) for w in result.warnings]
    assert sorted(preview.warnings) == sorted(said)
    assert any("no_such_table" in w and "matches no model" in w for w in preview.warnings)
    assert any("colour" in w and "not fields of shop.Category" in w for w in preview.warnings)
    assert any("shop.Category fields missing from the backup: parent_id" in w for w in preview.warnings)


def test_preview_names_the_refusal_and_the_cascade_the_restore_gives(sample_backup, run_command):
    backup = sample_backup(rows=300)
    run_command("restore_backup", backup, "--noinput")
    orders = Order.objects.count()
    assert orders > 0

    preview = preview_restore(backup, only=["shop.Customer"])  # one transaction: the orders are kept
    assert f"shop.Order.customer -> shop.Customer ({orders} rows, e.g. pk 1)" in preview.kept_outside
    assert all(kept.startswith("shop.Order.") for kept in preview.kept_outside)
    assert not [w for w in preview.warnings if "shop.Order" in w]

    preview = preview_restore(backup, only=["shop.Customer"], atomic=False)
    with pytest.raises(OutsideReferenceError) as refused:
        restore(backup, only=["shop.Customer"], atomic=False)
    assert str(refused.value) in preview.warnings
    assert Order.objects.count() == orders  # the refusal left the database as it was

    preview = preview_restore(backup, only=["shop.Customer"], cascade=True)
    cascade = [w for w in preview.warnings if w.startswith("--cascade: also emptied")]
    assert len(cascade) == 1 and "shop.Order" in cascade[0]
    assert {"shop.Order", "shop.OrderItem"} <= {t.label for t in preview.also_emptied}
    assert Order.objects.count() == orders  # a preview empties nothing

    result = restore(backup, only=["shop.Customer"], cascade=True)
    assert cascade[0] in result.warnings
    assert Order.objects.count() == 0
