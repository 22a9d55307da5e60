"""Grouped cross-validation of detectors: the way every number about real-audio detection is reported.

A random split of a real-deepfake corpus puts clips of the same generator, and of the same speaker, on both sides,
so it measures recognition of known systems. Here the rows are partitioned into *groups* that never straddle a
train/test boundary:

- spoof rows by the `--group` key: `system`, `source` (the store's `collection` column) or `family`;
- bona fide rows by speaker where known, else by collection (with `--group source`: by collection, so each source
  is held out with its own bona fide);
- speakers (spoof rows carry their target speaker) never on both sides: `merge` joins every group that shares a
  non-empty speaker (connected components); `purge` keeps the groups and drops from each fold's training rows those
  whose speaker is in its test rows; `none` ignores speakers. `auto` = merge for k-fold, purge for
  leave-one-group-out (merging would fuse sources that share a speaker, e.g. LJSpeech, into one "group").
- augmented copies (non-empty `augment`) are never tested; they train with their group (or not at all).

k-fold: the resulting units go to K folds by `dfdet.splitting.grouped_split` (seeded, balanced per class by rows).
Leave-one-group-out: every unit holding a key value is one fold; units without one (bona fide-only units under
`--group system|family`) are spread over those folds to balance the bona fide rows.

Each fold trains a detector through a *fitter* chosen by the model's input kind (`register_fitter`); test scores
of all folds are pooled, and EER confidence intervals come from a bootstrap over groups (spoof rows by system,
bona fide rows by speaker or collection; the two classes resampled separately), not over rows: rows of one
system or speaker are not independent trials.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dfdet.errors import DfdetError, InputError, UsageError

if TYPE_CHECKING:
    from dfdet.scores import ScoreTable
    from dfdet.store import FeatureSet
    from dfdet.training import TrainConfig

SCHEMA = "dfdet.crossval/1"
GROUP_COLUMNS = {"system": "system", "source": "collection", "family": "family"}  # --group -> store column
SPEAKER_POLICIES = ("auto", "merge", "purge", "none")
AUGMENTED_POLICIES = ("train", "drop")
BOOTSTRAP_UNIT = (
    "groups resampled with replacement: spoof rows by system (the --group key where the system is unknown), bona "
    "fide rows by speaker (collection where the speaker is unknown); bona fide and spoof groups resampled separately"
)
UNKNOWN = "(unknown)"


# --------------------------------------------------------------------------------------------------- fold plan
def row_groups(fs: FeatureSet, group_by: str) -> list[str]:
    """The group of every row (`key=value`): spoof rows by the --group column, bona fide by speaker or collection."""
    if group_by not in GROUP_COLUMNS:
        raise UsageError(f"unknown --group {group_by!r}", f"choose one of: {', '.join(GROUP_COLUMNS)}")
    col = GROUP_COLUMNS[group_by]
    values = getattr(fs, col)
    out = []
    for i, lab in enumerate(fs.y):
        if lab == 1 or group_by == "source":
            out.append(f"{col}={values[i] or UNKNOWN}")
        elif fs.speaker[i]:
            out.append(f"speaker={fs.speaker[i]}")
        else:
            out.append(f"collection={fs.collection[i] or UNKNOWN}")
    return out


def _anchor(group: str, group_by: str) -> bool:
    """Whether a row group is a value of the --group key (a unit that leave-one-group-out holds out by itself)."""
    return group.startswith(GROUP_COLUMNS[group_by] + "=")


def merge_by_speaker(groups: Sequence[str], speakers: Sequence[str]) -> np.ndarray:
    """Unit index per row: groups joined when they share a non-empty speaker (connected components), numbered in
    order of first appearance of their sorted group names (deterministic)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    gnames, ginv = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
    spk = np.asarray([str(s) for s in speakers], dtype=object).astype(str)
    known = spk != ""
    snames, sinv = np.unique(spk[known], return_inverse=True)
    n = len(gnames) + len(snames)
    graph = coo_matrix((np.ones(int(known.sum())), (ginv[known], len(gnames) + sinv)), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    comp = comp[: len(gnames)]
    _, first = np.unique(comp, return_index=True)  # components renumbered by their first (sorted) group
    renum = {int(c): k for k, c in enumerate(comp[np.sort(first)])}
    return np.asarray([renum[int(comp[g])] for g in ginv], dtype=np.int64)


@dataclass
class FoldPlan:
    """Which rows each fold tests and trains on. `fold[i]`: the fold whose test set holds row i's unit (-1: the
    row is never used, an augmented copy whose group has no original clip)."""

    group_by: str
    mode: str  # "kfold" | "logo"
    speakers: str  # merge | purge | none (auto resolved)
    augmented: str  # train | drop
    seed: int
    groups: list[str]  # row group before merging
    unit: np.ndarray  # unit per row (group after merging)
    unit_names: list[str]
    fold: np.ndarray
    is_augmented: np.ndarray
    speaker: list[str]
    n_folds: int
    notes: list[str] = field(default_factory=list)

    def test_rows(self, k: int) -> np.ndarray:
        """Rows tested in fold k: its units' original (non-augmented) rows."""
        return np.flatnonzero((self.fold == k) & ~self.is_augmented)

    def train_rows(self, k: int) -> np.ndarray:
        """Rows trained on in fold k: other folds' rows, less test speakers under `purge`, less augmented ones under
        `drop`."""
        keep = (self.fold >= 0) & (self.fold != k)
        if self.augmented == "drop":
            keep &= ~self.is_augmented
        if self.speakers == "purge":
            test_spk = {self.speaker[i] for i in np.flatnonzero(self.fold == k)} - {""}
            keep &= ~np.asarray([s in test_spk for s in self.speaker], dtype=bool)
        return np.flatnonzero(keep)

    def held_out(self, k: int) -> list[str]:
        """Names of the groups fold k tests (sorted)."""
        return sorted({self.groups[i] for i in self.test_rows(k)})

    def describe(self) -> dict[str, Any]:
        sizes = np.bincount(self.unit, minlength=len(self.unit_names))
        return {
            "group_by": self.group_by,
            "column": GROUP_COLUMNS[self.group_by],
            "mode": self.mode,
            "n_folds": self.n_folds,
            "speakers": self.speakers,
            "augmented": self.augmented,
            "seed": self.seed,
            "n_groups": len(set(self.groups)),
            "n_units": len(self.unit_names),
            "largest_unit_rows": int(sizes.max()) if len(sizes) else 0,
            "augmented_rows": int(self.is_augmented.sum()),
            "unused_rows": int((self.fold < 0).sum()),
            "notes": list(self.notes),
        }


def plan_folds(
    fs: FeatureSet,
    group_by: str = "system",
    folds: int | str = 5,
    seed: int = 42,
    speakers: str = "auto",
    augmented: str = "train",
) -> FoldPlan:
    """Assign rows to folds (see the module docstring). `folds`: K >= 2 or "logo" (leave one group out)."""
    from dfdet.splitting import grouped_split

    mode, k = parse_folds(folds)
    if speakers not in SPEAKER_POLICIES:
        raise UsageError(f"unknown speaker policy {speakers!r}", f"choose one of: {', '.join(SPEAKER_POLICIES)}")
    if augmented not in AUGMENTED_POLICIES:
        raise UsageError(f"unknown augmented-row policy {augmented!r}", "choose train or drop")
    if speakers == "auto":
        speakers = "merge" if mode == "kfold" else "purge"
    where = fs.source or "features"
    if len(fs) == 0:
        raise InputError(where, "the store has no rows", "featurize some audio first")
    bad = ~np.isin(fs.y, (0, 1))
    if bad.any():
        raise InputError(
            where,
            f"{int(bad.sum())} row(s) have no bona fide/spoof label (e.g. {fs.utt_id[int(np.flatnonzero(bad)[0])]})",
            "featurize with --labels so every row is labelled",
        )
    groups = row_groups(fs, group_by)
    spk = [str(s) for s in fs.speaker]
    if speakers == "merge":
        unit = merge_by_speaker(groups, spk)
    else:
        unit = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)[1].astype(np.int64)
    n_units = int(unit.max()) + 1
    members: list[set[str]] = [set() for _ in range(n_units)]
    for g, u in zip(groups, unit, strict=True):
        members[u].add(g)
    unit_names = ["+".join(sorted(m)) for m in members]
    is_aug = np.asarray([bool(a) for a in fs.augment], dtype=bool)
    orig_units = np.unique(unit[~is_aug])
    notes: list[str] = []
    unit_fold = np.full(n_units, -1, dtype=np.int64)
    if mode == "kfold":
        if len(orig_units) < k:
            raise DfdetError(
                f"{len(orig_units)} group(s) after {'merging speakers' if speakers == 'merge' else 'grouping'} "
                f"for {k} folds (--group {group_by})",
                "use fewer --folds, --speakers purge (keeps groups apart, drops shared speakers from training), "
                "a finer --group, or --speakers none where every system speaks with every speaker (ASVspoof)",
            )
        sel = np.flatnonzero(~is_aug)
        parts = grouped_split(fs.y[sel], [str(u) for u in unit[sel]], [1.0 / k] * k, seed)
        for f, rows in enumerate(parts):
            unit_fold[np.unique(unit[sel][rows])] = f
    else:
        anchored = [u for u in orig_units if any(_anchor(g, group_by) for g in members[u])]
        if len(anchored) < 2:
            raise DfdetError(
                f"{len(anchored)} held-out group(s) for leave-one-group-out (--group {group_by})",
                "use k-fold (--folds 5) or a store with several groups",
            )
        anchored.sort(key=lambda u: unit_names[u])
        for f, u in enumerate(anchored):
            unit_fold[u] = f
        k = len(anchored)
        rest = [u for u in orig_units if unit_fold[u] < 0]
        if rest:  # bona fide-only units: largest first (seeded ties) to the fold with the fewest bona fide rows
            bona = np.bincount(unit[(fs.y == 0) & ~is_aug], minlength=n_units)
            size = np.bincount(unit[~is_aug], minlength=n_units)
            tie = np.random.default_rng(seed).permutation(len(rest))
            have = np.zeros(k, dtype=np.int64)
            for j in np.lexsort((tie, -size[rest])):
                u = rest[j]
                f = int(np.argmin(have))
                unit_fold[u] = f
                have[f] += bona[u]
            notes.append(f"{len(rest)} bona fide group(s) spread over the {k} held-out groups")
    fold = unit_fold[unit]
    orphans = int((fold < 0).sum())
    if orphans:
        notes.append(f"{orphans} augmented row(s) whose group has no original clip are not used")
    return FoldPlan(
        group_by=group_by,
        mode=mode,
        speakers=speakers,
        augmented=augmented,
        seed=int(seed),
        groups=groups,
        unit=unit,
        unit_names=unit_names,
        fold=fold,
        is_augmented=is_aug,
        speaker=spk,
        n_folds=k,
        notes=notes,
    )


def parse_folds(value: int | str) -> tuple[str, int]:
    """`5` -> ("kfold", 5); `logo` -> ("logo", 0)."""
    text = str(value).strip().lower()
    if text in ("logo", "leave-one-out", "leave-one-group-out"):
        return "logo", 0
    try:
        k = int(text)
    except ValueError:
        raise UsageError(
            f"--folds {value!r} is neither a number nor 'logo'", "e.g. --folds 5 or --folds logo"
        ) from None
    if k < 2:
        raise UsageError(f"--folds must be >= 2, got {k}", "e.g. --folds 5")
    return "kfold", k


# --------------------------------------------------------------------------------------------------- fitters
Fitter = Callable[..., np.ndarray]
FITTERS: dict[str, Fitter] = {}


def register_fitter(kind: str) -> Callable[[Fitter], Fitter]:
    """Register `fit_and_score(store_path, fs, train_rows, test_rows, model, config, seed) -> scores` for models
    whose input kind is `kind` (scores: one per test row, bona-fide-positive). With `--degraded` it is also passed
    `extra=[(store_path, FeatureSet, rows), ...]` and returns the scores of those rows after the test rows'."""

    def deco(fn: Fitter) -> Fitter:
        FITTERS[kind] = fn
        return fn

    return deco


def input_kind(model: str) -> str:
    """What a model reads: `vector` (the store's /features) unless its registry entry says otherwise (a
    `dfdet.models.MODEL_INPUT` entry or an `input_kind` attribute on its factory). The one place this is decided."""
    from dfdet import models

    if model not in models.MODELS:
        raise UsageError(f"unknown model {model!r}", f"choose one of: {', '.join(models.model_names())}")
    kind = getattr(models, "MODEL_INPUT", {}).get(model) or getattr(models.MODELS[model], "input_kind", None)
    return str(kind or "vector")


def fitter_for(model: str) -> tuple[str, Fitter]:
    kind = input_kind(model)
    if kind not in FITTERS:
        raise UsageError(
            f"no cross-validation fitter for model {model!r} (input kind {kind!r})",
            f"use a model of kind {', '.join(sorted(FITTERS))}",
        )
    return kind, FITTERS[kind]


def validation_rows(
    fs: FeatureSet, train_rows: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(fit rows, validation rows) of a fold's training rows: whole systems / speakers (merged as in k-fold; unmerged
    where merging leaves one unit, as when every system speaks with every speaker) held out, so early stopping and
    the threshold are chosen on generators the fit part has not seen; augmented rows stay in the fit part with their
    group, never in validation. No validation rows when the training rows cannot be split so that both parts hold
    both classes."""
    from dfdet.splitting import grouped_split

    train_rows = np.asarray(train_rows, dtype=np.int64)
    none = (train_rows, np.zeros(0, dtype=np.int64))
    if not fraction or fraction <= 0:
        return none
    sub = fs.subset(train_rows)
    groups = row_groups(sub, "system")
    aug = np.asarray([bool(a) for a in sub.augment], dtype=bool)
    orig = np.flatnonzero(~aug)
    unit = merge_by_speaker(groups, sub.speaker)
    if len(np.unique(unit[orig])) < 2:
        unit = merge_by_speaker(groups, [""] * len(groups))
        if len(np.unique(unit[orig])) < 2:
            return none
    fit, val = grouped_split(sub.y[orig], [str(u) for u in unit[orig]], [1.0 - fraction, fraction], seed)
    val_units = set(unit[orig][val].tolist())
    in_val = np.asarray([u in val_units for u in unit], dtype=bool)
    fit_idx, val_idx = np.flatnonzero(~in_val), np.flatnonzero(in_val & ~aug)
    if len(np.unique(sub.y[fit_idx])) < 2 or len(np.unique(sub.y[val_idx])) < 2:
        return none
    return train_rows[fit_idx], train_rows[val_idx]


@register_fitter("vector")
def fit_vector(
    store_path: str | Path | None,
    fs: FeatureSet,
    train_rows: np.ndarray,
    test_rows: np.ndarray,
    model: str,
    config: TrainConfig,
    seed: int,
    extra: Sequence[tuple[str | Path | None, FeatureSet, np.ndarray]] = (),
) -> np.ndarray:
    """Any model of dfdet.models on the store's /features (dfdet.training.train_model), validated on held-out
    training groups (`validation_rows`); returns bona-fide-positive scores of the test rows."""
    from dfdet.artifact import detector_of
    from dfdet.models import model_solver
    from dfdet.training import train_model

    # a library fit (convex, EM) has no epochs to stop early: held-out validation groups would only shrink its data
    fraction = 0.0 if model_solver(model) != "epochs" else config.val_split
    fit, val = validation_rows(fs, train_rows, fraction, seed)
    cfg = replace(config, model=model, seed=int(seed), val_split=0.0, track_steps=False)
    res = train_model(fs.subset(fit), fs.subset(val) if len(val) else None, cfg)
    det = detector_of(res)
    parts = [det.scores(fs.X[np.asarray(test_rows, dtype=np.int64)])]
    parts += [det.scores(efs.X[np.asarray(rows, dtype=np.int64)]) for _, efs, rows in extra]
    return np.concatenate(parts)


@register_fitter("frames")
def fit_frames_fold(
    store_path: str | Path | None,
    fs: FeatureSet,
    train_rows: np.ndarray,
    test_rows: np.ndarray,
    model: str,
    config: TrainConfig,
    seed: int,
    extra: Sequence[tuple[str | Path | None, FeatureSet, np.ndarray]] = (),
) -> np.ndarray:
    """A frame model (e.g. the LCNN) on the store's ragged frames, trained on random fixed-length chunks of the
    training rows (dfdet.frametraining) and validated on held-out training groups; whole-utterance test scores."""
    from dfdet.frametraining import fit_frames, score_frame_rows

    if store_path is None:
        raise UsageError(f"model {model!r} reads frames", "cross-validate a frame store (featurize --recipe lfcc)")
    from dfdet.models import model_solver

    # a library fit (convex, EM) has no epochs to stop early: held-out validation groups would only shrink its data
    fraction = 0.0 if model_solver(model) != "epochs" else config.val_split
    fit, val = validation_rows(fs, train_rows, fraction, seed)
    cfg = replace(config, model=model, seed=int(seed), val_split=0.0, track_steps=False)
    res = fit_frames(store_path, fit, cfg, val_rows=val)
    parts = [score_frame_rows(res, store_path, np.asarray(test_rows, dtype=np.int64))]
    parts += [score_frame_rows(res, path, np.asarray(rows, dtype=np.int64)) for path, _, rows in extra]
    return np.concatenate(parts)


# --------------------------------------------------------------------------------------------------- degraded
@dataclass
class DegradedRows:
    """Augmented copies of the store's clips held in another store (`featurize --augment` of the same audio): each
    is scored by the fold model that held out its clip, so the cross-system figure is measured again under every
    degradation. `origin`: the row of the main store each copy was made from; `kind`: its augmentation steps."""

    path: str
    fs: FeatureSet
    rows: np.ndarray
    origin: np.ndarray
    kind: list[str]


def augment_kind(spec: str) -> str:
    """`noise:kind=pink,snr=3|mp3:kbps=64` -> `noise+mp3`."""
    return "+".join(step.split(":", 1)[0] for step in str(spec).split("|") if step)


def degraded_rows(path: str | Path, fs: FeatureSet, dfs: FeatureSet | None = None) -> DegradedRows:
    """The augmented rows of store `path` whose clip (utt_id before `@aug`) is an original row of `fs`."""
    from dfdet.store import load_features

    dfs = dfs if dfs is not None else load_features(path)
    if dfs.recipe_hash != fs.recipe_hash or dfs.dim != fs.dim:
        raise InputError(
            path,
            f"made with recipe {dfs.recipe} (hash {dfs.recipe_hash}, {dfs.dim} values) but the store cross-validated "
            f"was made with {fs.recipe} (hash {fs.recipe_hash}, {fs.dim} values)",
            "featurize the degraded copies with the same recipe and settings",
        )
    originals = {u: i for i, u in enumerate(fs.utt_id) if not fs.augment[i]}
    rows, origin, kinds = [], [], []
    for j, (u, spec) in enumerate(zip(dfs.utt_id, dfs.augment, strict=True)):
        if spec and str(u).split("@aug", 1)[0] in originals:
            rows.append(j)
            origin.append(originals[str(u).split("@aug", 1)[0]])
            kinds.append(augment_kind(spec))
    if not rows:
        raise InputError(
            path,
            "no augmented copy of a clip of the cross-validated store",
            "featurize the same audio with --augment N (utt_ids ID@augK of the store's ID)",
        )
    return DegradedRows(str(path), dfs, np.asarray(rows, dtype=np.int64), np.asarray(origin, dtype=np.int64), kinds)


def _degraded_summary(
    fs: FeatureSet, plan: FoldPlan, deg: DegradedRows, scores: np.ndarray, n_boot: int, ci: float
) -> dict[str, Any]:
    """EER of the degraded copies per augmentation kind, beside the clean EER of the same clips' originals."""
    clusters = np.asarray(bootstrap_groups(fs, plan), dtype=object)
    y = fs.y[deg.origin].astype(np.int64)
    kinds = np.asarray(deg.kind, dtype=object)

    def entry(s: np.ndarray, yy: np.ndarray, cl: np.ndarray) -> dict[str, Any]:
        e, a = _eer_or_none(s, yy)
        return {
            "n_bonafide": int((yy == 0).sum()),
            "n_spoof": int((yy == 1).sum()),
            "eer": e,
            "roc_auc": a,
            "ci": list(group_bootstrap_eer(s, yy, cl, n_boot, ci, plan.seed) or []) or None,
        }

    per_kind = []
    for name in sorted(set(deg.kind)):
        sel = kinds == name
        per_kind.append({"kind": name, **entry(scores[sel], y[sel], clusters[deg.origin][sel])})
    return {
        "path": deg.path,  # the degraded store (a work-dir path: PATH_KEYS in dfdet.shipped)
        "rows": len(deg.rows),
        "all": entry(scores, y, clusters[deg.origin]),
        "per_kind": per_kind,
        "scores": {"utt_id": [deg.fs.utt_id[i] for i in deg.rows], "score": scores.tolist()},
    }


# --------------------------------------------------------------------------------------------------- metrics
def bootstrap_groups(fs: FeatureSet, plan: FoldPlan) -> list[str]:
    """The bootstrap cluster of every row (see BOOTSTRAP_UNIT)."""
    out = []
    for i in range(len(fs)):
        if fs.y[i] == 1:
            out.append(f"system={fs.system[i]}" if fs.system[i] else plan.groups[i])
        else:
            out.append(f"speaker={fs.speaker[i]}" if fs.speaker[i] else f"collection={fs.collection[i] or UNKNOWN}")
    return out


def group_bootstrap_eer(
    scores: np.ndarray,
    labels: np.ndarray,
    clusters: Sequence[str],
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 42,
) -> tuple[float, float] | None:
    """Percentile interval of the EER over resamples of whole clusters, per class (None when n_boot is 0)."""
    from dfdet.metrics import eer

    if n_boot <= 0:
        return None
    if not 0 < level < 1:
        raise UsageError(f"confidence level {level} is not in (0, 1)", "e.g. --ci 0.95")
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    cl = np.asarray(clusters, dtype=object).astype(str)
    per_class = []
    for c in (0, 1):
        rows = np.flatnonzero(labels == c)
        names, inv = np.unique(cl[rows], return_inverse=True)
        per_class.append([rows[inv == j] for j in range(len(names))])
    rng_b, rng_s = np.random.default_rng(seed).spawn(2)
    values = np.empty(n_boot)
    for b in range(n_boot):
        pick = [
            np.concatenate([members[j] for j in rng.integers(0, len(members), len(members))])
            for members, rng in zip(per_class, (rng_b, rng_s), strict=True)
        ]
        idx = np.concatenate(pick)
        values[b] = eer(scores[idx], labels[idx])[0]
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(values, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def _eer_or_none(scores: np.ndarray, labels: np.ndarray) -> tuple[float | None, float | None]:
    from dfdet.metrics import eer, roc_auc

    if len(np.unique(labels)) < 2:
        return None, None
    return eer(scores, labels)[0], roc_auc(scores, labels)


# --------------------------------------------------------------------------------------------------- running
@dataclass
class CrossvalConfig:
    """What decides the folds and the intervals (recorded in the JSON)."""

    group_by: str = "system"
    folds: int | str = 5
    speakers: str = "auto"
    augmented: str = "train"
    seed: int = 42
    n_boot: int = 1000
    ci: float = 0.95


def crossval_model(
    fs: FeatureSet,
    plan: FoldPlan,
    model: str,
    config: TrainConfig,
    store_path: str | Path | None = None,
    n_boot: int = 1000,
    ci: float = 0.95,
    log: Callable[[str], None] | None = None,
    progress: Callable[[Any], Any] | None = None,
    degraded: DegradedRows | None = None,
) -> dict[str, Any]:
    """Train and score `model` on every fold of `plan`; per-fold, pooled (with a group bootstrap CI) and per-family
    EER of the pooled scores; with `degraded`, also the EER of those copies per augmentation kind."""
    kind, fitter = fitter_for(model)
    scores = np.full(len(fs), np.nan)
    deg_scores = np.full(len(degraded.rows) if degraded is not None else 0, np.nan)
    folds = []
    t_model = time.perf_counter()
    ks = range(plan.n_folds)
    for k in progress(ks) if progress else ks:
        tr, te = plan.train_rows(k), plan.test_rows(k)
        rec: dict[str, Any] = {
            "fold": k + 1,
            "held_out": plan.held_out(k),
            "n_train": int(len(tr)),
            "n_train_augmented": int(plan.is_augmented[tr].sum()),
            "n_test": int(len(te)),
            "n_test_bonafide": int((fs.y[te] == 0).sum()),
            "n_test_spoof": int((fs.y[te] == 1).sum()),
        }
        if len(np.unique(fs.y[tr])) < 2:
            purged = (
                ", or --speakers none (purging the test speakers left too little)" if plan.speakers == "purge" else ""
            )
            raise DfdetError(
                f"fold {k + 1} ({', '.join(rec['held_out'][:3])}) leaves {len(tr)} training row(s), not both classes",
                f"use fewer --folds, k-fold instead of logo{purged}",
            )
        t0 = time.perf_counter()
        if degraded is None:
            s = np.asarray(fitter(store_path, fs, tr, te, model, config, config.seed), dtype=np.float64)
            n_extra = 0
        else:
            mine = np.flatnonzero(np.isin(degraded.origin, te))
            extra = [(degraded.path, degraded.fs, degraded.rows[mine])]
            s = np.asarray(fitter(store_path, fs, tr, te, model, config, config.seed, extra=extra), np.float64)
            n_extra = len(mine)
        if s.shape != (len(te) + n_extra,) or not np.isfinite(s).all():
            raise DfdetError(f"fitter {kind!r} returned {s.shape} scores for {len(te)} test rows (or non-finite)")
        if n_extra:
            deg_scores[mine] = s[len(te) :]
            s = s[: len(te)]
        scores[te] = s
        rec["eer"], rec["roc_auc"] = _eer_or_none(s, fs.y[te])
        rec["seconds"] = time.perf_counter() - t0
        folds.append(rec)
        if log:
            e = "-" if rec["eer"] is None else f"{100 * rec['eer']:.2f} %"
            log(f"{model} fold {k + 1}/{plan.n_folds}: train {len(tr)} test {len(te)} EER {e}")
    tested = np.flatnonzero(np.isfinite(scores))
    s, y = scores[tested], fs.y[tested].astype(np.int64)
    clusters = np.asarray(bootstrap_groups(fs, plan), dtype=object)[tested]
    pooled_eer, pooled_auc = _eer_or_none(s, y)
    pooled: dict[str, Any] = {
        "eer": pooled_eer,
        "roc_auc": pooled_auc,
        "n_bonafide": int((y == 0).sum()),
        "n_spoof": int((y == 1).sum()),
        "ci": list(group_bootstrap_eer(s, y, clusters, n_boot, ci, plan.seed) or []) or None,
    }
    fold_eers = [f["eer"] for f in folds if f["eer"] is not None]
    families = []
    fam = np.asarray([fs.family[i] or UNKNOWN for i in tested], dtype=object)
    for name in sorted(set(fam[y == 1].tolist())):
        keep = (y == 0) | ((y == 1) & (fam == name))
        e, a = _eer_or_none(s[keep], y[keep])
        families.append(
            {
                "family": name,
                "n_spoof": int(((y == 1) & (fam == name)).sum()),
                "eer": e,
                "roc_auc": a,
                "ci": list(group_bootstrap_eer(s[keep], y[keep], clusters[keep], n_boot, ci, plan.seed) or []) or None,
            }
        )
    out: dict[str, Any] = {
        "model": model,
        "fitter": kind,
        "config": config.to_dict(),
        "folds": folds,
        "pooled": pooled,
        "fold_eer": {
            "n": len(fold_eers),
            "mean": float(np.mean(fold_eers)) if fold_eers else None,
            "max": float(np.max(fold_eers)) if fold_eers else None,
            "min": float(np.min(fold_eers)) if fold_eers else None,
        },
        "per_family": families,
        "seconds": time.perf_counter() - t_model,
        "scores": {"utt_id": [fs.utt_id[i] for i in tested], "score": s.tolist()},
    }
    if degraded is not None:
        done = np.isfinite(deg_scores)  # copies of clips no fold tested (none under k-fold) are left out
        sub = DegradedRows(
            degraded.path,
            degraded.fs,
            degraded.rows[done],
            degraded.origin[done],
            [k for k, d in zip(degraded.kind, done, strict=True) if d],
        )
        out["degraded"] = _degraded_summary(fs, plan, sub, deg_scores[done], n_boot, ci)
    return out


def run_crossval(
    store_path: str | Path,
    models: Sequence[str],
    train_config: Callable[[str], TrainConfig],
    cv: CrossvalConfig,
    log: Callable[[str], None] | None = None,
    progress: Callable[[Any], Any] | None = None,
    fs: FeatureSet | None = None,
    degraded: str | Path | None = None,
) -> dict[str, Any]:
    """Cross-validate each of `models` (`train_config(model)` gives its TrainConfig) on the store; the JSON document
    (`kind: crossval`) that `dfdet crossval` writes and `dfdet report` renders."""
    from dfdet.provenance import file_hash, provenance
    from dfdet.store import load_features

    if not models:
        raise UsageError("no --model given", "e.g. --model linear")
    for m in models:
        fitter_for(m)  # unknown models fail before any training
    fs = fs if fs is not None else load_features(store_path)
    plan = plan_folds(fs, cv.group_by, cv.folds, cv.seed, cv.speakers, cv.augmented)
    deg = degraded_rows(degraded, fs) if degraded is not None else None
    if log:
        d = plan.describe()
        log(
            f"crossval: {len(fs)} rows, {d['n_groups']} groups -> {d['n_units']} units "
            f"(speakers: {plan.speakers}), {plan.n_folds} folds ({plan.mode}, --group {cv.group_by})"
        )
        for note in plan.notes:
            log(f"crossval: {note}")
    fold_info = [
        {
            "fold": k + 1,
            "held_out": plan.held_out(k),
            "n_test": int(len(plan.test_rows(k))),
            "n_train": int(len(plan.train_rows(k))),
        }
        for k in range(plan.n_folds)
    ]
    results = [
        crossval_model(
            fs, plan, m, train_config(m), store_path, cv.n_boot, cv.ci, log=log, progress=progress, degraded=deg
        )
        for m in models
    ]
    p = Path(store_path)
    return {
        "kind": "crossval",
        "schema": SCHEMA,
        "store": {
            "path": str(store_path),
            "file_hash": file_hash(p) if p.is_file() else None,
            "recipe": fs.recipe,
            "recipe_hash": fs.recipe_hash,
            "rows": len(fs),
            "bonafide": int((fs.y == 0).sum()),
            "spoof": int((fs.y == 1).sum()),
        },
        "settings": asdict(cv),
        "plan": {**plan.describe(), "folds": fold_info},
        "bootstrap": {"n_boot": cv.n_boot, "level": cv.ci, "seed": cv.seed, "unit": BOOTSTRAP_UNIT},
        "models": results,
        "provenance": provenance(),
    }


def oof_tables(doc: dict[str, Any], store: str | Path) -> dict[str, ScoreTable]:
    """Per model, its out-of-fold scores as a labelled score table (each tested row scored by the fold model that
    never saw its group), with the store's origin columns: what `calibrate` and `evaluate` read."""
    from dfdet.scores import ScoreTable
    from dfdet.store import load_features

    fs = load_features(store)
    row = {u: i for i, u in enumerate(fs.utt_id)}
    out = {}
    for m in doc["models"]:
        ids = [str(u) for u in m["scores"]["utt_id"]]
        idx = [row[u] for u in ids]
        extra = {c: [getattr(fs, c)[i] for i in idx] for c in ("speaker", "system", "family", "collection")}
        out[m["model"]] = ScoreTable(
            ids,
            np.asarray(m["scores"]["score"], dtype=np.float64),
            path=[fs.path[i] for i in idx],
            label=np.asarray([fs.y[i] for i in idx], dtype=np.int8),
            extra={k: v for k, v in extra.items() if any(v)},
        )
    return out
