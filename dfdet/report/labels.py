"""Human labels for the machine names the report shows: degradation conditions (dfdet.degrade's registry names such as
`white_snr10`) and the keys of per-condition metric rows (`flip_rate_vs_clean`), so no table header or axis reads
as snake_case. Unknown names fall back to the name with spaces for underscores. (The HTML writer keeps "10 dB" on
one line.)"""

from __future__ import annotations

import re

CONDITION_LABELS: dict[str, str] = {
    "clean": "clean (reference)",
    "bandlimit_8k": "band-limited to 8 kHz",
    "ogg_vorbis": "OGG/Vorbis re-encoded",
    "mp3": "MP3 re-encoded",
    "gain_-20db": "gain -20 dB",
    "gain_+6db_clip": "gain +6 dB, clipped",
    "trim_0.5s": "first 0.5 s trimmed",
    "silence_1s": "1 s leading silence",
}
_SNR = re.compile(r"(?P<kind>[a-z]+)_snr(?P<snr>-?\d+(?:\.\d+)?)")

COLUMN_LABELS: dict[str, str] = {
    "condition": "condition",
    "n_failed": "failed files",
    "n_scored": "scored files",
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced accuracy",
    "eer": "EER",
    "auc": "AUC",
    "roc_auc": "AUC",
    "flip_rate_vs_clean": "decisions changed vs clean",
    "mean_score_shift": "mean score shift vs clean",
    "spoof_called_bonafide": "spoof called bona fide",
    "bonafide_called_spoof": "bona fide called spoof",
    "min_dcf": "minDCF",
    "act_dcf": "actDCF",
    "cllr": "Cllr",
    "min_cllr": "minCllr",
}
_ACRONYMS = {"eer": "EER", "auc": "AUC", "roc": "ROC", "snr": "SNR", "db": "dB", "n": "number of"}


def condition_label(name: str, description: str = "") -> str:
    """'white_snr10' -> 'white noise 10 dB SNR': registry names get their label, others their recorded `description`
    or their name without underscores."""
    if name in CONDITION_LABELS:
        return CONDITION_LABELS[name]
    m = _SNR.fullmatch(name)
    if m:
        noise = m["kind"] if m["kind"] == "noise" else f"{m['kind']} noise"
        return f"{noise} {m['snr']} dB SNR"
    return description or name.replace("_", " ")


def column_label(key: str) -> str:
    """A metric row key as a table header: 'flip_rate_vs_clean' -> 'decisions changed vs clean'."""
    if key in COLUMN_LABELS:
        return COLUMN_LABELS[key]
    return " ".join(_ACRONYMS.get(w, w) for w in key.split("_"))
