# The two commands a newcomer types (see README.md):
#   make run    set up and run the appliance (all roles, SQLite, demo data)
#   make test   set up everything the tests need and run them
SHELL := /bin/bash
# Debian's own Python 3.11 (the appliance's and the Vagrant machines' OS),
# not whichever python3 comes first in PATH: Debian builds it with
# profile-guided optimisation and libpython linked into the executable, and
# the engine took 26% less CPU per authorization on it than on a pyenv
# 3.11.7 built --enable-shared without PGO (bench/bench_engine_cpu.py, 167
# against 227 us, one sitting). A virtualenv made before keeps its own.
PYTHON ?= $(shell for p in /usr/bin/python3.11 python3.11 python3; do \
	command -v $$p && break; done)
VENV ?= .venv
BIN := $(VENV)/bin
RUN_DIR ?= run

.PHONY: setup system-deps venv plugins test test-fast lint typecheck run reset-demo bench clean help

help:
	@echo "make run     set up and run the appliance in the foreground (Ctrl-C stops it)"
	@echo "make test    set up (apt packages, virtualenv, MariaDB binaries) and run the tests"
	@echo "make test-fast  the unit tier only (pure tests, no servers): seconds"
	@echo "make reset-demo  give the demo accounts their opening balances back (make run may run)"
	@echo "make bench   run the benchmarks in bench/ (prints figures)"
	@echo "make lint    ruff and mypy"

setup: system-deps venv plugins

system-deps:
	@scripts/install-system-deps.sh

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip
	@$(BIN)/python -m pip install -q -e '.[test]'
	@touch $@

# check_vigil_* in /usr/lib/nagios/plugins for a stock Nagios/NRPE (docs/plugins.md); root only
plugins: venv
	@if [ "$$(id -u)" -eq 0 ]; then $(BIN)/vigil plugins install >/dev/null; \
	else echo "not root: skipping 'vigil plugins install' (sudo make plugins)"; fi

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy

typecheck: venv
	$(BIN)/mypy

test: setup
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# no apt, no MariaDB: the unit tier needs only the virtualenv
test-fast: venv
	$(BIN)/python -m pytest -m unit -q $(PYTEST_ARGS)

run: setup
	@scripts/run-appliance.sh $(RUN_DIR)

reset-demo: venv
	@scripts/reset-demo.sh $(RUN_DIR)

bench: setup
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(RUN_DIR) .pytest_cache build *.egg-info
