# Two entry points for a fresh machine (see README):
#   make quickstart   set up, then fit and score on real offline images
#   make test         set up, then run the linters, build the docs and run the whole test suite
#                     (it also installs Chromium, as root, for the docs rendering test)
#   make test-fast    the linters and the tests not marked slow (about 2 min on 2 cores)
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

# The quicker loop while changing code (128-146 s on 2 cores, 876 tests): lint, then
# every test not marked slow, without the docs build. `make test` still runs everything.
test-fast: lint
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -m "not slow"
