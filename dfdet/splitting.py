"""Seeded, stratified (optionally speaker-grouped) splits of rows into named parts.

Used by `dfdet split` and by `dfdet train --val-split`. Three modes:
- stratified: per class, a seeded permutation cut by largest-remainder counts, so each part gets its share of
  every class (parts keep the input's row order);
- grouped (e.g. by speaker): whole groups go to one part, greedily to the part whose per-class quota they fill
  best, so no speaker appears in two parts;
- sklearn-compatible: exactly `train_test_split(test_size=f, stratify=y, random_state=seed)` for two parts, rows in
  scikit-learn's order, so the study's 80/20 split is reproduced row for row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from dfdet.errors import DfdetError, UsageError

if TYPE_CHECKING:
    from dfdet.store import FeatureSet


def parse_parts(text: str) -> dict[str, float]:
    """`train=0.8,test=0.2` -> {"train": 0.8, "test": 0.2}; fractions must be positive and sum to 1."""
    parts: dict[str, float] = {}
    for item in str(text).split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, frac = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UsageError(f"bad part {item!r}", "write parts as NAME=FRACTION, e.g. train=0.8,test=0.2")
        if not all(c.isalnum() or c in "-_." for c in name):
            raise UsageError(f"bad part name {name!r}", "use letters, digits, '-', '_' or '.' in part names")
        try:
            value = float(frac)
        except ValueError as e:
            raise UsageError(f"bad fraction {frac!r} for part {name!r}", "fractions are numbers like 0.2") from e
        if not 0 < value < 1 + 1e-9:
            raise UsageError(f"fraction of part {name!r} must be in (0, 1], got {value}", "e.g. train=0.8,test=0.2")
        if name in parts:
            raise UsageError(f"part {name!r} given twice", "name each part once")
        parts[name] = value
    if not parts:
        raise UsageError("no parts given", "e.g. --parts train=0.8,test=0.2")
    total = sum(parts.values())
    if abs(total - 1.0) > 1e-6:
        raise UsageError(f"part fractions sum to {total:g}, not 1", "make the fractions add up to 1")
    return parts


def _quota(n: int, fractions: Sequence[float]) -> np.ndarray:
    """Integer counts summing to n, proportional to fractions (largest remainder, ties to earlier parts)."""
    raw = np.asarray(fractions, dtype=float) * n
    counts = np.floor(raw + 1e-9).astype(int)
    rest = n - counts.sum()
    if rest > 0:
        order = np.argsort(-(raw - counts), kind="stable")
        counts[order[:rest]] += 1
    return counts


def _check_labels(y: np.ndarray) -> None:
    if len(y) == 0:
        raise DfdetError("nothing to split: 0 rows", "pass a store with rows")


def stratified_split(y: np.ndarray, fractions: Sequence[float], seed: int = 42) -> list[np.ndarray]:
    """Indices per part: every class (value of y, -1 included) is divided in the given proportions."""
    y = np.asarray(y)
    _check_labels(y)
    rng = np.random.default_rng(seed)
    out: list[list[np.ndarray]] = [[] for _ in fractions]
    for cls in np.unique(y):
        idx = np.flatnonzero(y == cls)
        idx = idx[rng.permutation(len(idx))]
        counts = _quota(len(idx), fractions)
        start = 0
        for p, c in enumerate(counts):
            out[p].append(idx[start : start + c])
            start += c
    return [np.sort(np.concatenate(chunks)) if chunks else np.zeros(0, int) for chunks in out]


def grouped_split(y: np.ndarray, groups: Sequence[str], fractions: Sequence[float], seed: int = 42) -> list[np.ndarray]:
    """Indices per part with every group (speaker) wholly inside one part, class proportions kept as far as groups
    allow. Groups are placed largest first (seeded tie order), each into the part whose per-class quota it fills best.
    """
    y = np.asarray(y)
    _check_labels(y)
    groups = np.asarray([str(g) for g in groups])
    if len(groups) != len(y):
        raise DfdetError(f"{len(groups)} group labels for {len(y)} rows", "give one group per row")
    classes = np.unique(y)
    names, inverse = np.unique(groups, return_inverse=True)
    if len(names) < len(fractions):
        raise DfdetError(
            f"only {len(names)} distinct group(s) for {len(fractions)} parts",
            "split without --group-by, or use fewer parts",
        )
    counts = np.zeros((len(names), len(classes)), dtype=float)
    for ci, c in enumerate(classes):
        np.add.at(counts[:, ci], inverse[y == c], 1)
    n_class = counts.sum(axis=0)
    frac = np.asarray(fractions, dtype=float)
    target = frac[:, None] * n_class[None, :]  # [parts, classes]
    have = np.zeros_like(target)
    rng = np.random.default_rng(seed)
    tie = rng.permutation(len(names))
    order = np.lexsort((tie, -counts.sum(axis=1)))
    assign = np.empty(len(names), dtype=int)
    for g in order:
        v = counts[g]
        # Relative deficit each part still has for the classes this group brings; every part first gets one group.
        empty = have.sum(axis=1) == 0
        need = ((target - have) / np.maximum(n_class, 1)[None, :]) @ v
        if empty.any():
            need = np.where(empty, need + 1e6, need)
        p = int(np.argmax(need))
        assign[g] = p
        have[p] += v
    return [np.flatnonzero(assign[inverse] == p) for p in range(len(fractions))]


def sklearn_split(y: np.ndarray, fractions: Sequence[float], seed: int = 42) -> list[np.ndarray]:
    """Exactly `train_test_split(arange(n), test_size=fractions[1], stratify=y, random_state=seed)` (2 parts)."""
    from sklearn.model_selection import train_test_split

    y = np.asarray(y)
    _check_labels(y)
    if len(fractions) != 2:
        raise UsageError(
            f"--sklearn-compatible splits into exactly 2 parts, got {len(fractions)}",
            "give two parts, e.g. train=0.8,test=0.2",
        )
    try:
        a, b = train_test_split(np.arange(len(y)), test_size=float(fractions[1]), stratify=y, random_state=seed)
    except ValueError as e:
        raise DfdetError(f"scikit-learn could not split: {e}", "check that each class has at least 2 rows") from e
    return [np.asarray(a), np.asarray(b)]


def split_indices(
    y: np.ndarray,
    fractions: Sequence[float],
    seed: int = 42,
    groups: Sequence[str] | None = None,
    mode: str = "stratified",
) -> list[np.ndarray]:
    """Dispatch on mode: `stratified`, `grouped` (needs groups) or `sklearn` (2 parts, scikit-learn's exact split)."""
    if mode == "sklearn":
        if groups is not None:
            raise UsageError("--sklearn-compatible cannot group by speaker", "drop --group-by or the sklearn mode")
        return sklearn_split(y, fractions, seed)
    if mode == "grouped" or groups is not None:
        if groups is None:
            raise UsageError("grouped split needs group labels", "pass --group-by speaker")
        return grouped_split(y, groups, fractions, seed)
    if mode != "stratified":
        raise UsageError(f"unknown split mode {mode!r}", "use stratified, grouped or sklearn")
    return stratified_split(y, fractions, seed)


def known_groups(values: Sequence[str]) -> bool:
    """True when every row has a non-empty group and there are at least two groups (so grouping is possible)."""
    return len(values) > 0 and all(values) and len(set(values)) >= 2


def train_val_indices(
    y: np.ndarray, val_fraction: float, seed: int = 42, speakers: Sequence[str] | None = None
) -> tuple[np.ndarray, np.ndarray, str]:
    """Training and validation rows for `--val-split`: speaker-disjoint when speakers are known, else stratified.

    Returns (train_idx, val_idx, mode).
    """
    if not 0 < val_fraction < 1:
        raise UsageError(f"--val-split must be in (0, 1), got {val_fraction}", "e.g. --val-split 0.2")
    fr = [1.0 - val_fraction, val_fraction]
    if speakers is not None and known_groups(list(speakers)):
        tr, va = grouped_split(y, speakers, fr, seed)
        mode = "speaker-disjoint"
    else:
        tr, va = stratified_split(y, fr, seed)
        mode = "stratified"
    return tr, va, mode


def split_featureset(
    fs: FeatureSet,
    parts: dict[str, float],
    seed: int = 42,
    group_by: str | None = None,
    sklearn_compatible: bool = False,
) -> dict[str, FeatureSet]:
    """Split a FeatureSet into named parts (see the module docstring for the modes)."""
    if len(fs) == 0:
        raise DfdetError(f"{fs.source or 'features'}: the store has no rows", "featurize some audio first")
    groups = None
    if group_by is not None:
        if group_by != "speaker":
            raise UsageError(f"cannot group by {group_by!r}", "use --group-by speaker")
        if not all(fs.speaker):
            missing = sum(1 for s in fs.speaker if not s)
            raise DfdetError(
                f"{fs.source or 'features'}: {missing} of {len(fs)} rows have no speaker",
                "featurize with a protocol/table that names speakers, or split without --group-by",
            )
        groups = list(fs.speaker)
    mode = "sklearn" if sklearn_compatible else ("grouped" if groups is not None else "stratified")
    idx = split_indices(fs.y, list(parts.values()), seed=seed, groups=groups, mode=mode)
    out = {}
    for name, rows in zip(parts, idx, strict=True):
        if len(rows) == 0:
            raise DfdetError(f"part {name!r} would be empty", "use a larger fraction for it or more data")
        out[name] = fs.subset(rows)
    return out


def stratified_subsample(y: np.ndarray, max_rows: int | None, seed: int) -> np.ndarray:
    """At most `max_rows` row indices, stratified by label, seeded, in input order (all rows when None)."""
    n = len(y)
    if max_rows is None or max_rows >= n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    y = np.asarray(y)
    picked = []
    classes = sorted(set(y.tolist()))
    for c in classes:
        idx = np.flatnonzero(y == c)
        k = int(round(max_rows * len(idx) / n))
        picked.append(rng.permutation(idx)[:k])
    out = np.sort(np.concatenate(picked))
    if len(out) < max_rows:  # rounding: top up from the rest
        rest = np.setdiff1d(np.arange(n), out)
        out = np.sort(np.concatenate([out, rng.permutation(rest)[: max_rows - len(out)]]))
    return out[:max_rows]
