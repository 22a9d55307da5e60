#!/usr/bin/env bash
# Score every WAV under a folder through a shell pipeline; rows stream out as each file is scored.
#   examples/score_from_find.sh DETECTOR AUDIO_DIR > scores.tsv
# DETECTOR is a model (.pt), a calibrated detector or an ensemble JSON. `score` is bona-fide-positive.
set -euo pipefail
DFDET=${DFDET:-dfdet}
detector=${1:?usage: score_from_find.sh DETECTOR AUDIO_DIR}
audio_dir=${2:?usage: score_from_find.sh DETECTOR AUDIO_DIR}
find "$audio_dir" -name '*.wav' | sort | $DFDET score "$detector" -
