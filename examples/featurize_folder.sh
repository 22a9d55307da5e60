#!/usr/bin/env bash
# Featurize a folder of audio (recursively) into an HDF5 store, then summarise it.
#   examples/featurize_folder.sh AUDIO_DIR OUT.h5
set -euo pipefail
DFDET=${DFDET:-dfdet}
audio_dir=${1:?usage: featurize_folder.sh AUDIO_DIR OUT.h5}
out=${2:?usage: featurize_folder.sh AUDIO_DIR OUT.h5}
$DFDET featurize "$audio_dir" -o "$out"
$DFDET info "$out"
