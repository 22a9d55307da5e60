# dfdet: the whole study as one rule per artifact. `make demo` runs it on the embedded synthetic corpus.
.DELETE_ON_ERROR:
SHELL := /bin/bash

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DFDET := $(BIN)/dfdet -q
JOBS ?= 2
SHARED ?= ../shared
SEED154 ?= $(SHARED)/data/seed154-asvspoof2019la/features_robust.npz

.PHONY: all venv test lint bench demo clean

all: demo

# A local virtual environment; torch's CPU wheel is pinned first so pip never pulls a multi-GB CUDA build.
$(BIN)/dfdet: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev,app]'
	touch $@

venv: $(BIN)/dfdet

test: venv
	$(BIN)/python -m pytest -q -n 2 --dist loadfile tests

lint: venv
	$(BIN)/ruff check dfdet tests benchmarks
	$(BIN)/ruff format --check dfdet tests benchmarks

bench: venv
	$(BIN)/python benchmarks/featurize.py

# ---- the demo study (grows as commands land) ----
DEMO := demo
CORPUS := $(DEMO)/corpus

$(CORPUS)/labels.csv: | venv
	$(DFDET) demo-corpus $(CORPUS)

$(DEMO)/lab.h5: $(CORPUS)/labels.csv
	$(DFDET) featurize --labels $(CORPUS)/lab.csv -j $(JOBS) -o $@

$(DEMO)/wild.h5: $(CORPUS)/labels.csv
	$(DFDET) featurize --labels $(CORPUS)/wild.csv -j $(JOBS) -o $@

demo: $(DEMO)/lab.h5 $(DEMO)/wild.h5
	$(BIN)/dfdet info $(DEMO)/lab.h5
	$(BIN)/dfdet info $(DEMO)/wild.h5

clean:
	rm -rf $(DEMO)
