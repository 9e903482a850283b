"""The wheel holds the app and what it needs at run time (templates, static files, migrations,
py.typed), and nothing of the demo project or the tests. Exits 1 naming what is wrong."""

import sys
import zipfile

REQUIRED = [
    "dbrestore/py.typed",
    "dbrestore/migrations/0001_initial.py",
    "dbrestore/static/dbrestore/dbrestore.css",
    "dbrestore/templates/admin/dbrestore/progress.html",
    "dbrestore/management/commands/restore_backup.py",
]


def main(path: str) -> int:
    names = zipfile.ZipFile(path).namelist()
    problems = [f"missing {name}" for name in REQUIRED if name not in names]
    tops = {name.split("/")[0] for name in names}
    problems += [f"holds {top}/" for top in sorted(tops) if top != "dbrestore" and not top.endswith(".dist-info")]
    for problem in problems:
        print(f"{path}: {problem}", file=sys.stderr)
    if not problems:
        print(f"{path}: {len(names)} files, the app only")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(max(main(path) for path in sys.argv[1:]))
