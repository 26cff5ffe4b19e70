# speechret: the README's two commands.  Both are idempotent and work on a fresh machine with
# nothing but python3 (>= 3.11): they create .venv, install the package with its pinned
# dependencies (espeak-ng for the default corpus comes from the espeakng-loader wheel), then run.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.speechret-installed
PYTEST_ARGS ?=

.PHONY: demo test setup bench clean-venv

demo: setup
	$(BIN)/python -m speechret.demo

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

setup: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall whenever pyproject.toml changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e ".[dev]"
	touch $(STAMP)

bench: setup
	$(BIN)/python bench/features_throughput.py

clean-venv:
	rm -rf $(VENV)
