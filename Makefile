# Every target builds .venv from pyproject.toml when it is missing or stale, so a fresh
# clone needs nothing but `make demo` or `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-unit test-integration test-e2e bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip setuptools wheel
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/atelier demo

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile

test-unit: $(STAMP)
	$(BIN)/python -m pytest -m unit

test-integration: $(STAMP)
	$(BIN)/python -m pytest -m integration

test-e2e: $(STAMP)
	$(BIN)/python -m pytest -m e2e

bench: $(STAMP)
	$(BIN)/python bench/gatys.py
	$(BIN)/python bench/catalog.py
	$(BIN)/python bench/orchestration.py

clean:
	rm -rf $(VENV) .atelier .pytest_cache
