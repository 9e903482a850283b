"""``manage.py restore_benchmark``: rows/s, seconds and peak RSS of each way to load the same rows."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connection

from dbrestore.checks import check_indexes_set_aside
from restoreproject.shop import benchmark
from restoreproject.shop import benchmark_chunked as chunked
from restoreproject.shop.models import Order, Product


class Command(BaseCommand):
    help = (
        "Generate --rows OrderItem rows once, then load them into the emptied table by each method in "
        "its own process (loaddata, naive per-row save(), dbrestore's orm and copy with --keep-indexes, "
        "copy_late_indexes (copy with --indexes-after-load), default (restore_backup with no flag but "
        "--noinput), psql \\copy, diff (restore_backup --diff of the same whole backup against the "
        "database holding it, loaded first and not timed), read (one streaming read of the whole backup), "
        "select (the customer with the most orders deleted, then brought back by restore_backup --select)) "
        "and print rows/s, seconds and peak RSS (diff, read and select: rows of the backup). Named in "
        "--methods only: no_atomic, no_atomic_1chunk, jobs2, distribute2 (two real rqworker processes) and "
        "pg_restore (a pg_dump -Fc of the same tables into an empty database). Uses the configured database "
        "(PostgreSQL for copy, psql and the chunked methods)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--rows", type=int, default=100_000, help="Rows to load (default 100000).")
        parser.add_argument(
            "--slow-rows", type=int, default=None, help="Rows for loaddata and naive (default min(rows, 100000))."
        )
        parser.add_argument(
            "--methods",
            default=",".join(benchmark.METHODS),
            help=f"Comma-separated, from {', '.join(benchmark.METHODS + chunked.CHUNKED)} "
            f"(default: {', '.join(benchmark.METHODS)}).",
        )
        parser.add_argument(
            "--breakdown",
            action="store_true",
            help="Also time the phases of default and no_atomic (-v 3) and pg_restore's sections, once each.",
        )
        parser.add_argument("--json", default=None, metavar="PATH", help="Also write the results as JSON.")
        parser.add_argument("--naive-load", default=None, help="(internal) run the naive method on this fixture.")
        parser.add_argument("--read-backup", default=None, help="(internal) the read method: stream this backup.")

    def handle(self, *args, **options):
        if options["naive_load"]:
            benchmark.naive_load(Path(options["naive_load"]))
            return
        if options["read_backup"]:
            self.stdout.write(str(benchmark.read_backup(Path(options["read_backup"]))))
            return
        methods = [m.strip() for m in options["methods"].split(",") if m.strip()]
        unknown = set(methods) - set(benchmark.METHODS + chunked.CHUNKED)
        if unknown:
            raise CommandError(f"unknown methods: {', '.join(sorted(unknown))}")
        if connection.vendor != "postgresql" and {"copy", "copy_late_indexes", "psql", *chunked.CHUNKED} & set(methods):
            raise CommandError(
                "copy, copy_late_indexes, psql and the chunked methods need PostgreSQL (set DATABASE_URL)"
            )
        set_aside = [message.msg for message in check_indexes_set_aside(databases=[DEFAULT_DB_ALIAS])]
        if set_aside:  # the methods would load a schema without them: figures of another schema
            raise CommandError(" ".join(set_aside))
        rows = options["rows"]
        slow_rows = min(rows, options["slow_rows"] or 100_000)
        with tempfile.TemporaryDirectory(prefix="dbrestore-bench-") as tmp:
            workdir = Path(tmp)
            benchmark.empty_table()
            call_command(
                "make_sample_backup",
                rows=benchmark.PARENT_ROWS,
                output=str(workdir / "parents"),
                stdout=open(os.devnull, "w"),
            )
            call_command(
                "restore_backup",
                str(workdir / "parents"),
                interactive=False,
                safety_backup=False,
                exclude=["shop.OrderItem"],
                verbosity=0,
            )
            files = benchmark.prepare(workdir, rows, slow_rows, (Order.objects.count(), Product.objects.count()))
            if "pg_restore" in methods or options["breakdown"]:
                files["dump"] = chunked.make_dump(files, workdir)
            results = []
            for method in methods:
                benchmark.empty_table()
                if method == "select":
                    files["selection"] = Path(benchmark.prepare_undelete(files["whole"]))
                if method == "diff":
                    benchmark.load_for_diff(files)
                n = slow_rows if method in benchmark.SLOW else rows
                seconds, rss, pss = self._measure(method, files)
                results.append(benchmark.Measurement(method, n, seconds, rss, pss))
                self.stdout.write(
                    f"{method:<9} {n:>10} rows {seconds:>8.2f} s {n / seconds:>10.0f} rows/s {rss:>7.1f} MB"
                    f" {pss:>7.1f} MB all"
                )
            breakdown = self._breakdown(files) if options["breakdown"] else None
            benchmark.empty_table()
        self._print(results)
        if options["json"]:
            Path(options["json"]).write_text(
                json.dumps(
                    {
                        "rows": rows,
                        "slow_rows": slow_rows,
                        "methods": {
                            m.method: {
                                "rows": m.rows,
                                "rows_per_s": round(m.rows_per_s, 1),
                                "seconds": round(m.seconds, 3),
                                "peak_rss_mb": round(m.peak_rss_mb, 1),
                                "peak_pss_all_mb": round(m.peak_pss_all_mb, 1),
                            }
                            for m in results
                        },
                        **({"breakdown": breakdown} if breakdown else {}),
                    },
                    indent=2,
                )
            )

    def _measure(self, method: str, files: dict[str, Path]) -> tuple[float, float, float]:
        """(seconds, peak RSS MB, peak PSS MB of all): for distribute2 the peak RSS is the
        highest of the command and the two workers' processes (each work horse)."""
        if method == "distribute2":
            with chunked.rq_workers(2) as workers, chunked.PeakRSS(workers) as peak:
                seconds, rss, pss = benchmark.run_child(chunked.command_for(method, files))
            return seconds, max(rss, peak.mb), pss
        if method == "pg_restore":
            with chunked.empty_database():
                return benchmark.run_child(chunked.command_for(method, files))
        if method in chunked.CHUNKED:
            return benchmark.run_child(chunked.command_for(method, files))
        return benchmark.run_child(benchmark.command_for(method, files, benchmark.database_url()))

    def _breakdown(self, files: dict[str, Path]) -> dict:
        """Where the time goes: the phases of default and no_atomic, pg_restore's sections."""
        found = {
            "default": chunked.restore_phases(benchmark.command_for("default", files, "")),
            "no_atomic": chunked.restore_phases(chunked.command_for("no_atomic", files)),
            "pg_restore": chunked.pg_restore_sections(files["dump"]),
        }
        for name, phases in found.items():
            self.stdout.write(f"{name}: " + ", ".join(f"{phase} {seconds:.2f} s" for phase, seconds in phases.items()))
        return found

    def _print(self, results) -> None:
        self.stdout.write(
            f"\n{'method':<10} {'rows':>10} {'seconds':>9} {'rows/s':>10} {'peak RSS MB':>12} "
            f"{'peak PSS MB, all processes':>27}"
        )
        for m in results:
            note = " (subset)" if m.method in benchmark.SLOW and m.rows < max(r.rows for r in results) else ""
            self.stdout.write(
                f"{m.method:<10} {m.rows:>10} {m.seconds:>9.2f} {m.rows_per_s:>10.0f} {m.peak_rss_mb:>12.1f} "
                f"{m.peak_pss_all_mb:>27.1f}{note}"
            )
