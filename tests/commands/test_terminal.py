"""The command line as a person sees it: the question, phases, bars, verbosity, --help."""

from __future__ import annotations

import io
import os
import select
import subprocess
import sys
import time

import pytest

from dbrestore import restore
from dbrestore.runs.progress import ConsoleProgress
from restoreproject.shop.models import Customer, Tag
from tests.support.paths import ROOT

pytestmark = pytest.mark.django_db(transaction=True)

PHASES = [
    "checking the data files against the manifest",
    "safety backup of",
    "emptying",
    "loading 7 tables",
    "checking foreign keys",
    "verifying row counts",
]


def manage(*args, env, stdin=subprocess.DEVNULL, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *map(str, args)],
        cwd=ROOT,
        env=env,
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        **kwargs,
    )


def test_no_terminal_and_no_noinput_is_a_clear_refusal(sample_backup, subprocess_env):
    Tag.objects.create(name="there-before")
    done = manage("restore_backup", sample_backup(rows=100), env=subprocess_env())
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "CommandError: there is no terminal to confirm on: pass --noinput to restore without asking"
    )
    assert "Traceback" not in done.stderr
    assert list(Tag.objects.values_list("name", flat=True)) == ["there-before"] and not Customer.objects.exists()


def test_end_of_input_at_the_question(sample_backup, subprocess_env):
    """A real terminal (a pty) on stdin; the user presses Ctrl-D at the question."""
    Tag.objects.create(name="there-before")
    master, slave = os.openpty()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "restore_backup", str(sample_backup(rows=100))],
        cwd=ROOT,
        env=subprocess_env(),
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    os.close(slave)
    try:
        seen = ""
        deadline = time.monotonic() + 60
        while "Type 'yes'" not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([process.stdout], [], [], 1)
            if ready:
                seen += os.read(process.stdout.fileno(), 4096).decode()
        assert "empties these tables first" in seen and "shop_customer" in seen
        os.write(master, b"\x04")  # Ctrl-D: end of input
        _, err = process.communicate(timeout=60)
    finally:
        os.close(master)
    assert process.returncode == 1
    assert "end of input at the question: nothing was restored; pass --noinput" in err and "Traceback" not in err
    assert list(Tag.objects.values_list("name", flat=True)) == ["there-before"] and not Customer.objects.exists()


def test_phases_and_bars_on_a_terminal(sample_backup):
    backup = sample_backup(rows=300)
    restore(backup, safety_backup=False)  # tables with rows in them: the next restore backs them up
    stream = io.StringIO()
    restore(backup, listeners=[ConsoleProgress(stream, verbosity=1, tty=True)])
    out = stream.getvalue()
    lines = [line for line in out.replace("\r", "\n").splitlines() if line.startswith("- ")]
    assert [any(line.startswith("- " + phase) for line in lines) for phase in PHASES] == [True] * len(PHASES)
    # phases in the order they happen, each shown once
    positions = [out.index("- " + phase) for phase in PHASES]
    assert positions == sorted(positions)
    assert "all tables" in out and "rows/s" in out and "shop.OrderItem" in out  # the overall bar and a table bar
    total = Customer.objects.count()
    assert total == 30


def test_periodic_lines_without_a_terminal_show_the_whole_restore(sample_backup):
    stream = io.StringIO()
    restore(sample_backup(rows=300), listeners=[ConsoleProgress(stream, verbosity=1, tty=False, interval=0)])
    out = stream.getvalue()
    assert "- loading 7 tables..." in out
    line = next(line for line in out.splitlines() if line.startswith("shop.OrderItem:"))
    assert "; all tables " in line and "rows/s" in line


def test_verbosity_levels(sample_backup, run_command):
    backup = sample_backup(rows=100)
    _, err0 = run_command("restore_backup", backup, "--noinput", verbosity=0)
    _, err2 = run_command("restore_backup", backup, "--noinput", verbosity=2)
    _, err3 = run_command("restore_backup", backup, "--noinput", verbosity=3)
    assert err0 == ""
    assert "- loading 7 tables..." in err2 and "batch:" not in err2 and "shop.Customer: 10 rows (10 inserted" in err2
    assert "batch: shop.Customer 10 rows read, 10 inserted" in err3
    assert "(loading 7 tables: " in err3  # the time each phase took


def test_create_backup_quiet_at_verbosity_0(sample_backup, run_command, tmp_path, subprocess_env):
    run_command("restore_backup", sample_backup(rows=100), "--noinput")
    done = manage("create_backup", "--output", tmp_path / "b", "-v", "0", env=subprocess_env())
    assert done.returncode == 0 and done.stdout == "" and done.stderr == ""
    assert (tmp_path / "b" / "manifest.json").exists()
    out, _ = run_command("create_backup", "--output", tmp_path / "c")
    assert out.startswith("Backed up ")


def test_help_names_every_source_kind_and_the_exit_codes(subprocess_env):
    done = manage("restore_backup", "--help", env=subprocess_env())
    text = " ".join(done.stdout.split())
    for kind in [
        "dbrestore backup directory",
        "plain directory",
        "single <table>.json",
        "keyed by table",
        "dumpdata",
        "rejects file",
        "pg_dump",
        "custom format",
        "directory dump",
        "name of a backup",
        ".gz, .bz2 or .xz",
    ]:
        assert kind in text, kind
    for code in ["0 every row restored", "1 failed or refused", "2 bad command-line usage", "3 finished with rejected"]:
        assert code in text, code
    assert "--all" in text and "-v 0 prints only errors" in text


def test_restore_status_lists_tables_in_restore_order(sample_backup, run_command):
    import json

    from dbrestore.models import RestoreRun

    run_command("restore_backup", sample_backup(rows=100), "--noinput")
    run = RestoreRun.objects.get()
    order = [label for label, _ in sorted(run.tables.items(), key=lambda item: item[1]["position"])]
    assert order[0] in ("shop.Category", "shop.Tag") and order[-1] == "shop.OrderItem"
    out, _ = run_command("restore_status", run.pk)
    listed = [line.split(":")[0].strip() for line in out.splitlines()[1:] if line.startswith("  shop.")]
    assert listed == order
    out, _ = run_command("restore_status", run.pk, "--json")
    assert list(json.loads(out)["tables"]) == order
