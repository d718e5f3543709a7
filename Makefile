# Two commands for a fresh machine: `make repro` (the whole pipeline on the embedded data) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# DVC keeps per-repo state outside the repo by default; keep it here and send no analytics.
export DVC_NO_ANALYTICS := 1
export DVC_SITE_CACHE_DIR := $(CURDIR)/.dvc/tmp/site-cache

.PHONY: setup repro test bench params
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

# Stage commands call `python`: the venv's.
repro: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

test: setup
	$(BIN)/python -m pytest -n 2 --dist loadfile --durations=15

bench: setup
	$(BIN)/python -m pytest benchmarks --benchmark-enable -p no:xdist

params: setup
	$(BIN)/a2i params
