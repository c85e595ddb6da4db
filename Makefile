# Two entry points for a fresh machine (see README):
#   make quickstart   set up, then fit and score on real offline images
#   make test         set up, then run the linters and the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Spinning OpenMP threads make small convolutions many times slower on small VMs.
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: setup quickstart test lint

setup: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	bash .ci/setup
	touch $(STAMP)

quickstart: $(STAMP)
	$(BIN)/python examples/quickstart.py

lint: $(STAMP)
	$(BIN)/ruff check $(wildcard skmsc tests examples benchmarks docs)

test: lint
	$(BIN)/python -m pytest
