# A newcomer's targets: make demo, make test, make lint, make bench.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
JS := tests/js

.PHONY: setup demo test lint bench messages clean

setup: $(STAMP)

$(STAMP): pyproject.toml $(JS)/package-lock.json
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@# The email checkers the tests run (caniemail data, axe-core), pinned by the lock file.
	@if command -v npm >/dev/null 2>&1; then npm ci --prefix $(JS) --no-audit --no-fund --silent; \
	else echo "npm not found: the caniemail/axe-core tests will skip (apt-get install npm)"; fi
	touch $(STAMP)

demo: setup
	bash scripts/demo.sh

test: setup
	@# One worker per core: most tests wait on real servers (SMTP, IMAP, HTTP, a browser).
	$(BIN)/pytest -q -n auto

lint: setup
	$(BIN)/ruff check mailer tests bench
	$(BIN)/ruff format --check mailer tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

# After changing a translatable string: refresh the template and every catalog's msgids.
messages: setup
	$(BIN)/pybabel extract -F babel.cfg -k _ -k gettext --no-location --omit-header --sort-output -o mailer/locale/mailer.pot .
	for po in mailer/locale/*.po; do \
	  $(BIN)/pybabel update -i mailer/locale/mailer.pot -o $$po -l $$(basename $$po .po) --no-fuzzy-matching -w 100; \
	done

bench: setup
	@# Byte-compiled, as a pip install leaves it (the editable install and
	@# PYTHONDONTWRITEBYTECODE would have every measured run compile mailer from source).
	$(BIN)/python -m compileall -q mailer
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) $(JS)/node_modules demo build .pytest_cache .mypy_cache .ruff_cache
