"""A detector's robustness to real-signal degradations (`dfdet attack MODEL AUDIO... --method degrade`).

Each condition of `dfdet.degrade` is applied to the decoded audio in memory, the result is featurized with the
detector's own recipe (`prepare` + `extract`, exactly as `featurize` does) and scored; per condition the report gives
EER, AUC, accuracy at the detector's threshold and how many decisions changed against the clean audio.
Seeded: condition k of utterance i draws its noise from `default_rng([seed, i, k])`, so any worker may take any file.
With `jobs > 1` a pool of featurize's workers (SIGINT ignored, one BLAS thread) decodes, degrades and featurizes whole
files; the parent keeps the model and scores every condition once at the end, so results are identical for any -j.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from dfdet.degrade import CONDITIONS, Degradation, apply, available, resolve_conditions
from dfdet.errors import DfdetError, InputError, UsageError

if TYPE_CHECKING:
    from dfdet.attacks import DiffDetector
    from dfdet.features import Recipe
    from dfdet.inputs import Utterance


def recipe_for(det: DiffDetector) -> Recipe:
    """The detector's feature recipe, refused when this dfdet computes it differently (hash mismatch)."""
    if det.scorer is not None:
        return det.scorer.feature_recipe()  # dfdet.scoring's check and messages
    from dfdet.features import get_recipe, recipe_hash

    if not det.recipe:
        raise DfdetError(
            f"{det.path or 'the detector'} records no feature recipe",
            "degradation tests featurize audio: use a model trained on features from `dfdet featurize`",
        )
    recipe = get_recipe(det.recipe)
    h = recipe_hash(recipe)
    if det.recipe_hash and h != det.recipe_hash:
        raise DfdetError(
            f"{det.path}: expects recipe {det.recipe} with hash {det.recipe_hash}, this dfdet computes {h}",
            "use the dfdet version the model was trained with, or retrain",
        )
    return recipe


def featurize_clips(recipe: Recipe, clips: Sequence[tuple[np.ndarray, int]]) -> Any:
    """Features of in-memory clips with the recipe (prepare, then extract; batched when the recipe can); a frame
    recipe gives a list of float32 [T, D] frame matrices (T varies with the clip, as in a frame store)."""
    prepared = [recipe.prepare(y, sr) for y, sr in clips]
    if getattr(recipe, "frames", False):
        d = len(recipe.feature_names)
        return [np.asarray(recipe.extract(p), dtype=np.float32).reshape(-1, d) for p in prepared]
    batch = getattr(recipe, "extract_batch", None)
    if batch is not None and prepared:
        return np.asarray(batch(np.stack(prepared)), dtype=np.float64)
    return np.stack([np.asarray(recipe.extract(p), dtype=np.float64).reshape(-1) for p in prepared])


def _condition_metrics(scores: np.ndarray, y: np.ndarray, threshold: float, clean: np.ndarray) -> dict[str, Any]:
    from dfdet.attacks import metrics_at

    ok = np.isfinite(scores)
    out: dict[str, Any] = {"n_scored": int(ok.sum())}
    out.update(metrics_at(scores[ok], y[ok], threshold))
    dec, dec0 = scores < threshold, clean < threshold
    both = ok & np.isfinite(clean)
    out["flip_rate_vs_clean"] = float((dec[both] != dec0[both]).mean()) if both.any() else float("nan")
    out["mean_score_shift"] = float(np.mean(scores[both] - clean[both])) if both.any() else float("nan")
    out["spoof_called_bonafide"] = float(np.mean(~dec[ok & (y == 1)])) if (ok & (y == 1)).any() else float("nan")
    out["bonafide_called_spoof"] = float(np.mean(dec[ok & (y == 0)])) if (ok & (y == 0)).any() else float("nan")
    return out


# --------------------------------------------------------------------------------------------------- per file
# (status, value, condition failures): ("ok", (indices of the conditions made, float32 [len(indices), D] features),
# [(condition index, reason)]) or ("bad", (path, reason, fix) of the InputError from decoding, []).
FileResult = tuple[str, Any, list[tuple[int, str]]]


def degrade_one(recipe: Recipe, conds: Sequence[Degradation], seed: int, index: int, path: str) -> FileResult:
    """Decode one file and featurize it under every condition (no model: that stays in the parent process).

    Why a function of (seed, index) only: the noise of utterance `index` does not depend on which worker ran it or
    what ran before, so -j 1 and -j N give the same numbers. Decoding errors come back as data (`"bad"`), a failed
    condition is listed (its row stays NaN in the report); anything else raises.
    """
    from dfdet.audio import load_audio

    try:
        y, sr = load_audio(path)
    except InputError as e:
        return "bad", (e.path, e.reason, e.fix), []
    clips: list[tuple[np.ndarray, int]] = []
    good: list[int] = []
    failed: list[tuple[int, str]] = []
    for c, d in enumerate(conds):
        try:
            yd, srd = apply(d, y, sr, seed, index)
            if len(yd) == 0:
                raise ValueError("no samples left")
            clips.append((yd, srd))
            good.append(c)
        except Exception as e:  # noqa: BLE001 - a codec failure on one file is reported, not fatal
            failed.append((c, f"{d.name}: {type(e).__name__}: {e}"))
    F = featurize_clips(recipe, clips) if good else None
    F = F.astype(np.float32) if isinstance(F, np.ndarray) else F  # float32: what the report keeps
    return "ok", (good, F), failed


_WORKER: tuple[Recipe, list[Degradation], int] | None = None


def _init_worker(recipe: Recipe, names: list[str], seed: int) -> None:
    """featurize's pool initializer (SIGINT left to the parent, one BLAS thread), plus the conditions by name."""
    global _WORKER
    from dfdet.featurize import init_worker

    init_worker(recipe)
    _WORKER = (recipe, [CONDITIONS[n] for n in names], seed)  # names: the lambdas do not pickle (spawn)


def _work(item: tuple[int, str]) -> FileResult:
    """`degrade_one` in a pool worker set up by `_init_worker`; errors pickle, so they reach the parent as raised."""
    assert _WORKER is not None
    recipe, conds, seed = _WORKER
    return degrade_one(recipe, conds, seed, *item)


def _warm_up(recipe: Recipe, conds: Sequence[Degradation]) -> None:
    """Before forking: the recipe's tables and the conditions' lazy imports (codecs, resampler), once for all."""
    from dfdet.featurize import warm_up

    warm_up(recipe)
    sr = int(getattr(recipe, "sample_rate", 16000) or 16000)
    y = 1e-3 * np.random.default_rng(0).standard_normal(sr // 10)
    for d in conds:
        with contextlib.suppress(Exception):
            apply(d, y, sr)


@contextlib.contextmanager
def file_results(
    recipe: Recipe,
    conds: Sequence[Degradation],
    paths: Sequence[str],
    seed: int = 42,
    jobs: int = 1,
    start_method: str | None = None,
) -> Iterator[Iterator[FileResult]]:
    """`degrade_one` of every path, in input order: in-process when jobs <= 1, else in featurize's pool (dfdet.pool:
    a dead worker raises WorkerDied naming its file)."""
    from dfdet.featurize import ordered_results

    names = [d.name for d in conds]
    with ordered_results(
        list(enumerate(map(str, paths))),
        lambda item: degrade_one(recipe, conds, seed, *item),
        _work,
        _init_worker,
        (recipe, names, int(seed)),
        jobs,
        start_method,
        warm=lambda: _warm_up(recipe, conds),
        name=lambda item: item[1],
    ) as results:
        yield (result for _, result in results)


def degradation_report(
    det: DiffDetector,
    utterances: Sequence[Utterance],
    conditions: Sequence[Degradation] | None = None,
    seed: int = 42,
    skip_bad: bool = False,
    progress: Callable[[Any], Any] | None = None,
    warn: Callable[[str], None] | None = None,
    jobs: int = 1,
    start_method: str | None = None,
) -> dict[str, Any]:
    """Score every utterance under every condition; per-condition metrics, failures listed (never dropped silently).

    `jobs` worker processes decode, degrade and featurize; the model scores in this process (same result for any -j).
    """
    conds = list(conditions) if conditions is not None else resolve_conditions()
    if jobs < 1:
        raise UsageError(f"jobs must be >= 1, got {jobs}", "pass -j N with N >= 1")
    unavailable = [d.name for d in conds if not available(d)]
    for name in unavailable:
        if warn:
            warn(f"condition {name} skipped: libsndfile here cannot write {CONDITIONS[name].needs_format}")
    conds = [d for d in conds if d.name not in unavailable]
    if not utterances:
        raise DfdetError("no audio inputs", "pass audio files, directories or list files")
    recipe = recipe_for(det)
    n, k = len(utterances), len(conds)
    frames = bool(getattr(recipe, "frames", False))  # ragged frame matrices: one list per condition
    feats: Any = [[None] * n for _ in range(k)] if frames else np.full((k, n, det.input_dim), np.nan, np.float32)
    failures: list[dict[str, str]] = []
    cond_fail: dict[str, int] = {d.name: 0 for d in conds}
    ok_rows = np.zeros(n, dtype=bool)
    with file_results(recipe, conds, [u.path for u in utterances], seed, jobs, start_method) as results:
        stream: Any = zip(enumerate(utterances), results, strict=True)
        if progress is not None:
            stream = progress(stream)
        for (i, u), (status, value, failed) in stream:
            if status != "ok":
                if not skip_bad:
                    raise InputError(*value)
                failures.append({"utt_id": u.utt_id, "path": u.path, "reason": value[1]})
                if warn:
                    warn(f"{u.path}: {value[1]} (skipped)")
                continue
            for c, reason in failed:
                cond_fail[conds[c].name] += 1
                failures.append({"utt_id": u.utt_id, "path": u.path, "reason": reason})
            good, F = value
            if frames:
                for c, f in zip(good, F or [], strict=True):
                    feats[c][i] = f
            elif good:
                feats[good, i] = F
            ok_rows[i] = True
    if not ok_rows.any():
        raise DfdetError("no audio could be decoded", "check the inputs (see the warnings above)")
    labels = np.array([u.label for u in utterances], dtype=np.int64)
    clean_scores = _score(det, feats[0], recipe)
    table = []
    for c, d in enumerate(conds):
        s = _score(det, feats[c], recipe)
        s[~ok_rows] = np.nan
        row = {"condition": d.name, "description": d.description, "n_failed": cond_fail[d.name]}
        row.update(_condition_metrics(s, labels, det.threshold, clean_scores))
        table.append(row)
    return {
        "detector": det.path,
        "schema": "dfdet.degrade/1",
        "detector_kind": det.kind,
        "recipe": det.recipe,
        "threshold": float(det.threshold),
        "seed": int(seed),
        "inputs": int(n),
        "inputs_scored": int(ok_rows.sum()),
        "n_bonafide": int(((labels == 0) & ok_rows).sum()),
        "n_spoof": int(((labels == 1) & ok_rows).sum()),
        "conditions": table,
        "unavailable_conditions": unavailable,
        "failures": failures,
    }


def _score(det: DiffDetector, F: Any, recipe: Recipe) -> np.ndarray:
    """Scores of the rows with finite features; NaN for rows that failed or gave non-finite features. Frame
    features (a list of [T, D] matrices, None where missing) become the detector's input as in `dfdet score`."""
    out = np.full(len(F), np.nan)
    if isinstance(F, list):
        ok = np.array([f is not None and bool(np.isfinite(f).all()) for f in F], dtype=bool)
        if ok.any():
            ins = [det.scorer.input_of(f, recipe) for f, keep in zip(F, ok, strict=True) if keep]
            out[ok] = det.scores([m for x in ins for m in x] if isinstance(ins[0], list) else np.concatenate(ins))
        return out
    ok = np.isfinite(F).all(axis=1)
    if ok.any():
        out[ok] = det.scores(F[ok])
    return out


def format_report(rep: dict[str, Any]) -> str:
    """The per-condition table as text."""
    head = f"{'condition':<16} {'n':>5} {'EER %':>7} {'AUC':>7} {'acc':>7} {'flips':>7} {'shift':>8}"
    lines = [head]
    nan = float("nan")
    for r in rep["conditions"]:
        lines.append(
            f"{r['condition']:<16} {r['n_scored']:>5} {100 * r.get('eer', nan):>7.2f} {r.get('auc', nan):>7.4f} "
            f"{r.get('accuracy', nan):>7.3f} {r['flip_rate_vs_clean']:>7.3f} {r['mean_score_shift']:>8.3f}"
        )
    return "\n".join(lines)
