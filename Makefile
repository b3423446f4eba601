# A newcomer's targets: make demo, make test, make lint, make bench.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: setup
	bash scripts/demo.sh

test: setup
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check mailer tests bench
	$(BIN)/ruff format --check mailer tests bench
	$(BIN)/mypy

bench: setup
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) demo build .pytest_cache .mypy_cache .ruff_cache
