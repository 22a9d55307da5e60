"""The label vocabulary: `bonafide` / `spoof` in files, 0 / 1 / -1 (unknown) in arrays."""

from __future__ import annotations

from dfdet.errors import DfdetError

BONAFIDE, SPOOF, UNKNOWN = 0, 1, -1
NAMES = {BONAFIDE: "bonafide", SPOOF: "spoof", UNKNOWN: ""}
_SYNONYMS = {
    "bonafide": BONAFIDE,
    "bona-fide": BONAFIDE,
    "bona_fide": BONAFIDE,
    "bona fide": BONAFIDE,
    "genuine": BONAFIDE,
    "real": BONAFIDE,
    "human": BONAFIDE,
    "spoof": SPOOF,
    "spoofed": SPOOF,
    "fake": SPOOF,
    "deepfake": SPOOF,
    "synthetic": SPOOF,
    "": UNKNOWN,
    "-": UNKNOWN,
    "unknown": UNKNOWN,
}


def parse_label(text: str, numeric: bool = False, where: str = "") -> int:
    """Map a label word to 0/1/-1; digits 0/1 only when `numeric` (0 = bona fide, 1 = spoof) says so."""
    key = str(text).strip().lower()
    if key in _SYNONYMS:
        return _SYNONYMS[key]
    if numeric and key in ("0", "1"):
        return int(key)
    hint = "use bonafide/spoof (or real/fake, bona-fide)"
    if key in ("0", "1"):
        hint = "numeric labels need --numeric-labels (0 = bona fide, 1 = spoof)"
    raise DfdetError(f"{where}unknown label {text!r}", hint)


def label_name(code: int) -> str:
    return NAMES[int(code)]
