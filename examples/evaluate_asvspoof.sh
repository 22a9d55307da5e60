#!/usr/bin/env bash
# Evaluate an ASVspoof-style score file against a CM protocol: EER, minDCF, actDCF, Cllr, t-DCF, per attack.
#   examples/evaluate_asvspoof.sh SCORES PROTOCOL
# SCORES: `utt_id score` lines, an ASVspoof 5 `filename cm-score` file, or a dfdet score TSV (bona-fide-positive).
# PROTOCOL: e.g. LA/ASVspoof2019_LA_cm_protocols/ASVspoof2019.LA.cm.eval.trl.txt
set -euo pipefail
DFDET=${DFDET:-dfdet}
scores=${1:?usage: evaluate_asvspoof.sh SCORES PROTOCOL}
protocol=${2:?usage: evaluate_asvspoof.sh SCORES PROTOCOL}
$DFDET evaluate "$scores" --labels "$protocol" --by system
