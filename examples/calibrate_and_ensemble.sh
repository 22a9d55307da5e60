#!/usr/bin/env bash
# Calibrate one model on labelled development features, fuse several models, and score held-out features.
#   examples/calibrate_and_ensemble.sh DEV.h5 TEST.h5 OUTDIR MODEL.pt [MODEL.pt ...]
set -euo pipefail
DFDET=${DFDET:-dfdet}
dev=${1:?usage: calibrate_and_ensemble.sh DEV.h5 TEST.h5 OUTDIR MODEL...}
test=${2:?}
out=${3:?}
shift 3
mkdir -p "$out"
# 1. a calibrated detector: scores -> LLRs, threshold at the Bayes decision for the ASVspoof 5 costs
$DFDET calibrate --detector "$1" --on "$dev" --threshold bayes -o "$out/calibrated.json"
$DFDET score "$out/calibrated.json" "$test" -o "$out/calibrated.test.tsv"
# 2. fusion of all models, weights fitted on dev (out-of-fold metrics on stderr), applied to test
members=()
for m in "$@"; do members+=(--model "$m"); done
$DFDET ensemble "${members[@]}" --on "$dev" --method auc2 --cv "${CV:-5}" -o "$out/ensemble.json"
$DFDET score "$out/ensemble.json" "$test" -o "$out/ensemble.test.tsv"
# 3. compare on the held-out data
$DFDET evaluate "$out/calibrated.test.tsv" "$out/ensemble.test.tsv"
