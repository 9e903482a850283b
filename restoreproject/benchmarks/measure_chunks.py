"""Measure --no-atomic restores: the starting commit (no chunks) against chunked checkpoints,
and --jobs 1 against --jobs 2 (worker processes). Runs alternate (noisy machine); medians of
``--repeat`` runs; peak RSS per process sampled from /proc every 50 ms.

    .venv/bin/python restoreproject/benchmarks/measure_chunks.py --backup /tmp/sample-1m \\
        --url postgres://postgres@127.0.0.1:5432/NAME --base-dir /tmp/base --base-url postgres://.../BASE

``--base-dir`` holds the starting commit's tree (``git archive adc0b94 | tar -x -C DIR``), migrated
into ``--base-url`` (a database of its own: it lacks this branch's migration).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        todo.extend(int(child) for child in children)
    return found


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(argv: list[str], cwd: Path, url: str) -> tuple[float, dict[int, float], float]:
    """Wall seconds, peak RSS per process, and the CPU seconds of the restore and its workers
    (less noisy than the wall clock on a busy machine; the server's CPU is not in it)."""
    env = {**os.environ, "DATABASE_URL": url, "DBRESTORE_BACKUP_DIR": "/tmp/dbrestore-measure-backups"}
    cpu = _cpu()
    started = time.monotonic()
    process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peaks: dict[int, float] = {}
    while process.poll() is None:
        for pid in tree(process.pid):
            peaks[pid] = max(peaks.get(pid, 0.0), rss_mb(pid))
        time.sleep(0.05)
    seconds = time.monotonic() - started
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {process.stderr.read()[-2000:]}")
    return seconds, {pid: mb for pid, mb in peaks.items() if mb > 0}, _cpu() - cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backup", required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--base-dir", default=None)
    parser.add_argument("--base-url", default=None)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--configs", default="base,chunked,jobs2")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    rows = sum(t["rows"] for t in json.loads((Path(args.backup) / "manifest.json").read_text())["tables"])
    common = ["manage.py", "restore_backup", args.backup, "--noinput", "--no-atomic", "--no-safety-backup", "-v", "0"]
    configs = {
        "base": ([sys.executable, *common], Path(args.base_dir or ROOT), args.base_url),
        "chunked": ([sys.executable, *common], ROOT, args.url),
        "jobs2": ([sys.executable, *common, "--jobs", "2"], ROOT, args.url),
        "chunked-8m": ([sys.executable, *common, "--chunk-bytes", str(8 * 1024**2)], ROOT, args.url),
        "jobs2-8m": ([sys.executable, *common, "--jobs", "2", "--chunk-bytes", str(8 * 1024**2)], ROOT, args.url),
    }
    chosen = [name for name in args.configs.split(",") if name]
    results: dict[str, list] = {name: [] for name in chosen}
    for attempt in range(args.repeat):
        for name in chosen:  # alternating, so that the machine's noise falls on each alike
            argv, cwd, url = configs[name]
            seconds, peaks, cpu = run(argv, cwd, url)
            results[name].append((seconds, peaks, cpu))
            print(
                f"{attempt + 1} {name:<8} {seconds:7.2f} s {rows / seconds:9.0f} rows/s {cpu:6.1f} CPU s  "
                "peak RSS per process (MB): "
                f"{', '.join(f'{mb:.0f}' for mb in sorted(peaks.values(), reverse=True))}",
                flush=True,
            )
    summary = {}
    for name, runs in results.items():
        median = statistics.median(seconds for seconds, _, _ in runs)
        biggest = max(max(peaks.values()) for _, peaks, _ in runs)
        summary[name] = {
            "median_s": round(median, 2),
            "rows_per_s": round(rows / median),
            "runs_s": [round(s, 2) for s, _, _ in runs],
            "median_cpu_s": round(statistics.median(cpu for _, _, cpu in runs), 2),
            "peak_rss_mb_per_process": sorted((round(mb) for mb in runs[-1][1].values()), reverse=True),
            "largest_process_mb": round(biggest),
        }
    print(json.dumps(summary, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "results": summary}, indent=2))


if __name__ == "__main__":
    main()
