# Quick start: `make demo` (set up, migrate, write a sample backup, restore it) and `make test`
# (lint and types, the release build and the docs checked, then the whole suite on SQLite and PostgreSQL).
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
ROWS ?= 10000

.PHONY: demo test lint format check-dist docs install clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

demo: install
	$(PY) manage.py migrate --noinput -v 0
	rm -rf backups/sample
	$(PY) manage.py make_sample_backup --rows $(ROWS) --output backups/sample
	$(PY) manage.py restore_backup backups/sample --noinput --batch-size 500

test: install lint check-dist docs
	VENV=$(VENV) bash tests/run.sh

# What CI and the pre-commit hooks run: any finding fails.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The sdist and the wheel as they would be published, checked.
check-dist: install
	rm -rf dist
	$(PY) -m build --outdir dist . > /dev/null
	$(VENV)/bin/twine check --strict dist/*
	$(PY) .ci/check_wheel.py dist/*.whl

# The documentation (docs/, mkdocs.yml) built as it would be published: a broken link fails it.
docs: install
	$(VENV)/bin/mkdocs build --strict --site-dir site -q

clean:
	rm -rf $(VENV) db.sqlite3 test_db.sqlite3 backups/sample dist site
