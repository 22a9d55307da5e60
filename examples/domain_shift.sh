#!/usr/bin/env bash
# Domain shift as a first-class workflow: a detector trained in the lab, recalibrated and re-fused on a small
# labelled slice of the target domain, evaluated on a disjoint slice of it.
#   examples/domain_shift.sh WILD.h5 OUTDIR MODEL.pt [MODEL.pt ...]
set -euo pipefail
DFDET=${DFDET:-dfdet}
wild=${1:?usage: domain_shift.sh WILD.h5 OUTDIR MODEL...}
out=${2:?}
shift 2
mkdir -p "$out"
$DFDET split "$wild" --parts fit=0.3,eval=0.7 --group-by speaker --out-pattern "$out/wild_{part}.h5"
members=()
for m in "$@"; do members+=(--model "$m"); done
$DFDET score "$1" "$out/wild_eval.h5" -o "$out/lab_model.wild_eval.tsv"
$DFDET ensemble "${members[@]}" --on "$out/wild_fit.h5" --method logistic --cv "${CV:-5}" -o "$out/wild_ensemble.json"
$DFDET score "$out/wild_ensemble.json" "$out/wild_eval.h5" -o "$out/wild_ensemble.wild_eval.tsv"
$DFDET evaluate "$out/lab_model.wild_eval.tsv" "$out/wild_ensemble.wild_eval.tsv" --name lab-model --name wild-fused
