# dfdet: the whole study as one rule per artifact (works with make -j2).
#   make demo                         the study on the embedded synthetic corpus -> report/index.html
#   make test                         the test suite (what CI runs)
#   make seed-study SEED154=...npz    the study on the original 3000x154 feature matrix, both protocols
#   make reproduce ASVSPOOF=/path/LA ITW=/path/release_in_the_wild    the study on the real corpora
.DELETE_ON_ERROR:
# Every artifact is kept (pattern-rule outputs would otherwise be deleted as intermediates).
.SECONDARY:
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DFDET = $(BIN)/dfdet -q --seed $(SEED)
SEED ?= 42
JOBS ?= 2
SHARED ?= ../shared
SEED154 ?= $(SHARED)/data/seed154-asvspoof2019la/features_robust.npz
OPTIMIZERS := sgd adam adamw rmsprop sam
OPT_NAMES := sgd,adam,adamw,rmsprop,sam
EPS := 0,0.05,0.1,0.15,0.2

.PHONY: all venv test lint bench demo seed-study reproduce app clean clean-demo

all: demo

# A local virtual environment; torch's CPU wheel first, so pip never pulls a multi-GB CUDA build.
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
	$(BIN)/python benchmarks/train.py --data $(SEED154)
	$(BIN)/python benchmarks/score.py

# ---------------------------------------------------------------------------------------------------------------
# The demo study. D is its work directory; `make demo D=elsewhere REPORT=elsewhere/report` moves it.
D ?= demo
REPORT ?= report

$(D)/corpus/labels.csv: | venv
	$(DFDET) demo-corpus $(D)/corpus > /dev/null

$(D)/feats/lab.h5 $(D)/feats/wild.h5: $(D)/feats/%.h5: $(D)/corpus/labels.csv
	$(DFDET) featurize --labels $(D)/corpus/$*.csv -j $(JOBS) -o $@

# lab: speaker-disjoint train / validation (early stopping, threshold, calibration) / test.
# wild: a labelled calibration slice and a disjoint test slice (speaker-disjoint).
$(D)/split/lab_train.h5 $(D)/split/lab_val.h5 $(D)/split/lab_test.h5 &: $(D)/feats/lab.h5
	$(DFDET) split $< --parts train=0.6,val=0.2,test=0.2 --group-by speaker --out-pattern '$(D)/split/lab_{part}.h5'
$(D)/split/wild_cal.h5 $(D)/split/wild_test.h5 &: $(D)/feats/wild.h5
	$(DFDET) split $< --parts cal=0.4,test=0.6 --group-by speaker --out-pattern '$(D)/split/wild_{part}.h5'

$(D)/models/%.pt: $(D)/split/lab_train.h5 $(D)/split/lab_val.h5
	$(DFDET) train $< --val $(D)/split/lab_val.h5 --optimizer $* -o $@

.SECONDEXPANSION:
$(D)/scores/%.tsv: $$(D)/models/$$(firstword $$(subst ., ,$$*)).pt $$(D)/split/$$(lastword $$(subst ., ,$$*)).h5
	$(DFDET) score $^ -o $@

# Calibrate each model on lab validation scores; fuse the five models on lab validation (in-domain) and on the
# wild calibration slice (domain-shift correction), then apply both fusions to the disjoint test slices.
$(D)/cal/%.json: $(D)/scores/%.lab_val.tsv
	$(DFDET) calibrate $< --detector $(D)/models/$*.pt --threshold eer -o $@
$(D)/ens/%.json: $(foreach o,$(OPTIMIZERS),$(D)/scores/$(o).%.tsv)
	$(DFDET) ensemble $(foreach f,$^,--scores $(f)) --names $(OPT_NAMES) --method auc2 --cv 5 --in-sample -o $@
$(D)/scores/ens_lab.lab_test.tsv: $(D)/ens/lab_val.json $(foreach o,$(OPTIMIZERS),$(D)/scores/$(o).lab_test.tsv)
	$(DFDET) ensemble --apply $< $(foreach f,$(wordlist 2,99,$^),--scores $(f)) -o $@
$(D)/scores/ens_lab.wild_test.tsv: $(D)/ens/lab_val.json $(foreach o,$(OPTIMIZERS),$(D)/scores/$(o).wild_test.tsv)
	$(DFDET) ensemble --apply $< $(foreach f,$(wordlist 2,99,$^),--scores $(f)) -o $@
$(D)/scores/ens_wild.wild_test.tsv: $(D)/ens/wild_cal.json $(foreach o,$(OPTIMIZERS),$(D)/scores/$(o).wild_test.tsv)
	$(DFDET) ensemble --apply $< $(foreach f,$(wordlist 2,99,$^),--scores $(f)) -o $@

TEST_SCORES := $(foreach o,$(OPTIMIZERS),$(D)/scores/$(o).lab_test.tsv $(D)/scores/$(o).wild_test.tsv) \
	$(D)/scores/ens_lab.lab_test.tsv $(D)/scores/ens_lab.wild_test.tsv $(D)/scores/ens_wild.wild_test.tsv
$(D)/eval/in_domain.json: $(filter %.lab_test.tsv,$(TEST_SCORES))
	$(DFDET) evaluate $^ --by system --ci 0.95 --bootstrap 200 --json -o $@
$(D)/eval/out_of_domain.json: $(filter %.wild_test.tsv,$(TEST_SCORES))
	$(DFDET) evaluate $^ --by system --ci 0.95 --bootstrap 200 --json -o $@

$(D)/landscape/%.json: $(D)/models/%.pt $(D)/split/lab_train.h5
	$(DFDET) landscape $^ --max-rows 1000 -o $@

DEMO_ARTIFACTS = $(foreach o,$(OPTIMIZERS),$(D)/models/$(o).pt $(D)/cal/$(o).json $(D)/landscape/$(o).json) \
	$(TEST_SCORES) $(D)/ens/lab_val.json $(D)/ens/wild_cal.json $(D)/eval/in_domain.json $(D)/eval/out_of_domain.json

$(REPORT)/index.html: $(DEMO_ARTIFACTS)
	$(DFDET) report $(D)/models $(D)/scores $(D)/cal $(D)/ens $(D)/eval $(D)/landscape $(wildcard $(D)/explain $(D)/attack) \
		--title "dfdet demo study (synthetic corpus)" -o $(REPORT)

demo: $(REPORT)/index.html
	@echo "report: $(abspath $(REPORT)/index.html)"

clean-demo:
	rm -rf $(D) $(REPORT)

clean: clean-demo
	rm -rf seed-study reproduce
