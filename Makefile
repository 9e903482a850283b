# Quick start: `make demo` (set up, migrate, write a sample backup, restore it) and `make test`.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
ROWS ?= 10000

.PHONY: demo test install clean

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

test: install
	VENV=$(VENV) bash tests/run.sh

clean:
	rm -rf $(VENV) db.sqlite3 test_db.sqlite3 backups/sample
