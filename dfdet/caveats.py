"""What a verdict cannot say: the shortest clip worth judging, the crop of a fixed-window recipe, and the data a
detector was trained on.

Why: a detector answers with a confident number whatever it is given. A 0.05-s clip is scored on zero padding, a
10-minute file on its first 2 s, and a model trained on the synthetic demo corpus calls real speech spoof with
p = 1 - 1e-9. `dfdet score` and the app both refuse the first, say so for the second and name the third, from the
constants and records kept here (no torch or librosa import: `dfdet --help` loads this module).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Shortest clip `score` and the app judge: below it almost all of the recipe's 2-s window is zero padding, so a
# verdict would describe the padding (override with `--min-seconds`).
MIN_SECONDS = 0.25

# A corpus directory marks itself with this file (written by `dfdet demo-corpus`); featurize copies it into the store,
# train into the model's `data.training_domain`.
CORPUS_FILE = "corpus.json"
CORPUS_KIND = "dfdet-corpus"
DEMO_CORPUS_NAME = "dfdet demo corpus"
_MAX_DOMAINS = 12


# --------------------------------------------------------------------------------------------------- durations
def too_short(duration: float, min_seconds: float = MIN_SECONDS) -> str | None:
    """The reason a clip of `duration` seconds gets no verdict, or None when it is long enough (or unknown)."""
    # NaN: not measured (an .npz row); 1 ms of slack for sample rounding (0.25 s at 22.05 kHz is 5512 samples)
    if duration != duration or duration + 1e-3 >= min_seconds:
        return None
    return f"too short to judge ({duration:.2f} s of audio; a verdict needs at least {min_seconds:g} s)"


def too_short_fix(min_seconds: float = MIN_SECONDS) -> str:
    return f"use clips of at least {min_seconds:g} s, or pass --skip-bad to score the rest"


def window_seconds(recipe_config: dict[str, Any] | None) -> float | None:
    """Seconds of audio a fixed-length recipe looks at (`n_samples / sample_rate` of its configuration), else None."""
    cfg = recipe_config or {}
    try:
        n, sr = int(cfg["n_samples"]), int(cfg["sample_rate"])
    except (KeyError, TypeError, ValueError):
        return None
    return n / sr if n > 0 and sr > 0 else None


def scored_seconds(duration: float, window: float | None) -> float:
    """Seconds of a clip the recipe actually looked at: all of it, or the first `window` seconds (NaN if unknown)."""
    if window is None or duration != duration:
        return duration
    return window if is_cropped(duration, window) else duration


def is_cropped(duration: float, window: float | None) -> bool:
    """True when the clip is longer than the recipe's window by more than a millisecond (rounding of resampling)."""
    return window is not None and duration == duration and duration > window + 1e-3


def crop_note(cropped: int, total: int, window: float | None, store: bool = False) -> str | None:
    """The once-per-run note on clips judged on a crop (`store`: rows of a feature store), or None if none was."""
    if not cropped or window is None:
        return None
    what = "rows came from clips" if store else ("files was" if cropped == 1 else "files were")
    return (
        f"{cropped} of {total} {what} longer than {window:g} s; only their first {window:g} s were scored "
        "(the recipe's fixed window; see the scored_s column)"
    )


# --------------------------------------------------------------------------------------------------- corpus marker
def corpus_marker(name: str, synthetic: bool, **fields: Any) -> dict[str, Any]:
    """The document a corpus directory carries as `corpus.json`."""
    return {"kind": CORPUS_KIND, "name": name, "synthetic": bool(synthetic), **fields}


def find_corpus(paths: Sequence[str | os.PathLike]) -> dict[str, Any] | None:
    """The corpus marker of the directory holding `paths` (their common root or an ancestor), or None.

    Only a `corpus.json` of kind `dfdet-corpus` counts; its location is added as `marker`.
    """
    if not paths:
        return None
    from dfdet.inputs import common_root

    d = Path(common_root(paths))
    for folder in (d, *d.parents):
        marker = folder / CORPUS_FILE
        if not marker.is_file():
            continue
        try:
            doc = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(doc, dict) and doc.get("kind") == CORPUS_KIND:
            return {**doc, "marker": str(marker)}
    return None


# --------------------------------------------------------------------------------------------------- training domain
def training_domain(fs: Any) -> dict[str, Any]:
    """What a model was trained on, recorded by `train` in the model's `data.training_domain`: the store, its recipe,
    the `domain` values of its rows and the corpus marker featurize found (synthetic or not)."""
    corpus = (getattr(fs, "attrs", None) or {}).get("corpus")
    corpus = corpus if isinstance(corpus, dict) else None
    domains = sorted({str(d) for d in getattr(fs, "domain", None) or [] if d})
    out: dict[str, Any] = {
        "source": getattr(fs, "source", "") or "",
        "recipe": getattr(fs, "recipe", None),
        "domains": domains[:_MAX_DOMAINS] + (["..."] if len(domains) > _MAX_DOMAINS else []),
        "corpus": None if corpus is None else {k: corpus.get(k) for k in ("name", "synthetic", "config_hash")},
        "synthetic": bool(corpus and corpus.get("synthetic")),
    }
    augment = (getattr(fs, "attrs", None) or {}).get("augment")  # featurize --augment: its config, copies trained on
    if isinstance(augment, dict):
        out["augment"] = {**augment, "rows": sum(1 for a in getattr(fs, "augment", None) or [] if a)}
    return out


def _domain_of(meta: dict[str, Any]) -> dict[str, Any] | None:
    data = meta.get("data") if isinstance(meta, dict) else None
    dom = data.get("training_domain") if isinstance(data, dict) else None
    return dom if isinstance(dom, dict) else None


def describe_domain(meta: dict[str, Any]) -> tuple[bool, str]:
    """(synthetic, words) for a model's metadata: what it was trained on, from its `data` record."""
    dom = _domain_of(meta)
    if dom is None:
        data = meta.get("data") if isinstance(meta, dict) else None
        src = ((data or {}).get("train") or {}).get("source") if isinstance(data, dict) else None
        return False, f"{Path(str(src)).name} (no training domain recorded)" if src else "data it does not record"
    src = Path(str(dom.get("source") or "")).name or "an unnamed store"
    domains = ", ".join(map(str, dom.get("domains") or []))
    corpus = dom.get("corpus") or {}
    if dom.get("synthetic"):
        name = corpus.get("name") or "a synthetic corpus"
        what = f"the synthetic {name.removeprefix('dfdet ')}" if name == DEMO_CORPUS_NAME else f"{name} (synthetic)"
        return True, f"{what} ({domains or 'all domains'}; store {src})"
    where = f"{corpus['name']}, store {src}" if corpus.get("name") else src
    return False, f"{where}" + (f" (domain {domains})" if domains else "")


def domain_lines(detector: Any, name: str | None = None) -> list[tuple[bool, str]]:
    """One (synthetic, line) per distinct training domain of a ScoringDetector's member models.

    A calibration or fusion layer changes no member's domain: an ensemble names each group of members.
    """
    name = name or Path(str(detector.path)).name
    groups: dict[tuple[bool, str], list[str]] = {}
    for m in detector.members:
        groups.setdefault(describe_domain(getattr(m.detector, "meta", {}) or {}), []).append(m.name)
    out = []
    for (synthetic, words), members in groups.items():
        if len(groups) == 1:
            line = f"detector {name} was trained on {words}"
        elif len(members) == 1:
            line = f"member {members[0]} of {name} was trained on {words}"
        else:
            line = f"members {', '.join(members)} of {name} were trained on {words}"
        if synthetic:
            line += (
                f"; {'its' if len(members) == 1 or len(groups) == 1 else 'their'} verdicts on real speech mean nothing"
            )
        out.append((synthetic, line))
    return out
