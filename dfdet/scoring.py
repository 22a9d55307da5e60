"""Scoring: load any detector file (model, calibrated detector, ensemble) and score feature stores or audio.

Every detector becomes one `ScoringDetector`: a list of member models (each a `dfdet.artifact.Detector`) and a
function from the member-score matrix to the final score. Member scores are bona-fide-positive natural-log odds
computed from the models' logits (`score = -logit`), never from probabilities (DESIGN.md: saturated probabilities tie
and corrupt EER). Calibration maps the final score to an LLR; `p_spoof = sigmoid(-score)`; decision is bona fide iff
`score >= threshold`.

Audio is featurized by the featurize engine's own per-file extraction (`dfdet.featurize.extract_one`) and worker
pool, so `score DIR` computes exactly the features `featurize DIR` stores (cast to float32 like the store), and the
scores of audio and of its feature store agree. Paths streamed on stdin are scored lazily: a row is produced as soon
as its file is done, before the input ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

from dfdet import caveats, console
from dfdet.caveats import MIN_SECONDS
from dfdet.errors import DfdetError, InputError, UsageError
from dfdet.inputs import META_COLUMNS, Utterance
from dfdet.scores import ScoreTable, format_score, score_to_p_spoof

if TYPE_CHECKING:
    from dfdet.artifact import Detector
    from dfdet.features import Recipe
    from dfdet.store import FeatureSet

SKIP_FIX = "pass --skip-bad to continue past bad inputs"
STORE_SUFFIXES = (".h5", ".hdf5", ".hdf", ".npz")
MEMBER_PREFIX = "score_"  # per-member raw score columns: score_<member name>
DURATION_COLUMN = "duration_s"  # seconds of audio in the file
SCORED_COLUMN = "scored_s"  # seconds the recipe looked at: less than duration_s when only the first window was scored
CROP_COLUMNS = (DURATION_COLUMN, SCORED_COLUMN)
_BLOCK_ROWS = 65536  # features scored per block (bounded memory on large stores)
_MAX_NESTING = 8


# --------------------------------------------------------------------------------------------------- detectors
@dataclass(frozen=True)
class RecipeRef:
    """The feature recipe a detector expects: name and configuration hash (None when the model records none)."""

    name: str | None
    hash: str | None
    config: dict[str, Any] | None = None

    def __str__(self) -> str:
        return f"{self.name or 'unknown'} (hash {self.hash or 'unknown'})"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "hash": self.hash}


@dataclass
class Member:
    """One model inside a detector: its name (file stem or ensemble member name), file and loaded Detector."""

    name: str
    path: str
    detector: Detector


class ScoringDetector:
    """A model, a calibrated detector or an ensemble behind one interface.

    `score_features(X)` -> {"score", "p_spoof", "decision" (int8: 0 bona fide, 1 spoof), "members" {name: raw
    score}}; `threshold` is on the final score scale; `recipe` names the features every member expects.
    """

    def __init__(
        self,
        kind: str,
        path: str,
        members: list[Member],
        combine: Callable[[np.ndarray], np.ndarray],
        threshold: float,
        threshold_source: str,
        scale: str,
        layers: list[dict[str, Any]],
    ) -> None:
        self.kind = kind
        self.path = str(path)
        self.members = members
        self._combine = combine
        self.threshold = float(threshold)
        self.threshold_source = threshold_source
        self.scale = scale
        self.layers = layers
        self.recipe = _common_recipe(members, self.path)
        kinds = {getattr(m.detector, "input_kind", "vector") for m in members}
        if len(kinds) != 1:
            detail = ", ".join(f"{m.name}: {getattr(m.detector, 'input_kind', 'vector')}" for m in members)
            raise DfdetError(
                f"{self.path}: members read different inputs ({detail})",
                "ensemble models that read the same input (all frame models or all vector models)",
            )
        self.input_kind = kinds.pop()  # "vector": feature rows [N, D]; "frames": a sequence of [T, D] matrices
        chunks = {getattr(m.detector, "chunk_frames", None) for m in members}
        self.chunk_frames = chunks.pop() if len(chunks) == 1 else None
        dims = {m.detector.input_dim for m in members}
        if len(dims) != 1:
            detail = ", ".join(f"{m.name}: {m.detector.input_dim}" for m in members)
            raise DfdetError(
                f"{self.path}: members expect different feature dimensions ({detail})",
                "ensemble models trained on the same features",
            )
        self.input_dim = dims.pop()

    @property
    def member_names(self) -> list[str]:
        return [m.name for m in self.members]

    def member_scores(self, X: Any) -> np.ndarray:
        """Raw bona-fide-positive score (-logit) of every member: float64 [N, M].

        X: feature rows [N, D] (array or FeatureSet) for vector models; for frame models a sequence of N frame
        matrices [T, D] or the FeatureSet of a frame store (its frames are read)."""
        if self.input_kind == "frames":
            return self._frame_member_scores(X)
        X = np.asarray(X.X if hasattr(X, "X") and hasattr(X, "y") else X)
        if X.ndim == 1:
            X = X[None, :]
        if X.ndim != 2 or X.shape[1] != self.input_dim:
            raise DfdetError(
                f"features have shape {X.shape} but {self.path} expects [N, {self.input_dim}]",
                f"featurize with --recipe {self.recipe.name or '<the model recipe>'}",
            )
        out = np.empty((len(X), len(self.members)), dtype=np.float64)
        with self._no_grad():
            for start in range(0, len(X), _BLOCK_ROWS):
                block = X[start : start + _BLOCK_ROWS]
                for m, member in enumerate(self.members):
                    out[start : start + len(block), m] = member.detector.scores(block)
        return out

    def _no_grad(self) -> contextlib.AbstractContextManager:
        """torch.inference_mode (no autograd graph: Detector.logits does not disable it itself) when a member runs
        torch; nothing for numpy-only detectors, which never import torch."""
        if not any(getattr(m.detector, "needs_torch", True) for m in self.members):
            return contextlib.nullcontext()
        import torch

        return torch.inference_mode()

    def _frame_member_scores(self, mats: Any) -> np.ndarray:
        if hasattr(mats, "X") and hasattr(mats, "y"):  # a FeatureSet of a frame store: its frames
            mats = self.store_input(mats)
        mats = list(mats)
        out = np.empty((len(mats), len(self.members)), dtype=np.float64)
        for m, member in enumerate(self.members):
            out[:, m] = member.detector.scores(mats) if mats else np.zeros(0)
        return out

    def dummy_input(self) -> Any:
        """One all-zero input of the kind this detector reads (warm-up)."""
        if self.input_kind == "frames":
            return [np.zeros((1, self.input_dim), dtype=np.float32)]
        return np.zeros((1, self.input_dim), dtype=np.float32)

    def input_of(self, value: Any, rec: Recipe) -> Any:
        """One utterance's features as the featurize engine extracted them -> this detector's input for it.

        A frame recipe gives [T, D] frames (possibly flattened): a frame model reads them as float32 (as a frame
        store keeps them); a vector model reads their per-dimension mean and std in the frame store's /features
        layout, so it scores audio as it scored the store. A vector recipe gives one row.
        """
        if not getattr(rec, "frames", False):
            return np.asarray(value, dtype=np.float32)[None, :]
        d = len(rec.feature_names)
        m = np.asarray(value, dtype=np.float64).reshape(-1, d)
        if self.input_kind == "frames":
            return [m.astype(np.float32)]
        from dfdet.store import frame_stat_layout

        order, _, _ = frame_stat_layout(list(rec.feature_names), list(rec.groups))
        mean = m.mean(axis=0)
        std = np.sqrt(((m - mean) ** 2).mean(axis=0))
        return np.concatenate([mean, std])[order].astype(np.float32)[None, :]

    def store_input(self, fs: FeatureSet) -> Any:
        """What a feature store gives this detector: its /features rows, or its frames read row by row (lazily)."""
        if self.input_kind != "frames":
            return fs.X
        return _StoreFrames(fs.source, len(fs))

    def combine(self, S: np.ndarray) -> np.ndarray:
        """Member-score matrix [N, M] -> final score [N] (identity, fusion and/or calibration)."""
        S = np.asarray(S, dtype=np.float64)
        if len(S) == 0:
            return np.zeros(0)
        return np.asarray(self._combine(S), dtype=np.float64).reshape(-1)

    def score_features(self, X: Any) -> dict[str, Any]:
        """Scores of features [N, D] (array or FeatureSet): score, p_spoof, decision and per-member raw scores."""
        S = self.member_scores(X)
        score = self.combine(S)
        return {
            "score": score,
            "p_spoof": score_to_p_spoof(score),
            "decision": np.where(score >= self.threshold, 0, 1).astype(np.int8),
            "members": {name: S[:, m] for m, name in enumerate(self.member_names)},
        }

    def check_features(self, fs: FeatureSet) -> None:
        """Refuse features of another recipe (naming both hashes and the fix) or of another dimension."""
        want, got = self.recipe, fs.recipe_hash
        src = fs.source or "the features"
        if want.hash and got and got != want.hash:
            raise DfdetError(
                f"{src} was featurized with recipe {fs.recipe} (hash {got}) but {self.path} expects recipe "
                f"{want.name} (hash {want.hash})",
                f"featurize the audio with --recipe {want.name} (dfdet featurize AUDIO --recipe {want.name} -o "
                "FEATS.h5), or score the audio directly",
            )
        for member in self.members:
            member.detector.check_features(fs)

    def feature_recipe(self) -> Recipe:
        """The recipe object that turns audio into the features this detector expects (hash checked)."""
        from dfdet.features import get_recipe, recipe_hash, recipe_names

        want = self.recipe
        if not want.name:
            raise DfdetError(
                f"{self.path} records no feature recipe, so it cannot score audio",
                "score a feature store made like its training features instead",
            )
        if want.name not in recipe_names():
            raise DfdetError(
                f"{self.path} expects feature recipe {want.name!r}, which this dfdet does not have",
                f"install the dfdet version that provides it (known recipes: {', '.join(recipe_names())})",
            )
        rec = get_recipe(want.name)
        have = recipe_hash(rec)
        if want.hash and have != want.hash:
            raise DfdetError(
                f"{self.path} expects recipe {want.name} with hash {want.hash}, but this dfdet's {want.name} has hash "
                f"{have} (its definition changed)",
                "score with the dfdet version that trained the model, or re-train on features from this version",
            )
        return rec

    def describe(self) -> dict[str, Any]:
        """What this detector is, for `-v` and provenance: kind, layers, members, recipe, threshold, output scale."""
        return {
            "kind": self.kind,
            "path": self.path,
            "recipe": self.recipe.to_dict(),
            "input_dim": self.input_dim,
            "threshold": self.threshold,
            "threshold_source": self.threshold_source,
            "score_scale": self.scale,
            "decision_rule": "bonafide if score >= threshold else spoof",
            "layers": self.layers,
            "members": [
                {"name": m.name, "path": m.path, "arch": m.detector.arch, "recipe_hash": m.detector.recipe_hash}
                for m in self.members
            ],
        }

    def summary(self) -> str:
        """One line for `-v`: kind, members, recipe, threshold."""
        names = ", ".join(self.member_names)
        return (
            f"{self.kind} {self.path}: {len(self.members)} member(s) [{names}], recipe {self.recipe}, "
            f"score = {self.scale}, threshold {self.threshold:g} ({self.threshold_source})"
        )


class _StoreFrames:
    """The frame matrices of a frame store's rows, in row order, read one at a time (bounded memory)."""

    def __init__(self, path: str, n: int) -> None:
        self.path, self.n = path, n

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[np.ndarray]:
        from dfdet.store import FrameReader

        with FrameReader(self.path) as r:
            if len(r) != self.n:
                raise DfdetError(f"{self.path}: {len(r)} frame rows for {self.n} store rows", "featurize it again")
            for i in range(len(r)):
                yield r.read(i)


def _common_recipe(members: list[Member], where: str) -> RecipeRef:
    hashes = {m.detector.recipe_hash for m in members}
    if len(hashes) > 1:
        detail = "; ".join(f"{m.name}: {m.detector.recipe} (hash {m.detector.recipe_hash})" for m in members)
        raise DfdetError(
            f"{where}: ensemble members expect different feature recipes ({detail})",
            "ensemble only models trained on features of the same recipe",
        )
    first = members[0].detector
    return RecipeRef(first.recipe, first.recipe_hash, (first.meta.get("recipe") or {}).get("config"))


def _read_kind(path: Path) -> str | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(
            path, "no such detector file", "pass a model .pt, a calibration JSON or an ensemble JSON"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(path, f"cannot read as JSON ({e})", "pass a calibration or ensemble JSON") from None
    return doc.get("kind") if isinstance(doc, dict) else None


def _model_detector(path: Path, portable: bool = True) -> ScoringDetector:
    from dfdet.portable import load_portable

    det = load_portable(path) if portable else None  # a linear model's torch-free copy (dfdet export)
    if det is None:
        from dfdet.artifact import load_model

        det = load_model(path)
    source = (det.meta.get("threshold_source") or "model") if isinstance(det.meta, dict) else "model"
    return ScoringDetector(
        "model",
        str(path),
        [Member(path.stem, str(path), det)],
        lambda S: S[:, 0],
        det.threshold,
        f"model: {source}",
        "raw natural-log odds (-logit)",
        [{"layer": "model", "path": str(path), "arch": det.arch}],
    )


def _ensemble_detector(path: Path) -> ScoringDetector:
    from dfdet.artifact import load_model
    from dfdet.fusion import ensemble_scorer, load_ensemble, member_paths

    doc = load_ensemble(path)
    not_models = [m.get("name", "?") for m in doc["members"] if m.get("kind") != "model"]
    if not_models:
        raise DfdetError(
            f"{path}: member(s) {not_models} are score files, which cannot score new inputs",
            "refit the ensemble with --model members (dfdet ensemble --model A.pt --model B.pt --on DEV.h5), or use "
            "`dfdet ensemble --apply` on their score files",
        )
    members = [
        Member(str(m.get("name") or Path(p).stem), str(p), load_model(p))
        for m, p in zip(doc["members"], member_paths(doc, path), strict=True)
    ]
    cal = doc.get("calibration")  # validated by load_ensemble
    thr = doc.get("threshold") or {}
    layers = [{"layer": "ensemble", "path": str(path), "method": doc.get("method"), "members": len(members)}]
    if cal:
        layers.append({"layer": "calibration", "method": cal["method"], "inside": str(path)})
    return ScoringDetector(
        "ensemble",
        str(path),
        members,
        ensemble_scorer(doc),
        float(thr.get("value", 0.0)),
        f"ensemble: {thr.get('policy', 'default 0')}",
        "calibrated natural-log LLR" if cal else "fused score",
        layers,
    )


def with_calibration(
    inner: ScoringDetector, doc: dict[str, Any], source: str, kind: str = "calibrated detector"
) -> ScoringDetector:
    """`inner` followed by the calibration document `doc` (its threshold replaces the inner one)."""
    from dfdet.calibration import calibrator_from_dict

    cal = calibrator_from_dict(doc)
    inner_combine = inner.combine
    thr = doc.get("threshold") or {}
    return ScoringDetector(
        kind,
        source,
        inner.members,
        lambda S: cal.transform(inner_combine(S)),
        float(thr["value"]),
        f"calibration: {thr.get('policy', '?')}",
        "calibrated natural-log LLR",
        [*inner.layers, {"layer": "calibration", "path": source, "method": cal.name}],
    )


def _load(path: Path, depth: int, portable: bool = True) -> ScoringDetector:
    from dfdet.calibration import detector_path, load_calibration

    if depth > _MAX_NESTING:
        raise InputError(path, "calibration files nest too deep (a loop?)", "point the calibration at a model file")
    if path.suffix.lower() != ".json":
        return _model_detector(path, portable)
    kind = _read_kind(path)
    if kind == "ensemble":
        return _ensemble_detector(path)
    if kind != "calibration":
        raise InputError(
            path,
            f"not a detector (JSON kind {kind!r})",
            "pass a model .pt (dfdet train), a calibrated detector (dfdet calibrate --detector) or an ensemble JSON "
            "(dfdet ensemble)",
        )
    doc = load_calibration(path)
    inner_path = detector_path(doc, path)
    if inner_path is None:
        raise InputError(
            path,
            "this calibration names no detector",
            "pass the model with the calibration (dfdet score MODEL --calibration CAL.json ...), or refit it with "
            "`dfdet calibrate --detector MODEL`",
        )
    return with_calibration(_load(inner_path, depth + 1, portable), doc, str(path))


def load_detector(
    path: str | os.PathLike, calibration: str | os.PathLike | None = None, portable: bool = True
) -> ScoringDetector:
    """A model `.pt`, a calibration JSON naming a detector, or an ensemble JSON of model members -> ScoringDetector.

    `calibration`: a calibration JSON applied on top of the detector's final score (its threshold then applies).
    `portable=False`: members always as torch modules, never their numpy copies (for gradients: explain, attack).
    """
    p = Path(path)
    if not p.exists():
        raise InputError(p, "no such detector file", "pass a model .pt, a calibration JSON or an ensemble JSON")
    det = _load(p, 0, portable)
    if calibration is not None:
        from dfdet.calibration import detector_path, load_calibration

        doc = load_calibration(calibration)
        named = detector_path(doc, calibration)
        if named is not None and os.path.abspath(named) != os.path.abspath(p):
            console.warn(f"{calibration} was fitted for {named}; applying it to {p}")
        det = with_calibration(det, doc, str(calibration), kind=f"{det.kind} + calibration")
    return det


# --------------------------------------------------------------------------------------------------- stores
def member_column(name: str) -> str:
    return f"{MEMBER_PREFIX}{name}"


def _seconds(x: float) -> str:
    return "" if x != x else f"{float(x):.3f}"


def crop_columns(duration: Any, window: float | None) -> dict[str, list[str]]:
    """`duration_s` and `scored_s` columns (text) for clips of `duration` seconds under a recipe `window`."""
    d = np.asarray(duration, dtype=np.float64).reshape(-1)
    return {
        DURATION_COLUMN: [_seconds(v) for v in d],
        SCORED_COLUMN: [_seconds(caveats.scored_seconds(float(v), window)) for v in d],
    }


def cropped_rows(table: ScoreTable) -> int:
    """Rows of a score table judged on a crop (scored_s < duration_s); 0 when the table has no such columns."""
    if not all(c in table.extra for c in CROP_COLUMNS):
        return 0
    pairs = zip(table.extra[DURATION_COLUMN], table.extra[SCORED_COLUMN], strict=True)
    return sum(1 for d, sc in pairs if d and sc and float(sc) < float(d))


def score_store(
    detector: ScoringDetector,
    fs: FeatureSet,
    members: bool = False,
    skip_bad: bool = False,
    failures: list[dict[str, str]] | None = None,
    min_seconds: float = MIN_SECONDS,
) -> tuple[ScoreTable, list[dict[str, str]]]:
    """Score every row of a feature store -> (ScoreTable sorted by utt_id, rows skipped); `members` adds
    score_<name> columns; a store that records durations adds `duration_s` and `scored_s`.

    Refuses features of another recipe. Rows whose score is not finite (NaN features in an .npz) and rows from clips
    shorter than `min_seconds` (where the store records durations) are an error, or under `skip_bad` warned about,
    left out and listed (also appended to `failures` when given).
    """
    detector.check_features(fs)
    # Frame models forward one utterance at a time, as for audio: one torch thread gains nothing there and keeps the
    # arithmetic the audio path's (score contract).
    with _torch_threads(1 if detector.input_kind == "frames" else None):
        out = detector.score_features(detector.store_input(fs))
    score = out["score"]
    skipped: list[dict[str, str]] = []
    duration = np.asarray(fs.duration, dtype=np.float64) if fs.duration is not None else np.full(len(fs), np.nan)
    short = [caveats.too_short(float(d), min_seconds) for d in duration]
    nonfinite = ~np.isfinite(score)
    too_short = np.array([r is not None for r in short], dtype=bool) & ~nonfinite  # each row reported once
    where = fs.source or "features"
    for bad, what, fix, reason in (
        (nonfinite, "score NaN or infinite", f"check those feature rows for NaN; {SKIP_FIX}", "score is not finite"),
        (too_short, f"come from clips shorter than {min_seconds:g} s", caveats.too_short_fix(min_seconds), None),
    ):
        if not bad.any():
            continue
        first = int(np.flatnonzero(bad)[0])
        if not skip_bad:
            detail = f"{fs.utt_id[first]!r}" + ("" if reason else f", {duration[first]:.2f} s")
            raise DfdetError(f"{where}: {int(bad.sum())} row(s) {what} (e.g. {detail})", fix)
        for i in np.flatnonzero(bad):
            why = reason or str(short[i])
            console.warn(f"skipped {fs.utt_id[i]}: {why}{' (NaN features?)' if reason else ''}")
            skipped.append({"utt_id": fs.utt_id[i], "path": fs.path[i], "reason": why})
    if failures is not None:
        failures.extend(skipped)
    keep = np.flatnonzero(~(nonfinite | too_short))
    pick = lambda seq: [seq[i] for i in keep]  # noqa: E731
    extra: dict[str, list[str]] = {}
    for name in META_COLUMNS:
        col = getattr(fs, name, None) or []
        if any(col):
            extra[name] = pick(col)
    if np.isfinite(duration).any():
        extra.update(crop_columns(duration[keep], caveats.window_seconds(detector.recipe.config)))
    if members:
        for name, col in out["members"].items():
            extra[member_column(name)] = [format_score(v) for v in col[keep]]
    table = ScoreTable(
        pick(fs.utt_id),
        score[keep],
        path=pick(fs.path) if any(fs.path) else None,
        p_spoof=out["p_spoof"][keep],
        decision=out["decision"][keep],
        label=np.asarray(fs.y, dtype=np.int8)[keep],
        extra=extra,
        source=fs.source,
    )
    return table.sorted(), skipped


# --------------------------------------------------------------------------------------------------- audio
@dataclass
class ScoredRow:
    """One scored utterance (decision int8: 0 bona fide, 1 spoof; label -1 unknown); `duration` seconds of audio,
    of which the recipe looked at `scored` (its first window)."""

    utt_id: str
    path: str
    score: float
    p_spoof: float
    decision: int
    label: int = -1
    speaker: str = ""
    system: str = ""
    domain: str = ""
    duration: float = float("nan")
    members: dict[str, float] = field(default_factory=dict)
    scored: float = float("nan")
    codec: str = ""
    codec_q: str = ""
    attack: str = ""
    gender: str = ""
    family: str = ""
    collection: str = ""
    augment: str = ""

    @property
    def cropped(self) -> bool:
        return self.scored < self.duration

    def writer_kwargs(self, members: bool = False, meta: Sequence[str] = ()) -> dict[str, Any]:
        """Keyword arguments for `ScoreWriter.write`."""
        kw: dict[str, Any] = {
            "path": self.path,
            "p_spoof": self.p_spoof,
            "decision": self.decision,
            "label": self.label,
            DURATION_COLUMN: _seconds(self.duration),
            SCORED_COLUMN: _seconds(self.scored),
        }
        for name in meta:
            kw[name] = getattr(self, name)
        if members:
            kw.update({member_column(k): format_score(v) for k, v in self.members.items()})
        return kw


@dataclass
class BadInput:
    """An input found bad before decoding (not audio, duplicate id, not in the label file)."""

    path: str
    reason: str
    utt_id: str = ""


def _as_utterance(item: Utterance | str | os.PathLike, cwd: str) -> Utterance:
    if isinstance(item, Utterance):
        return item
    return Utterance(utt_id=stream_utt_id(str(item), cwd), path=os.path.abspath(os.path.join(cwd, os.fspath(item))))


def stream_utt_id(path: str, cwd: str | None = None) -> str:
    """utt_id of a path streamed on stdin: relative to the working directory (absolute outside it), no extension.

    The common root of a stream is unknown until it ends, so ids cannot be relative to it as for a listed corpus.
    """
    cwd = cwd or os.getcwd()
    a = os.path.abspath(os.path.join(cwd, path))
    rel = os.path.relpath(a, cwd)
    if rel.startswith(".."):
        rel = a
    stem, ext = os.path.splitext(rel)
    return (stem if ext else rel).replace(os.sep, "/")


class _LabelIndex:
    """Lazy join of streamed paths with a label file: by resolved path, then by file stem (unambiguous only)."""

    def __init__(self, utts: list[Utterance]) -> None:
        self.by_path = {os.path.realpath(u.path): u for u in utts}
        self.by_stem: dict[str, Utterance | None] = {}
        for u in utts:
            stem = os.path.splitext(os.path.basename(u.path))[0]
            self.by_stem[stem] = None if stem in self.by_stem else u

    def find(self, path: str) -> Utterance | None:
        hit = self.by_path.get(os.path.realpath(path))
        if hit is None:
            hit = self.by_stem.get(os.path.splitext(os.path.basename(path))[0])
        return hit


def stdin_utterances(
    stream: TextIO, labels: list[Utterance] | None = None, cwd: str | None = None, label_file: str = "--labels"
) -> Iterator[Utterance | BadInput]:
    """Utterances from paths on `stream`, one per line, read lazily (each as soon as its line arrives).

    Blank and `#` lines are skipped, directories are walked (sorted), non-audio names, duplicate ids and (with
    `labels`) files missing from the label file come out as BadInput. A file listed twice is scored once.
    """
    from dfdet.audio import is_audio_path
    from dfdet.inputs import list_audio_paths

    cwd = cwd or os.getcwd()
    index = _LabelIndex(labels) if labels is not None else None
    seen_paths: set[str] = set()
    seen_ids: dict[str, str] = {}
    for lineno, raw in enumerate(iter(stream.readline, ""), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        path = os.path.abspath(os.path.join(cwd, os.path.expanduser(line)))
        if os.path.isdir(path):
            try:
                found = [str(p) for p in list_audio_paths([path])]
            except DfdetError as e:
                yield BadInput(path, str(e))
                continue
        elif not is_audio_path(path):
            yield BadInput(path, f"stdin line {lineno}: not a supported audio file name")
            continue
        else:
            found = [path]
        for p in found:
            key = os.path.realpath(p)
            if key in seen_paths:
                continue
            seen_paths.add(key)
            utt = Utterance(stream_utt_id(p, cwd), p)
            if index is not None:
                hit = index.find(p)
                if hit is None:
                    yield BadInput(p, f"not in label file {label_file}", utt.utt_id)
                    continue
                utt = hit.at(p)
            if utt.utt_id in seen_ids:
                yield BadInput(p, f"duplicate utt_id {utt.utt_id!r} (also {seen_ids[utt.utt_id]})", utt.utt_id)
                continue
            seen_ids[utt.utt_id] = p
            yield utt


@contextlib.contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """Limit torch's intra-op threads while pool workers use the other cores (restored afterwards)."""
    if n is None or "torch" not in sys.modules:  # nothing to limit where no torch model is loaded
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def score_audio_stream(
    detector: ScoringDetector,
    inputs: Iterable[Utterance | BadInput | str | os.PathLike],
    jobs: int = 1,
    skip_bad: bool = False,
    failures: list[dict[str, str]] | None = None,
    lazy: bool | None = None,
    min_seconds: float = MIN_SECONDS,
) -> Iterator[ScoredRow]:
    """Score audio files, yielding rows in input order.

    `inputs`: Utterances or paths (ids relative to the working directory) or BadInput markers. A list/tuple is
    featurized with the featurize engine's `result_stream` (dfdet.pool, `jobs` workers) and scored one file at a time;
    any other iterable (e.g. `stdin_utterances`) is consumed lazily and each row is yielded as soon as it is ready
    (`lazy` overrides the choice). Bad files, and files shorter than `min_seconds` (no verdict on what is mostly
    zero padding), raise InputError, or under `skip_bad` are warned about, appended to `failures` ({"utt_id",
    "path", "reason"}) and left out. Rows record the seconds scored: a fixed-window recipe looks at the first window.
    """
    rec = detector.feature_recipe()
    if jobs < 1:
        raise UsageError(f"jobs must be >= 1, got {jobs}", "pass -j N with N >= 1")
    if lazy is None:
        lazy = not isinstance(inputs, (list, tuple))
    if lazy:
        # Set up now, not on the first next(): the first streamed row must not wait for lazy imports and tables.
        detector.combine(detector.member_scores(detector.dummy_input()))
        from dfdet.featurize import warm_up

        warm_up(rec)
    return _score_audio(detector, rec, inputs, jobs, skip_bad, failures, lazy, min_seconds)


def bad_input_handler(skip_bad: bool, failures: list[dict[str, str]] | None) -> Callable[..., None]:
    """`bad(path, reason, utt_id="", fix=SKIP_FIX)`: audio scoring's rule for a bad input (InputError, or under
    `skip_bad` a warning and a `failures` entry), shared by `score` and `score --segments`."""

    def bad(path: str, reason: str, utt_id: str = "", fix: str = SKIP_FIX) -> None:
        if not skip_bad:
            raise InputError(path, reason, fix)
        console.warn(f"skipped {path}: {reason}")
        if failures is not None:
            failures.append({"utt_id": utt_id, "path": str(path), "reason": str(reason)})

    return bad


def pool_entries(
    inputs: Iterable[Utterance | BadInput | str | os.PathLike], lazy: bool, bad: Callable[..., None]
) -> tuple[Iterable[Utterance | BadInput], Callable[[Any], Any] | None]:
    """(entries, local) for the worker pool: Utterances (paths get ids relative to the working directory); a list's
    BadInput markers go to `bad` now, a stream's are answered by `local` without a worker, in input order."""
    cwd = os.getcwd()
    if lazy:
        return (x if isinstance(x, BadInput) else _as_utterance(x, cwd) for x in inputs), (
            lambda x: ("bad", x.reason, 0.0) if isinstance(x, BadInput) else None
        )
    items = [x if isinstance(x, BadInput) else _as_utterance(x, cwd) for x in inputs]
    for b in items:
        if isinstance(b, BadInput):
            bad(b.path, b.reason, b.utt_id)
    return [u for u in items if isinstance(u, Utterance)], None


def _score_audio(
    detector: ScoringDetector,
    rec: Recipe,
    inputs: Iterable[Utterance | BadInput | str | os.PathLike],
    jobs: int,
    skip_bad: bool,
    failures: list[dict[str, str]] | None,
    lazy: bool,
    min_seconds: float = MIN_SECONDS,
) -> Iterator[ScoredRow]:
    window = caveats.window_seconds(rec.config())
    bad = bad_input_handler(skip_bad, failures)

    def rows_of(batch: list[tuple[Utterance, np.ndarray, float]]) -> Iterator[ScoredRow]:
        # Each file is forwarded on its own (a batch of one, one torch thread): its score never depends on which
        # other files share the run, their order, -j or stdin timing. float32 as the store keeps it.
        names = detector.member_names
        for u, v, duration in batch:
            why = caveats.too_short(duration, min_seconds)
            if why is not None:  # in input order, like every other bad input
                bad(u.path, str(why), u.utt_id, caveats.too_short_fix(min_seconds))
                continue
            out = detector.score_features(detector.input_of(v, rec))
            s = float(out["score"][0])
            if not np.isfinite(s):
                bad(u.path, "score is not finite", u.utt_id)
                continue
            yield ScoredRow(
                u.utt_id,
                str(u.path),
                s,
                float(out["p_spoof"][0]),
                int(out["decision"][0]),
                int(u.label),
                u.speaker,
                u.system,
                u.domain,
                float(duration),
                {n: float(out["members"][n][0]) for n in names},
                caveats.scored_seconds(float(duration), window),
                **{k: getattr(u, k) for k in META_COLUMNS[3:]},
            )

    # One pool for file lists and stdin alike (dfdet.pool). Live (stdin): a reader thread takes paths as they
    # arrive, rows come out as soon as the oldest file is done, and an error, Ctrl-C or a dead worker ends the run
    # even while stdin stays open.
    from dfdet.featurize import result_stream
    from dfdet.pool import IDLE

    entries, early = pool_entries(inputs, lazy, bad)
    # One row at a time gains nothing from more torch threads, and one thread fixes the arithmetic (score contract).
    with _torch_threads(1), result_stream(rec, entries, jobs, local=early, live=lazy) as results:
        for got in results:
            if got is IDLE:  # nothing more is ready yet; every finished row has already gone out
                continue
            u, (status, value, duration) = got
            if status != "ok":
                bad(u.path, value, u.utt_id)
                continue
            yield from rows_of([(u, value, duration)])


def rows_to_table(rows: Iterable[ScoredRow], members: bool = False, source: str = "") -> ScoreTable:
    """Collect rows into a ScoreTable sorted by utt_id (speaker/system/domain columns where any is known, then
    duration_s and scored_s)."""
    rows = list(rows)
    extra: dict[str, list[str]] = {}
    for name in META_COLUMNS:
        col = [getattr(r, name) for r in rows]
        if any(col):
            extra[name] = col
    extra[DURATION_COLUMN] = [_seconds(r.duration) for r in rows]
    extra[SCORED_COLUMN] = [_seconds(r.scored) for r in rows]
    if members and rows:
        for name in rows[0].members:
            extra[member_column(name)] = [format_score(r.members[name]) for r in rows]
    table = ScoreTable(
        [r.utt_id for r in rows],
        np.array([r.score for r in rows], dtype=np.float64),
        path=[r.path for r in rows],
        p_spoof=np.array([r.p_spoof for r in rows], dtype=np.float64),
        decision=np.array([r.decision for r in rows], dtype=np.int8),
        label=np.array([r.label for r in rows], dtype=np.int8),
        extra=extra,
        source=source,
    )
    return table.sorted()


def score_provenance(
    detector: str | os.PathLike,
    det: ScoringDetector,
    *,
    calibration: str | os.PathLike | None = None,
    labels: str | os.PathLike | None = None,
    store: str | os.PathLike | None = None,
    inputs: Sequence[str] = (),
    audio_files: int | None = None,
    failures: Sequence[dict[str, str]] = (),
) -> dict[str, Any]:
    """The fields `score` records in a score file's `.prov.json` sidecar: the detector file (its kind, content hash
    and its member models' hashes, so a report can match scores to models by content rather than by file name), the
    calibration, the input (a feature store's hash, or how many audio files), labels, skipped inputs and the run."""
    from dfdet.scores import file_record, sidecar_fields

    hashes: dict[str, str | None] = {}
    members = [{"name": m.name, **file_record(m.path, hashes)} for m in det.members]
    if store is not None:
        source: dict[str, Any] = {"kind": "features", **file_record(store, hashes)}
    else:
        source = {"kind": "stdin" if tuple(inputs) == ("-",) else "audio", "files": audio_files}
        source["arguments"] = [str(a) for a in inputs]
    # the kind of the DETECTOR file: model, ensemble or calibrated detector (--calibration is recorded apart)
    kind = det.kind.split(" + ")[0]
    return sidecar_fields(
        detector, kind, members, source, command="score", calibration=calibration, labels=labels,
        skipped=failures, hashes=hashes,
    )  # fmt: skip


def is_store_path(arg: str) -> bool:
    """True for a feature-store argument (.h5/.hdf5/.npz) rather than audio."""
    return Path(str(arg)).suffix.lower() in STORE_SUFFIXES


@dataclass
class ScoreRun:
    """What a scoring run did (for the summary line and the exit status)."""

    done: int = 0
    total: int = 0
    skipped: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    started: float = field(default_factory=time.perf_counter)
    cropped: int = 0  # rows judged on the recipe's first `window` seconds only
    window: float | None = None

    def crop_note(self, store: bool = False) -> str | None:
        """The once-per-run note on rows scored on a crop (None when there were none)."""
        return caveats.crop_note(self.cropped, self.done, self.window, store)

    def finish(self) -> ScoreRun:
        self.skipped = len(self.failures)
        self.total = self.done + self.skipped
        self.seconds = time.perf_counter() - self.started
        return self
