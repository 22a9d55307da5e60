# dfdet: the whole study as one rule per artifact (works with make -j2).
#   make demo                         the study on the embedded synthetic corpus -> report/index.html
#   make test                         the test suite (what CI runs)
#   make seed-study SEED154=...npz    the study on the original 3000x154 feature matrix, both protocols
#   make reproduce ASVSPOOF=/path/LA ITW=/path/release_in_the_wild    the study on the real corpora
#   make models SHARED=../shared      rebuild the shipped detectors in models/ (bit for bit on the same CPU)
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
RS_LABELS ?= $(SHARED)/data/realspeech/labels.csv
OPTIMIZERS := sgd adam adamw rmsprop sam
OPT_NAMES := sgd,adam,adamw,rmsprop,sam
EPS := 0,0.05,0.1,0.15,0.2
CV ?= 5

.PHONY: all venv test lock lint bench demo seed-study reproduce models realspeech app clean clean-demo

all: demo

# A local virtual environment with the versions the suite passed with (constraints.txt), torch first. From the public
# index on Linux `pip install torch` is the multi-GB CUDA build; `make venv TORCH_INDEX=https://download.pytorch.org/whl/cpu`
# takes PyTorch's CPU-only wheel instead. Empty (the default): torch from pip's configured index, as any other package.
TORCH_VERSION ?= 2.13.0
TORCH_INDEX ?=
CONSTRAINTS ?= constraints.txt
$(BIN)/dfdet: pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c $(CONSTRAINTS) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) torch==$(TORCH_VERSION)
	$(BIN)/python -m pip install -q -c $(CONSTRAINTS) -e '.[dev,app]'
	touch $@

venv: $(BIN)/dfdet

# THREADS=N runs the suite with N torch/BLAS threads per test worker (CI runs it with the default and with 1, so a
# test that holds only at one thread count fails there).
THREADS ?=
THREAD_ENV = $(if $(THREADS),OMP_NUM_THREADS=$(THREADS) MKL_NUM_THREADS=$(THREADS) OPENBLAS_NUM_THREADS=$(THREADS))
test: venv
	$(THREAD_ENV) $(BIN)/python -m pytest -q -n 2 --dist loadfile tests

# Refresh constraints.txt: a fresh venv with the newest versions pyproject.toml allows, the suite, then pip freeze.
LOCK_VENV ?= .lock-venv
lock:
	rm -rf $(LOCK_VENV) && $(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install -q --upgrade pip
	$(LOCK_VENV)/bin/python -m pip install -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) torch==$(TORCH_VERSION)
	$(LOCK_VENV)/bin/python -m pip install -q -e '.[dev,app]'
	$(LOCK_VENV)/bin/python -m pytest -q -n 2 --dist loadfile tests
	{ sed -n '1,2p' $(CONSTRAINTS); $(LOCK_VENV)/bin/python -m pip freeze --exclude-editable | sed 's/+cpu$$//'; } \
		> $(CONSTRAINTS).tmp && mv $(CONSTRAINTS).tmp $(CONSTRAINTS)
	rm -rf $(LOCK_VENV)

lint: venv
	$(BIN)/ruff check dfdet tests benchmarks
	$(BIN)/ruff format --check dfdet tests benchmarks

bench: venv
	$(BIN)/python benchmarks/featurize.py
	$(BIN)/python benchmarks/train.py --data $(SEED154)
	$(BIN)/python benchmarks/heap.py --data $(SEED154)
	$(BIN)/python benchmarks/score.py
	$(BIN)/python benchmarks/degrade.py
	$(BIN)/python benchmarks/app_latency.py
	$(BIN)/python benchmarks/startup.py
	$(BIN)/python benchmarks/mixed_rate.py
	$(BIN)/python benchmarks/files_per_second.py
	$(BIN)/python benchmarks/memory.py
	$(BIN)/python benchmarks/score_contract.py
	$(BIN)/python benchmarks/explain.py
	$(BIN)/python benchmarks/lfcc.py
	$(BIN)/python benchmarks/lcnn.py
	$(BIN)/python benchmarks/augment.py
	$(BIN)/python benchmarks/asvspoof5_scale.py --n 100000 --shards 16 --run-shards 2 --jobs 1

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

# The demo corpus is small (about 140 training rows): smaller batches and more epochs than the default protocol.
DEMO_TRAIN ?= --batch-size 16 --epochs 40 --patience 10
$(D)/models/%.pt: $(D)/split/lab_train.h5 $(D)/split/lab_val.h5
	$(DFDET) train $< --val $(D)/split/lab_val.h5 --optimizer $* $(DEMO_TRAIN) -o $@

.SECONDEXPANSION:
$(D)/scores/%.tsv: $$(D)/models/$$(firstword $$(subst ., ,$$*)).pt $$(D)/split/$$(lastword $$(subst ., ,$$*)).h5
	$(DFDET) score $^ -o $@

# Calibrate each model on its lab validation scores. Fuse the five models twice: on lab validation (in-domain) and
# on the wild calibration slice (domain-shift correction); both ensembles are then scored on disjoint test slices.
$(D)/cal/%.json: $(D)/scores/%.lab_val.tsv
	$(DFDET) calibrate $< --detector $(D)/models/$*.pt --threshold eer -o $@
MODELS = $(foreach o,$(OPTIMIZERS),$(D)/models/$(o).pt)
$(D)/ens/lab.json: $$(MODELS) $(D)/split/lab_val.h5
	$(DFDET) ensemble $(foreach m,$(MODELS),--model $(m)) --on $(D)/split/lab_val.h5 --names $(OPT_NAMES) \
		--method auc2 --cv $(CV) --in-sample -o $@
$(D)/ens/wild.json: $$(MODELS) $(D)/split/wild_cal.h5
	$(DFDET) ensemble $(foreach m,$(MODELS),--model $(m)) --on $(D)/split/wild_cal.h5 --names $(OPT_NAMES) \
		--method auc2 --cv $(CV) --in-sample -o $@
$(D)/scores/ens_lab.lab_test.tsv: $(D)/ens/lab.json $(D)/split/lab_test.h5
	$(DFDET) score $^ -o $@
$(D)/scores/ens_lab.wild_test.tsv: $(D)/ens/lab.json $(D)/split/wild_test.h5
	$(DFDET) score $^ -o $@
$(D)/scores/ens_wild.wild_test.tsv: $(D)/ens/wild.json $(D)/split/wild_test.h5
	$(DFDET) score $^ -o $@

TEST_SCORES := $(foreach o,$(OPTIMIZERS) adv,$(D)/scores/$(o).lab_test.tsv $(D)/scores/$(o).wild_test.tsv) \
	$(D)/scores/ens_lab.lab_test.tsv $(D)/scores/ens_lab.wild_test.tsv $(D)/scores/ens_wild.wild_test.tsv
$(D)/eval/in_domain.json: $(filter %.lab_test.tsv,$(TEST_SCORES))
	$(DFDET) evaluate $^ --by system --ci 0.95 --bootstrap 200 --json -o $@
$(D)/eval/out_of_domain.json: $(filter %.wild_test.tsv,$(TEST_SCORES))
	$(DFDET) evaluate $^ --by system --ci 0.95 --bootstrap 200 --json -o $@

# Adversarially trained twin of the AdamW model (FGSM in standardised feature space), for the robustness table.
$(D)/models/adv.pt: $(D)/split/lab_train.h5 $(D)/split/lab_val.h5
	$(DFDET) train $< --val $(D)/split/lab_val.h5 --optimizer adamw $(DEMO_TRAIN) --adversarial fgsm:0.1 -o $@

$(D)/landscape/%.json: $(D)/models/%.pt $(D)/split/lab_train.h5
	$(DFDET) landscape $^ --max-rows 1000 -o $@

$(D)/explain/shortcuts.json: $(D)/split/lab_train.h5
	$(DFDET) explain --shortcuts $< --by-system -o $@
$(D)/explain/%.json: $(D)/models/%.pt $(D)/split/lab_test.h5
	$(DFDET) explain $^ -o $@
$(D)/explain/ens_lab.json: $(D)/ens/lab.json $(D)/split/lab_test.h5
	$(DFDET) explain $^ -o $@
$(D)/attack/%.fgsm.json: $(D)/models/%.pt $(D)/split/lab_test.h5
	$(DFDET) attack $^ --method fgsm --eps $(EPS) -o $@
$(D)/attack/%.pgd.json: $(D)/models/%.pt $(D)/split/lab_test.h5
	$(DFDET) attack $^ --method pgd --eps $(EPS) -o $@
$(D)/attack/%.degrade.json: $(D)/models/%.pt $(D)/split/lab_test.h5
	$(DFDET) attack $^ --method degrade -o $@

ROBUST := adamw sam adv
DEMO_ARTIFACTS = $(foreach o,$(OPTIMIZERS),$(D)/models/$(o).pt $(D)/cal/$(o).json $(D)/landscape/$(o).json) \
	$(TEST_SCORES) $(D)/ens/lab.json $(D)/ens/wild.json $(D)/eval/in_domain.json $(D)/eval/out_of_domain.json \
	$(D)/explain/shortcuts.json $(D)/explain/adamw.json $(D)/explain/ens_lab.json \
	$(foreach m,$(ROBUST),$(D)/attack/$(m).fgsm.json $(D)/attack/$(m).pgd.json) $(D)/attack/adamw.degrade.json

$(REPORT)/index.html: $(DEMO_ARTIFACTS)
	$(DFDET) report $(D)/models $(D)/scores $(D)/cal $(D)/ens $(D)/eval $(D)/landscape $(D)/explain $(D)/attack \
		--title "dfdet demo study (synthetic corpus)" -o $(REPORT) > /dev/null

# The study's rules run $(JOBS) at a time, one BLAS/torch thread each (no oversubscription).
demo: venv
	OMP_NUM_THREADS=1 $(MAKE) --no-print-directory -j$(JOBS) $(REPORT)/index.html
	@echo "report: $(abspath $(REPORT)/index.html)"

# The Streamlit app on the demo's artifacts (http://localhost:8501).
app: $(REPORT)/index.html
	$(BIN)/dfdet app --models $(D) --no-browser

# ---------------------------------------------------------------------------------------------------------------
# The study on the original 3000x154 matrix: the study's 80/20 split (train_test_split(..., stratify=y,
# random_state=42)), every optimizer under both protocols (`--protocol seed` = the study's full-batch focal run;
# default = mini-batches, validation hold-out for early stopping and the threshold), scored on the 20 % test part.
S ?= seed-study
SREPORT ?= $(S)/report
$(S)/split/train.h5 $(S)/split/test.h5 &: $(SEED154) | venv
	$(DFDET) split $(SEED154) --sklearn-compatible --parts train=0.8,test=0.2 -o $(S)/split
$(S)/models/seed_%.pt: $(S)/split/train.h5 $(S)/split/test.h5
	$(DFDET) train $< --test $(S)/split/test.h5 --protocol seed --optimizer $* -o $@
$(S)/models/default_%.pt: $(S)/split/train.h5 $(S)/split/test.h5
	$(DFDET) train $< --test $(S)/split/test.h5 --optimizer $* -o $@
$(S)/models/default_adv.pt: $(S)/split/train.h5 $(S)/split/test.h5
	$(DFDET) train $< --test $(S)/split/test.h5 --optimizer adamw --adversarial fgsm:0.1 -o $@
$(S)/scores/%.test.tsv: $(S)/models/%.pt $(S)/split/test.h5
	$(DFDET) score $^ -o $@
$(S)/attack/%.fgsm.json: $(S)/models/%.pt $(S)/split/test.h5
	$(DFDET) attack $^ --method fgsm --eps $(EPS) -o $@
$(S)/attack/%.pgd.json: $(S)/models/%.pt $(S)/split/test.h5
	$(DFDET) attack $^ --method pgd --eps $(EPS) -o $@
$(S)/explain/shortcuts.json: $(S)/split/train.h5
	$(DFDET) explain --shortcuts $< --group-cv -o $@
$(S)/landscape/%.json: $(S)/models/%.pt $(S)/split/train.h5
	$(DFDET) landscape $^ --max-rows 1000 -o $@
SEED_MODELS := $(foreach o,sgd adam adamw rmsprop,seed_$(o)) $(foreach o,$(OPTIMIZERS) adv,default_$(o))
SEED_ARTIFACTS = $(foreach m,$(SEED_MODELS),$(S)/scores/$(m).test.tsv) $(S)/explain/shortcuts.json \
	$(foreach m,default_adamw default_sam default_adv,$(S)/attack/$(m).fgsm.json $(S)/attack/$(m).pgd.json) \
	$(S)/landscape/default_adam.json $(S)/landscape/default_adamw.json
$(SREPORT)/index.html: $(SEED_ARTIFACTS)
	$(DFDET) report $(S)/models $(S)/scores $(S)/explain $(S)/attack $(S)/landscape \
		--title "The optimizer study on the seed154 ASVspoof 2019 LA matrix" -o $(SREPORT) > /dev/null
seed-study: venv
	OMP_NUM_THREADS=1 $(MAKE) --no-print-directory -j$(JOBS) $(SREPORT)/index.html
	@echo "report: $(abspath $(SREPORT)/index.html)"

# ---------------------------------------------------------------------------------------------------------------
# The study on the real corpora: train on ASVspoof 2019 LA train, select and calibrate on dev, evaluate on eval;
# In-the-Wild split by speaker into a calibration half and a disjoint test half.
#   make reproduce ASVSPOOF=/data/LA ITW=/data/release_in_the_wild
R ?= reproduce
RREPORT ?= $(R)/report
ASVSPOOF ?= $(error set ASVSPOOF=/path/to/LA (the folder holding ASVspoof2019_LA_cm_protocols))
ITW ?= $(error set ITW=/path/to/release_in_the_wild (the folder holding meta.csv))
LA_PROTO = $(ASVSPOOF)/ASVspoof2019_LA_cm_protocols/ASVspoof2019.LA.cm.$(1).txt
$(R)/feats/la_train.h5: | venv
	$(DFDET) featurize --labels $(call LA_PROTO,train.trn) --audio-root $(ASVSPOOF) -j $(JOBS) --skip-bad -o $@ || [ $$? -eq 3 ]
$(R)/feats/la_dev.h5: | venv
	$(DFDET) featurize --labels $(call LA_PROTO,dev.trl) --audio-root $(ASVSPOOF) -j $(JOBS) --skip-bad -o $@ || [ $$? -eq 3 ]
$(R)/feats/la_eval.h5: | venv
	$(DFDET) featurize --labels $(call LA_PROTO,eval.trl) --audio-root $(ASVSPOOF) -j $(JOBS) --skip-bad -o $@ || [ $$? -eq 3 ]
$(R)/feats/itw.h5: | venv
	$(DFDET) featurize --labels $(ITW)/meta.csv -j $(JOBS) --skip-bad -o $@ || [ $$? -eq 3 ]
$(R)/split/itw_cal.h5 $(R)/split/itw_test.h5 &: $(R)/feats/itw.h5
	$(DFDET) split $< --parts cal=0.5,test=0.5 --group-by speaker --out-pattern '$(R)/split/itw_{part}.h5'
$(R)/models/%.pt: $(R)/feats/la_train.h5 $(R)/feats/la_dev.h5
	$(DFDET) train $< --val $(R)/feats/la_dev.h5 --optimizer $* -o $@
$(R)/scores/%.la_dev.tsv: $(R)/models/%.pt $(R)/feats/la_dev.h5
	$(DFDET) score $^ -o $@
$(R)/scores/%.la_eval.tsv: $(R)/models/%.pt $(R)/feats/la_eval.h5
	$(DFDET) score $^ -o $@
$(R)/scores/%.itw_test.tsv: $(R)/models/%.pt $(R)/split/itw_test.h5
	$(DFDET) score $^ -o $@
$(R)/cal/%.json: $(R)/scores/%.la_dev.tsv
	$(DFDET) calibrate $< --detector $(R)/models/$*.pt -o $@
R_MODELS = $(foreach o,$(OPTIMIZERS),$(R)/models/$(o).pt)
$(R)/ens/la.json: $$(R_MODELS) $(R)/feats/la_dev.h5
	$(DFDET) ensemble $(foreach m,$(R_MODELS),--model $(m)) --on $(R)/feats/la_dev.h5 --names $(OPT_NAMES) --method auc2 --cv $(CV) --in-sample -o $@
$(R)/ens/itw.json: $$(R_MODELS) $(R)/split/itw_cal.h5
	$(DFDET) ensemble $(foreach m,$(R_MODELS),--model $(m)) --on $(R)/split/itw_cal.h5 --names $(OPT_NAMES) --method logistic --cv $(CV) --in-sample -o $@
$(R)/scores/ens_la.la_eval.tsv: $(R)/ens/la.json $(R)/feats/la_eval.h5
	$(DFDET) score $^ -o $@
$(R)/scores/ens_la.itw_test.tsv: $(R)/ens/la.json $(R)/split/itw_test.h5
	$(DFDET) score $^ -o $@
$(R)/scores/ens_itw.itw_test.tsv: $(R)/ens/itw.json $(R)/split/itw_test.h5
	$(DFDET) score $^ -o $@
R_SCORES = $(foreach o,$(OPTIMIZERS),$(R)/scores/$(o).la_eval.tsv $(R)/scores/$(o).itw_test.tsv) \
	$(R)/scores/ens_la.la_eval.tsv $(R)/scores/ens_la.itw_test.tsv $(R)/scores/ens_itw.itw_test.tsv
$(R)/eval/la_eval.json: $(filter %.la_eval.tsv,$(R_SCORES))
	$(DFDET) evaluate $^ --by system --ci 0.95 --json -o $@
$(R)/eval/itw_test.json: $(filter %.itw_test.tsv,$(R_SCORES))
	$(DFDET) evaluate $^ --ci 0.95 --json -o $@
$(RREPORT)/index.html: $(R_SCORES) $(foreach o,$(OPTIMIZERS),$(R)/cal/$(o).json) $(R)/eval/la_eval.json $(R)/eval/itw_test.json
	$(DFDET) report $(R)/models $(R)/scores $(R)/cal $(R)/ens $(R)/eval \
		--title "ASVspoof 2019 LA (train/dev/eval) and In-the-Wild" -o $(RREPORT) > /dev/null
reproduce: $(RREPORT)/index.html
	@echo "report: $(abspath $(RREPORT)/index.html)"

# ---------------------------------------------------------------------------------------------------------------
# The shipped detectors: models/NAME/ (committed, and package data of the wheel), rebuilt from the shared data by
#   make models SHARED=../shared
# One torch/BLAS thread, fixed seeds: the same dfdet, torch and numpy on the same CPU rebuild every weight, threshold,
# calibration, ensemble and evaluation bit for bit (another CPU: the quoted figures within 0.02); only each artifact's `provenance` record (time, argv, host) and the paths of
# the intermediate stores under MW differ (dfdet.shipped.fingerprint leaves exactly those out; tests/test_shipped.py
# rebuilds into a temporary MODELS_OUT and compares). detector.json and MODEL_CARD.md are written by hand.
MODELS_OUT ?= models
MW ?= build/models
SHIP = OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $(DFDET)

# models/default/: the real-audio default detector (issue 12). Whole-utterance LFCC frames of every realspeech clip
# plus one seeded augmented copy each; the frame-statistics logistic regression (`logreg`, 120 means and standard
# deviations) fitted on all of them; its calibration fitted on out-of-fold scores of grouped cross-validation (no
# spoof system in both the fitting and the scored fold), at two operating points: the EER point (the default) and
# one that accepts at most 5 % of spoofs (strict.cal.json). crossval_system.json / crossval_source.json are the
# card's cross-system and leave-one-source-out figures; the former also scores 4 single-degradation copies of every
# clip (degraded.h5) with the fold model that held the clip out: the card's robustness table.
DEF = $(MODELS_OUT)/default
MWD = $(MW)/default
$(MWD)/lfcc_aug1.h5: $(RS_LABELS) | venv
	$(SHIP) featurize --recipe lfcc --labels $< --augment 1 -j 1 -o $@
$(DEF)/model.pt: $(MWD)/lfcc_aug1.h5
	$(SHIP) train $< --model logreg --val-split 0 --no-initial-state --no-history -o $@
$(MWD)/degraded.h5: $(RS_LABELS) | venv
	$(SHIP) featurize --recipe lfcc --labels $< --augment 4 --augment-max-ops 1 --augment-seed 1 -j 1 -o $@
$(DEF)/crossval_system.json: $(MWD)/lfcc_aug1.h5 $(MWD)/degraded.h5
	$(SHIP) crossval $< --group system --model logreg --degraded $(MWD)/degraded.h5 -o $@ --scores $(MWD)/oof \
		> $(MWD)/crossval_system.tsv
$(DEF)/crossval_source.json: $(MWD)/lfcc_aug1.h5
	$(SHIP) crossval $< --group source --folds logo --model logreg -o $@ > $(MWD)/crossval_source.tsv
$(DEF)/calibration.json: $(DEF)/model.pt $(DEF)/crossval_system.json
	$(SHIP) calibrate $(MWD)/oof/logreg.oof.tsv --detector $< --threshold eer -o $@
$(DEF)/strict.cal.json: $(DEF)/model.pt $(DEF)/crossval_system.json
	$(SHIP) calibrate $(MWD)/oof/logreg.oof.tsv --detector $< --threshold fpr=0.05 -o $@
$(DEF)/model.portable.npz: $(DEF)/model.pt
	$(SHIP) export $< -o $@
# (built only where the realspeech corpus is present: without it `make models` rebuilds the lab-domain folder alone)
SHIPPED_DEFAULT = $(if $(wildcard $(RS_LABELS)),$(addprefix $(DEF)/,model.pt model.portable.npz calibration.json \
	strict.cal.json crossval_system.json crossval_source.json))

# models/seed154-asvspoof2019la/: the study's CNNs on the shared 3000x154 ASVspoof 2019 LA matrix, default protocol.
# The study's 80/20 split (its 600-clip test part is never used for a choice); the training part split again 75/25
# into fit (weights) and dev (early stopping, thresholds, calibrations, ensemble fusion).
M154 = $(MODELS_OUT)/seed154-asvspoof2019la
MW154 = $(MW)/seed154
$(MW154)/train.h5 $(MW154)/test.h5 &: $(SEED154) | venv
	$(SHIP) split $(SEED154) --sklearn-compatible --parts train=0.8,test=0.2 -o $(MW154)
$(MW154)/fit.h5 $(MW154)/dev.h5 &: $(MW154)/train.h5
	$(SHIP) split $< --parts fit=0.75,dev=0.25 -o $(MW154)
$(M154)/%.pt: $(MW154)/fit.h5 $(MW154)/dev.h5 $(MW154)/test.h5
	$(SHIP) train $< --val $(MW154)/dev.h5 --test $(MW154)/test.h5 --optimizer $* --no-history --no-initial-state -o $@
$(M154)/%.cal.json: $(M154)/%.pt $(MW154)/dev.h5
	$(SHIP) calibrate --detector $< --on $(MW154)/dev.h5 --threshold eer -o $@
M154_MODELS = $(foreach o,$(OPTIMIZERS),$(M154)/$(o).pt)
$(M154)/ensemble.json: $$(M154_MODELS) $(MW154)/dev.h5
	$(SHIP) ensemble $(foreach m,$(M154_MODELS),--model $(m)) --on $(MW154)/dev.h5 --names $(OPT_NAMES) \
		--method auc2 --cv $(CV) -o $@
$(MW154)/scores/%.tsv: $(M154)/%.pt $(MW154)/test.h5
	$(SHIP) score $^ -o $@
$(MW154)/scores/%.cal.tsv: $(M154)/%.cal.json $(MW154)/test.h5
	$(SHIP) score $^ -o $@
$(MW154)/scores/ensemble.tsv: $(M154)/ensemble.json $(MW154)/test.h5
	$(SHIP) score $^ -o $@
# In-domain figures on the 600 test clips (the card quotes them).
M154_SCORES = $(foreach o,$(OPTIMIZERS),$(MW154)/scores/$(o).tsv $(MW154)/scores/$(o).cal.tsv) \
	$(MW154)/scores/ensemble.tsv
$(M154)/eval.json: $(M154_SCORES)
	$(SHIP) evaluate $^ --ci 0.95 --bootstrap 200 --json -o $@
SHIPPED_154 = $(M154_MODELS) $(foreach o,$(OPTIMIZERS),$(M154)/$(o).cal.json) $(M154)/ensemble.json $(M154)/eval.json

# Real deepfakes: grouped cross-validation on the shared realspeech corpus (issue 11), one torch/BLAS thread per job:
#   make realspeech SHARED=../shared [-j2]
# Stores of the 154-D recipe and of whole-utterance LFCC frames (plus one seeded augmented copy per clip), then
# crossval grouped by spoof system (5-fold) and by source page (leave one out); JSON, out-of-fold scores and the
# printed tables land under RS_OUT. The LCNN runs take most of the time (about 20-100 min each on one core; leave-one-source-out is the longest).
RS_OUT ?= build/realspeech
LCNN_CV = --model lcnn --batch-size 32 --epochs 12 --patience 4
LCNN_AUG_CV = --model lcnn --batch-size 32 --epochs 8 --patience 3 --chunk-frames 200  # 2x the rows: shorter chunks
$(RS_OUT)/seed154.h5: $(RS_LABELS) | venv
	$(SHIP) featurize --labels $< -j 1 -o $@
$(RS_OUT)/lfcc.h5: $(RS_LABELS) | venv
	$(SHIP) featurize --recipe lfcc --labels $< -j 1 -o $@
$(RS_OUT)/lfcc_aug1.h5: $(RS_LABELS) | venv
	$(SHIP) featurize --recipe lfcc --labels $< --augment 1 -j 1 -o $@
$(RS_OUT)/cnn154_system.json: $(RS_OUT)/seed154.h5
	$(SHIP) crossval $< --group system --model cnn -o $@ > $(@:.json=.tsv)
$(RS_OUT)/cnn154_source.json: $(RS_OUT)/seed154.h5
	$(SHIP) crossval $< --group source --folds logo --model cnn -o $@ > $(@:.json=.tsv)
$(RS_OUT)/stats_system.json: $(RS_OUT)/lfcc.h5
	$(SHIP) crossval $< --group system --model linear --model logreg --model mlp -o $@ --scores $(RS_OUT)/oof_stats \
		> $(@:.json=.tsv)
$(RS_OUT)/stats_source.json: $(RS_OUT)/lfcc.h5
	$(SHIP) crossval $< --group source --folds logo --model linear --model logreg -o $@ > $(@:.json=.tsv)
$(RS_OUT)/stats_aug_system.json: $(RS_OUT)/lfcc_aug1.h5
	$(SHIP) crossval $< --group system --model linear --model logreg --model mlp -o $@ > $(@:.json=.tsv)
$(RS_OUT)/stats_aug_source.json: $(RS_OUT)/lfcc_aug1.h5
	$(SHIP) crossval $< --group source --folds logo --model linear --model logreg -o $@ > $(@:.json=.tsv)
$(RS_OUT)/lcnn_system.json: $(RS_OUT)/lfcc.h5
	$(SHIP) crossval $< --group system $(LCNN_CV) -o $@ --scores $(RS_OUT)/oof_lcnn > $(@:.json=.tsv)
$(RS_OUT)/lcnn_source.json: $(RS_OUT)/lfcc.h5
	$(SHIP) crossval $< --group source --folds logo $(LCNN_CV) -o $@ --scores $(RS_OUT)/oof_lcnn_src > $(@:.json=.tsv)
$(RS_OUT)/lcnn_aug_system.json: $(RS_OUT)/lfcc_aug1.h5
	$(SHIP) crossval $< --group system $(LCNN_AUG_CV) -o $@ --scores $(RS_OUT)/oof_lcnn_aug > $(@:.json=.tsv)
$(RS_OUT)/lcnn_aug_source.json: $(RS_OUT)/lfcc_aug1.h5
	$(SHIP) crossval $< --group source --folds logo $(LCNN_AUG_CV) -o $@ --scores $(RS_OUT)/oof_lcnn_aug_src > $(@:.json=.tsv)
$(RS_OUT)/gmm_system.json: $(RS_OUT)/lfcc.h5
	$(SHIP) crossval $< --group system --model gmm -o $@ --scores $(RS_OUT)/oof_gmm > $(@:.json=.tsv)
$(RS_OUT)/gmm_source.json: $(RS_OUT)/lfcc.h5
	$(SHIP) crossval $< --group source --folds logo --model gmm -o $@ > $(@:.json=.tsv)
$(RS_OUT)/gmm_aug_system.json: $(RS_OUT)/lfcc_aug1.h5
	$(SHIP) crossval $< --group system --model gmm -o $@ > $(@:.json=.tsv)
$(RS_OUT)/gmm_aug_source.json: $(RS_OUT)/lfcc_aug1.h5
	$(SHIP) crossval $< --group source --folds logo --model gmm -o $@ > $(@:.json=.tsv)
RS_RESULTS = $(addprefix $(RS_OUT)/,cnn154_system.json cnn154_source.json \
	stats_system.json stats_source.json stats_aug_system.json stats_aug_source.json \
	gmm_system.json gmm_source.json gmm_aug_system.json gmm_aug_source.json \
	lcnn_system.json lcnn_source.json lcnn_aug_system.json lcnn_aug_source.json)
realspeech: $(RS_RESULTS)
	$(SHIP) report $^ -o $(RS_OUT)/report
	@echo "realspeech: $(abspath $(RS_OUT))"

models: venv
	$(MAKE) --no-print-directory -j$(JOBS) -o $(BIN)/dfdet $(SHIPPED_154) $(SHIPPED_DEFAULT)
	@echo "models: $(abspath $(MODELS_OUT))"

clean-demo:
	rm -rf $(D) $(REPORT)

clean: clean-demo
	rm -rf $(S) $(R) $(MW)
