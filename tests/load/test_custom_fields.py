"""Field classes that are not Django's own (a CMS's JSON field without ``encoder``, an encrypted-
style text field) are written through their own ``get_db_prep_save`` on every path: COPY, the
multi-row INSERT, the per-row fallback. The oracle is the ORM: a backup of rows the ORM wrote,
restored, leaves the same bytes in the table."""

from __future__ import annotations

import pytest
from django.db import connection

from dbrestore.models import RestoreRun
from restoreproject.fidelity.models import Document

pytestmark = pytest.mark.django_db(transaction=True)

BODIES = [{"blocks": [{"type": "text", "value": "hi"}]}, [1, 2.5, None, "\u00e9"], None, "a string", {}]


def stored() -> list[tuple]:
    """The columns as the database holds them (not as the fields read them back)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, CAST(body AS text), secret FROM fidelity_document ORDER BY id")
        return cursor.fetchall()


@pytest.mark.parametrize(
    "args",
    [[], ["--method", "orm"], ["--mode", "merge"], ["--batch-size", "1"]],
    ids=["default", "orm", "merge", "row-by-row"],
)
def test_custom_fields_restore_as_the_orm_wrote_them(args, tmp_path, run_command):
    for n, body in enumerate(BODIES):
        Document.objects.create(body=body, secret=f"secret {n}" if n % 2 else "")
    written = stored()
    assert written[1][2] == "1 terces"  # stored reversed, by its own get_prep_value
    run_command("create_backup", "--output", tmp_path / "backup", "--only", "fidelity.Document", "-v", "0")
    Document.objects.all().delete()
    run_command("restore_backup", tmp_path / "backup", "--noinput", "--no-safety-backup", *args)
    assert RestoreRun.objects.latest("pk").status == "succeeded"
    assert stored() == written
    assert [d.body for d in Document.objects.order_by("pk")] == BODIES
