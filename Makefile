# Two entry points for a fresh machine (see README):
#   make quickstart   set up, then fit and score on real offline images
#   make test         set up, then run the linters, build the docs and run the whole test suite
#                     (it also installs Chromium, as root, for the docs rendering test)
#   make test-fast    the linters and the tests not marked slow, on every core
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Spinning OpenMP threads make small convolutions many times slower on small VMs.
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: setup quickstart test test-fast lint docs chromium

setup: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	bash .ci/setup
	touch $(STAMP)

quickstart: $(STAMP)
	$(BIN)/python examples/quickstart.py

lint: $(STAMP)
	$(BIN)/ruff check $(wildcard skmsc tests examples benchmarks docs)

# The docs, warnings as errors; this also runs the gallery's examples/plot_*.py.
docs: $(STAMP)
	@start=$$(date +%s); \
	$(BIN)/python -m sphinx -E -W --keep-going -q -b html docs docs/_build/html && \
	echo "docs built in $$(( $$(date +%s) - start )) s: docs/_build/html/index.html"

# Headless Chromium for the docs rendering test only: never part of quickstart.
chromium:
	bash .ci/chromium

test: lint docs chromium
	$(BIN)/python -m pytest

# The quicker loop while changing code: lint, then every test not marked slow, without
# the docs build, in one single-threaded worker per core (pytest-xdist; at most 4: each
# worker holds torch and its own session fixtures, about 2 GB at peak). `make test` still
# runs everything, in one process on two threads.
test-fast: lint
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -m "not slow" -n auto --maxprocesses 4 \
		--dist worksteal
