# ics-peer-discovery: one entry point for install, tools, lint and tests.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help install tools tools-path proto lint test test-unit ci clean

help:
	@echo "make test        install what is needed and run the whole test suite"
	@echo "make install     virtualenv + editable install with dev tools"
	@echo "make tools       build/install external binaries (cached outside the repo)"
	@echo "make tools-path  print the directory holding those binaries"
	@echo "make lint        ruff + mypy strict"
	@echo "make ci          install + tools + lint + test"

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

tools:
	scripts/tools.sh

tools-path:
	@scripts/tools.sh --path

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

test: install tools
	ICS_TOOLS_BIN="$$(scripts/tools.sh --path)" $(BIN)/pytest

test-unit: install
	$(BIN)/pytest tests/unit

ci: install tools lint test

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
