"""Where things are: the checkout the tests run from."""

from __future__ import annotations

from pathlib import Path

#: The checkout's root: manage.py, README.md, docs/ (this file is tests/support/paths.py).
ROOT = Path(__file__).resolve().parents[2]
