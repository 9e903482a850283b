"""``manage.py distribute_benchmark``: the sample backup restored ``--no-atomic`` in one process
against ``--no-atomic --distribute`` over N real rqworker processes, alternately, with medians."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from restoreproject.shop.benchmark import ROOT, database_url, run_child
from restoreproject.shop.benchmark_chunked import rq_workers


class Command(BaseCommand):
    help = (
        "Write the sample backup of --rows rows once, then restore it --repeat times each way, alternately: "
        "restore_backup --no-atomic in one process, and --no-atomic --distribute --wait with --workers rqworker "
        "processes; print seconds, rows/s and the peak RSS of each process, and the medians. PostgreSQL and Redis."
    )

    def add_arguments(self, parser):
        parser.add_argument("--rows", type=int, default=1_000_000)
        parser.add_argument("--workers", type=int, default=2)
        parser.add_argument("--repeat", type=int, default=3)
        parser.add_argument("--backup", default=None, help="Use this sample backup instead of writing one.")
        parser.add_argument("--json", default=None, metavar="PATH", help="Also write the results as JSON.")

    def handle(self, *args, **options):
        if connection.vendor != "postgresql":
            raise CommandError("--distribute needs PostgreSQL (set DATABASE_URL)")
        with tempfile.TemporaryDirectory(prefix="dbrestore-distribute-bench-") as tmp:
            backup = Path(options["backup"] or Path(tmp) / "sample")
            if not options["backup"]:
                call_command(
                    "make_sample_backup", rows=options["rows"], output=str(backup), stdout=open(os.devnull, "w")
                )
            rows = sum(entry["rows"] for entry in json.loads((backup / "manifest.json").read_text())["tables"])
            results: dict[str, list[dict]] = {"no_atomic": [], "distribute": []}
            for attempt in range(options["repeat"]):
                seconds, rss, _ = run_child(_restore(backup, "--no-atomic"))
                results["no_atomic"].append({"seconds": seconds, "peak_rss_mb": [rss]})
                self._line("no-atomic", attempt, rows, results["no_atomic"][-1])
                results["distribute"].append(_distributed(backup, options["workers"]))
                self._line(f"distribute x{options['workers']}", attempt, rows, results["distribute"][-1])
        summary = {
            way: {
                "rows": rows,
                "seconds_median": statistics.median(r["seconds"] for r in runs),
                "rows_per_s_median": rows / statistics.median(r["seconds"] for r in runs),
                "peak_rss_mb_median": [
                    statistics.median(r["peak_rss_mb"][i] for r in runs) for i in range(len(runs[0]["peak_rss_mb"]))
                ],
                "runs": runs,
            }
            for way, runs in results.items()
        }
        ratio = summary["no_atomic"]["seconds_median"] / summary["distribute"]["seconds_median"]
        self.stdout.write(
            f"median: no-atomic {summary['no_atomic']['seconds_median']:.2f} s, distribute "
            f"{summary['distribute']['seconds_median']:.2f} s: {ratio:.2f}x"
        )
        if options["json"]:
            Path(options["json"]).write_text(json.dumps({**summary, "speedup": ratio}, indent=2))

    def _line(self, way: str, attempt: int, rows: int, result: dict) -> None:
        rss = " ".join(f"{mb:.0f}" for mb in result["peak_rss_mb"])
        self.stdout.write(
            f"{way:<14} #{attempt + 1} {result['seconds']:8.2f} s {rows / result['seconds']:10.0f} rows/s  "
            f"peak RSS MB {rss}"
        )


def _restore(backup: Path, *flags: str) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "manage.py"),
        "restore_backup",
        str(backup),
        "--noinput",
        "--no-safety-backup",
        "-v",
        "0",
        *flags,
    ]


def _distributed(backup: Path, count: int) -> dict:
    """One --distribute restore with ``count`` fresh workers: seconds (the command, --wait
    included) and the peak RSS of each worker, counting its work horses."""
    import psutil

    settings_json = json.dumps(
        {k: v for k, v in settings.DBRESTORE.items() if k in ("CHUNK_BYTES", "DISTRIBUTE_RETRIES")}
    )
    peaks = [0] * count
    with rq_workers(count, DBRESTORE_SETTINGS_JSON=settings_json) as workers:
        time.sleep(1)  # Django set up in each: not the restore's time
        started = time.perf_counter()
        command = subprocess.Popen(
            _restore(backup, "--no-atomic", "--distribute", "--wait"),
            cwd=ROOT,
            env={**os.environ, "DATABASE_URL": database_url(), "DBRESTORE_SETTINGS_JSON": settings_json},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        while command.poll() is None:
            for index, worker in enumerate(workers):
                try:
                    tree = [worker, *worker.children(recursive=True)]
                    peaks[index] = max(peaks[index], *(process.memory_info().rss for process in tree))
                except psutil.Error:
                    pass
            time.sleep(0.02)
        seconds = time.perf_counter() - started
    if command.returncode != 0:
        raise CommandError(f"the distributed restore failed: {command.stderr.read().decode()[-500:]}")
    return {"seconds": seconds, "peak_rss_mb": [peak / 1024 / 1024 for peak in peaks]}
