"""restore_benchmark: the same OrderItem rows restored by each method, each in its own process.

The rows (7 columns, two FKs, a decimal, a datetime) are generated once into a dbrestore backup,
a dumpdata fixture and a CSV file; parents (orders, products) are loaded once. Each method then
loads into the emptied table in a child process, whose peak RSS comes from ``os.wait4``.
"""

from __future__ import annotations

import csv
import datetime
import json
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from django.db import connection

from dbrestore.backups.writer import BackupWriter
from restoreproject.shop.models import OrderItem
from restoreproject.shop.sample import order_items

ROOT = Path(__file__).resolve().parent.parent.parent
PARENT_ROWS = 20_000  # sample rows restored first: the orders and products the items point to
METHODS = ("loaddata", "naive", "orm", "copy", "copy_late_indexes", "default", "psql", "diff", "read", "select")
SLOW = ("loaddata", "naive")


@dataclass
class Measurement:
    method: str
    rows: int
    seconds: float
    peak_rss_mb: float
    peak_pss_all_mb: float = 0.0  # the process and every process it started

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def _columns() -> list[str]:
    return [f.column for f in OrderItem._meta.concrete_fields]


def whole_backup(items: Path, parents: Path, directory: Path) -> Path:
    """The parents' sample backup with its OrderItem table replaced by ``items``' rows: what the
    ``default`` method restores, as a user restores a whole backup (hard links, no copies)."""
    directory.mkdir()
    manifest = json.loads((parents / "manifest.json").read_text())
    item_entry = json.loads((items / "manifest.json").read_text())["tables"][0]
    tables = [entry for entry in manifest["tables"] if entry["model"] != item_entry["model"]] + [item_entry]
    for entry in tables:
        source = items if entry is item_entry else parents
        os.link(source / entry["file"], directory / entry["file"])
    (directory / "manifest.json").write_text(json.dumps({**manifest, "tables": tables}, indent=2))
    return directory


def prepare(workdir: Path, rows: int, slow_rows: int, parents: tuple[int, int]) -> dict[str, Path]:
    """Write the rows once: a backup directory, a dumpdata fixture (``slow_rows``) and a CSV; and
    the whole backup (parents included, from ``workdir/parents``)."""
    n_orders, n_products = parents
    backup = workdir / "backup"
    writer = BackupWriter(backup, compress=False)
    writer.write_table(
        model="shop.OrderItem",
        table=OrderItem._meta.db_table,
        columns=_columns(),
        rows=order_items(rows, n_orders, n_products, random.Random(7)),
    )
    writer.finish()
    fixture, csv_path = workdir / "fixture.json", workdir / "rows.csv"
    with open(fixture, "w") as fx, open(csv_path, "w", newline="") as cf:
        out = csv.writer(cf)
        fx.write("[\n")
        for index, row in enumerate(order_items(rows, n_orders, n_products, random.Random(7))):
            values = [_csv_value(row[c]) for c in _columns()]
            out.writerow(values)
            if index < slow_rows:
                fields = {k: _csv_value(v) if not isinstance(v, bool) else v for k, v in row.items() if k != "id"}
                fields = {k.removesuffix("_id") if k in ("order_id", "product_id") else k: v for k, v in fields.items()}
                fx.write(
                    ("," if index else "")
                    + json.dumps({"model": "shop.orderitem", "pk": row["id"], "fields": fields})
                    + "\n"
                )
        fx.write("]\n")
    whole = whole_backup(backup, workdir / "parents", workdir / "whole")
    return {"backup": backup, "fixture": fixture, "csv": csv_path, "whole": whole}


def _csv_value(value):
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, Decimal):
        return str(value)
    return value


def empty_table() -> None:
    """Empty the table as a restore does: TRUNCATE on PostgreSQL, so that no method starts with
    the dead rows (and index entries) of the one before. (``default`` replaces the parents too,
    with the same rows.)"""
    table = connection.ops.quote_name(OrderItem._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {table}" if connection.vendor == "postgresql" else f"DELETE FROM {table}")


def command_for(method: str, files: dict[str, Path], env_url: str) -> list[str]:
    manage = [sys.executable, str(ROOT / "manage.py")]
    if method == "loaddata":
        return [*manage, "loaddata", str(files["fixture"]), "-v", "0"]
    if method == "naive":
        return [*manage, "restore_benchmark", "--naive-load", str(files["fixture"])]
    if method == "default":  # as a user types it, on the whole backup: these rows and their parents
        return [*manage, "restore_backup", str(files["whole"]), "--noinput"]
    if method == "diff":  # the whole backup against the database holding it (see load_for_diff): all compared
        return [*manage, "restore_backup", str(files["whole"]), "--diff", "-v", "0"]
    if method in ("orm", "copy", "copy_late_indexes"):
        late = "--indexes-after-load" if method == "copy_late_indexes" else "--keep-indexes"
        return [
            *manage,
            "restore_backup",
            str(files["backup"]),
            "--noinput",
            "--no-safety-backup",
            "-v",
            "0",
            "--method",
            method.removesuffix("_late_indexes"),
            "--only",
            "shop.OrderItem",
            late,
        ]
    if method == "read":  # one streaming read of the whole backup: what --select is measured against
        return [*manage, "restore_benchmark", "--read-backup", str(files["whole"])]
    if method == "select":  # the customer deleted by prepare_undelete, back with its orders and items
        return [
            *manage,
            "restore_backup",
            str(files["whole"]),
            "--select",
            str(files["selection"]),
            "--noinput",
            "-v",
            "0",
        ]
    if method == "psql":
        cols = ", ".join(_columns())
        return [
            "psql",
            env_url,
            "-v",
            "ON_ERROR_STOP=1",
            "-qc",
            f"\\copy {OrderItem._meta.db_table} ({cols}) FROM '{files['csv']}' WITH (FORMAT csv)",
        ]
    raise ValueError(method)


def load_for_diff(files: dict[str, Path]) -> None:
    """Before ``diff`` (not timed): the whole backup restored, so that every row is compared
    with a row of the database, the diff's slowest case."""
    manage = [sys.executable, str(ROOT / "manage.py")]
    run_child([*manage, "restore_backup", str(files["whole"]), "--noinput", "--no-safety-backup", "-v", "0"])


def database_url(name: str | None = None) -> str:
    """The URL of the database this process uses (the test database under pytest, too), or of
    the database ``name`` on the same PostgreSQL server."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    return f"postgresql://{s['USER']}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{name or s['NAME']}"


def run_child(argv: list[str]) -> tuple[float, float, float]:
    """Run one method in a child process: (seconds, peak RSS of that process in MB, sampled every
    20 ms; peak PSS in MB of it and every process it started, sampled every 200 ms and at each
    new peak of the RSS).

    Sampled rather than read from ``wait4``: a forked child counts its parent's pages until it
    execs, which would give every method the parent's size. The PSS sum is the memory of the
    whole restore: a page shared by a process and its forked converters counts once, split
    between them (their RSS would count it in each).
    """
    import psutil

    started = time.perf_counter()
    env = {**os.environ, "DATABASE_URL": database_url()}
    process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    watched = psutil.Process(process.pid)
    peak = peak_tree = 0
    samples = 0
    while process.poll() is None:
        try:
            rss = watched.memory_info().rss
            if rss > peak or samples % 10 == 0:  # a new peak, or the children may have grown
                peak_tree = max(peak_tree, _tree_pss(watched))
            peak = max(peak, rss)
        except psutil.Error:
            pass
        samples += 1
        time.sleep(0.02)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])}... failed: {process.stderr.read().decode()[-500:]}")
    return seconds, peak / 1024 / 1024, peak_tree / 1024 / 1024


def _tree_pss(process) -> int:
    import psutil

    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_full_info().pss
        except psutil.Error:
            pass
    return total


def naive_load(fixture: Path) -> None:
    """Per-row save(): the baseline every batch loader is measured against."""
    from django.core import serializers

    with open(fixture) as stream:
        for obj in serializers.deserialize("json", stream):
            OrderItem(**{f.attname: getattr(obj.object, f.attname) for f in OrderItem._meta.concrete_fields}).save()


def prepare_undelete(whole: Path) -> str:
    """The whole backup restored, then the customer with the most orders deleted (its orders and
    their items cascade); the ``--select`` that brings it back."""
    from django.core.management import call_command
    from django.db.models import Count

    from restoreproject.shop.models import Customer

    call_command("restore_backup", str(whole), interactive=False, safety_backup=False, verbosity=0)
    customer = Customer.objects.annotate(n=Count("orders")).order_by("-n", "pk").first()
    assert customer is not None
    selection = f"shop.Customer:pk={customer.pk}"
    customer.delete()
    return selection


def read_backup(path: Path) -> int:
    """Every row of every table of the backup, read as a restore reads it (no conversion)."""
    from dbrestore.sources import open_backup

    return sum(1 for table in open_backup(path).tables for _ in table.rows())
