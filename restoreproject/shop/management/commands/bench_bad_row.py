"""``manage.py bench_bad_row``: what one bad row costs a batch (the fallback chain's price).

Loads batches of OrderItem rows through TableLoader inside a transaction that is rolled back at
the end (nothing stays behind), once clean and once with one row the database refuses (a
negative quantity breaks the PositiveIntegerField CHECK), and prints the median time and the
number of SQL statements of each. A measurement, not a test: run it on an idle machine.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from django.core.management.base import BaseCommand
from django.db import DEFAULT_DB_ALIAS, connections, transaction

from dbrestore.load.rejects import RejectsFile
from dbrestore.load.table import TableLoad, TableLoader
from dbrestore.runs.report import TableResult
from restoreproject.shop.models import OrderItem


def rows(start: int, count: int, bad_at: int | None):
    for offset in range(count):
        pk = start + offset
        yield (
            offset + 1,
            {
                "id": pk,
                "order_id": 1,
                "product_id": 1,
                "quantity": -1 if offset == bad_at else 3,
                "unit_price": "9.99",
                "added_at": "2024-01-01T00:00:00Z",
                "is_gift": False,
            },
        )


class Command(BaseCommand):
    help = "Measure the cost of one bad row in a batch against a clean batch (rolled back afterwards)."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=1000)
        parser.add_argument("--repeat", type=int, default=7)
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS)

    def handle(self, *args, batch_size, repeat, database, **options):
        connection = connections[database]
        statements = []

        def count(execute, sql, params, many, context):
            statements.append(sql)
            return execute(sql, params, many, context)

        timings = {"clean": [], "one bad row": []}
        counts = {}
        with tempfile.TemporaryDirectory() as tmp, transaction.atomic(using=database):
            rejects = RejectsFile(Path(tmp) / "rejects.jsonl")
            start = 10_000_000
            for _ in range(repeat):
                for kind, bad_at in (("clean", None), ("one bad row", batch_size // 2)):
                    result = TableResult(label="shop.OrderItem", table=OrderItem._meta.db_table)
                    loader = TableLoader(
                        TableLoad(OrderItem, using=database, batch_size=batch_size, result=result, rejects=rejects)
                    )
                    batch = list(rows(start, batch_size, bad_at))
                    start += batch_size
                    statements.clear()
                    with connection.execute_wrapper(count):
                        began = time.perf_counter()
                        loader.load(batch)
                        timings[kind].append(time.perf_counter() - began)
                    counts[kind] = len(statements)
                    assert result.inserted + result.rejected == batch_size
            transaction.set_rollback(True, using=database)
        clean = statistics.median(timings["clean"])
        bad = statistics.median(timings["one bad row"])
        self.stdout.write(f"{connection.vendor}, batch of {batch_size} rows, median of {repeat}:")
        self.stdout.write(f"  clean batch:       {clean * 1000:8.1f} ms, {counts['clean']} SQL statements")
        self.stdout.write(f"  one bad row:       {bad * 1000:8.1f} ms, {counts['one bad row']} SQL statements")
        self.stdout.write(f"  cost of the bad row: {bad / clean:.1f}x a clean batch")
