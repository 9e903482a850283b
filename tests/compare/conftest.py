"""Fixtures of the diff's tests: a restored sample, then known changes made through the ORM
(what they are: ``tests/support/diff_changes.py``)."""

from __future__ import annotations

import datetime
import zoneinfo
from decimal import Decimal

import pytest

from tests.support.diff_changes import (
    ADDED_COUNT,
    BACKUP_SPELLED,
    DELETED,
    SPELLED,
    UPDATED,
    Changed,
    respelled,
    rewrite_row,
)


@pytest.fixture
def kolkata(settings):
    """A half-hour offset time zone: naive datetimes are read in it, not in UTC."""
    settings.TIME_ZONE = "Asia/Kolkata"


@pytest.fixture
def changed(kolkata, sample_backup, run_command) -> Changed:
    """The 300-row sample restored, then through the ORM: 7 OrderItems updated, 3 deleted, 2
    added, one saved again with its values spelled otherwise (and, in the backup, another one's
    decimal and datetime spelled otherwise)."""
    from restoreproject.shop.models import OrderItem

    backup = sample_backup(rows=300)
    rewrite_row(backup, "shop_orderitem.jsonl", BACKUP_SPELLED, respelled)
    run_command("restore_backup", backup, "--noinput", "--no-safety-backup")
    for pk in UPDATED:
        OrderItem.objects.filter(pk=pk).update(quantity=1000 + pk)
    OrderItem.objects.filter(pk__in=DELETED).delete()
    spelled = OrderItem.objects.get(pk=SPELLED)
    spelled.unit_price = Decimal(f"{spelled.unit_price:f}0")  # 12.30 -> 12.300: the same number
    spelled.added_at = spelled.added_at.astimezone(zoneinfo.ZoneInfo("America/St_Johns"))  # the same moment
    spelled.save()
    template = OrderItem.objects.get(pk=1)
    added = []
    for n in range(ADDED_COUNT):
        template.pk = None
        template.added_at = datetime.datetime(2025, 1, 1, n, tzinfo=datetime.UTC)
        template.save()
        added.append(template.pk)
    return Changed(backup, added)


@pytest.fixture
def admin_server(web_server_at):
    """The admin on this test database, its restores run in the web process (``SYNC_JOBS``)."""
    return web_server_at()
