# speechret: the README's two commands.  Both are idempotent and work on a fresh machine with
# nothing but python3 (>= 3.11) and make: they create .venv, install exactly what uv.lock records
# (every package, transitive ones included, at an exact version with hashes; espeak-ng for the
# default corpus comes from the espeakng-loader wheel), then run.
#
#   make demo | make test   install from the lock (a no-op when .venv already matches it), run
#   make demo DEMO_ARGS="data=dspspeech20 data.root=../shared/data/dspspeech20"   demo with overrides
#   make wheel              build dist/speechret-*.whl (configs and the `speechret` command inside)
#   make lock               re-resolve every package within pyproject.toml's ranges, rewrite uv.lock
#   make setup EXTRAS="--extra sweep"   also install an optional group (sweep: Optuna)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
UV     := $(BIN)/uv
PYTEST_ARGS ?=
DEMO_ARGS ?=
EXTRAS ?=

# uv works in $(VENV) and never downloads a Python of its own: it uses the one the venv was made with.
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON_DOWNLOADS := never

.PHONY: demo test setup lock bench wheel clean-venv

# = `speechret demo $(DEMO_ARGS)` (the console script that `setup` installs into .venv/bin)
demo: setup
	$(BIN)/python -m speechret.apps.demo $(DEMO_ARGS)

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# --locked: install uv.lock as it is, and fail (instead of silently re-resolving) when
# pyproject.toml has changed since the lock was written.  `dev` holds pytest and uv itself, so
# the sync keeps the uv it runs from.
setup: | $(UV)
	$(UV) sync --locked --extra dev $(EXTRAS)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Bootstrap: the uv release that uv.lock records, hash-checked, installed with the venv's pip.
# Later `uv sync` runs keep it at the locked version.
$(UV): | $(BIN)/python
	$(BIN)/python tools/uv_requirement.py uv.lock > $(VENV)/uv-requirement.txt
	$(BIN)/python -m pip install --disable-pip-version-check --no-deps --require-hashes \
		-r $(VENV)/uv-requirement.txt

# Run after changing dependencies in pyproject.toml, when moving the torch/torchaudio pair
# ([tool.uv] constraint-dependencies), or to take upstream releases on purpose; then `make test`
# and commit pyproject.toml and uv.lock together.
lock: | $(UV)
	$(UV) lock --upgrade

# With the locked setuptools, no build isolation: no download.
wheel: setup
	$(UV) build --wheel --no-build-isolation --offline --python $(BIN)/python --out-dir dist

bench: setup
	$(BIN)/python bench/features_throughput.py

clean-venv:
	rm -rf $(VENV)
