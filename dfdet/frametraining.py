"""Training frame models (e.g. `lcnn`) on a frame store: random fixed-length chunks, whole-utterance validation.

Why a module beside `dfdet.training`: a frame model reads [T, D] matrices of varying T, not rows of one matrix. What
is shared (optimizers incl. SAM, losses, gradient tracking, the history records, early stopping on validation EER,
the validation threshold, the summary) comes from `dfdet.training`; what differs lives here:
- data: rows of one store (`FrameRows`), their frames held in memory when they fit (`max_resident_bytes`), else read
  from the store per batch, so a fold of a cross-validation trains on a row subset without copying the store;
- the scaler: mean and standard deviation of every frame dimension over all training frames (streamed);
- an epoch: one random chunk of `chunk_frames` frames per training utterance (clips shorter than that tiled), in an
  order and at offsets drawn from numpy's generator seeded with (seed, epoch);
- validation, test and scoring: whole utterances, mean of consecutive chunk logits (`dfdet.chunks`).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dfdet.chunks import random_starts, standardized_chunks, utterance_logits
from dfdet.errors import DfdetError, InputError, UsageError
from dfdet.jsonio import plain
from dfdet.models import build_model, model_input, model_solver
from dfdet.optimizers import build_from_hparams, needs_closure, resolve_hparams
from dfdet.training import (
    EarlyStopping,
    GradTracker,
    TrainConfig,
    TrainResult,
    _eval_metrics,
    epoch_line,
    flush_steps,
    make_loss,
    recalibrate_batchnorm,
    resolve_device,
    run_summary,
    train_step,
    validation_threshold,
)

MAX_RESIDENT_BYTES = 2 << 30  # frames of a row subset held in memory up to this size; beyond, read per batch
BN_CALIBRATION_CHUNKS = 256  # training chunks that re-estimate BatchNorm statistics (a fixed, seeded set)
SCORING = "mean of the spoof logits of consecutive chunk_frames chunks (last chunk end-aligned; shorter clips tiled)"


@dataclass
class FrameRows:
    """Rows `rows` of the frame store `source`: labels, metadata, and their frames (resident or read on demand)."""

    source: str
    rows: np.ndarray  # store row indices
    y: np.ndarray
    utt_id: list[str]
    speaker: list[str]
    n_frames: np.ndarray
    dim: int
    recipe: dict[str, Any]
    frames: list[np.ndarray] | None = None  # resident frames (float32), aligned with rows
    _reader: Any = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.rows)

    def get(self, i: int) -> np.ndarray:
        """Frames [T, D] (float32) of local row i."""
        if self.frames is not None:
            return self.frames[i]
        return self._reader.read(int(self.rows[i]))

    def subset(self, idx: np.ndarray) -> FrameRows:
        idx = np.asarray(idx, dtype=np.int64)
        return FrameRows(
            self.source,
            self.rows[idx],
            self.y[idx],
            [self.utt_id[i] for i in idx],
            [self.speaker[i] for i in idx],
            self.n_frames[idx],
            self.dim,
            self.recipe,
            None if self.frames is None else [self.frames[i] for i in idx],
            self._reader,
        )

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None


def store_recipe(fs: Any, reader: Any) -> dict[str, Any]:
    """The recipe record a frame model keeps: name, hash, config, frame names and groups."""
    return {
        "name": fs.recipe,
        "hash": fs.recipe_hash,
        "config": fs.recipe_config,
        "feature_names": list(reader.frame_names),
        "groups": [[g.name, int(g.start), int(g.stop)] for g in reader.frame_groups],
    }


def open_frame_rows(
    store_path: str | Path, rows: np.ndarray | None = None, max_resident_bytes: int = MAX_RESIDENT_BYTES
) -> FrameRows:
    """Rows `rows` (default all) of a frame store; their frames are loaded once if they fit in
    `max_resident_bytes`, else read from the store on demand (close() the result then)."""
    from dfdet.store import FrameReader, load_features

    fs = load_features(store_path)  # per-row metadata and the small /features matrix
    try:
        reader = FrameReader(store_path)
    except InputError as e:
        raise InputError(
            store_path,
            "a vector store (no /frames): frame models train on frames",
            "featurize the audio with a frame recipe (dfdet featurize --recipe lfcc), or pick a vector model",
        ) from e
    idx = np.arange(len(reader), dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64).ravel()
    if len(idx) and (idx.min() < 0 or idx.max() >= len(reader)):
        reader.close()
        raise UsageError(f"row index out of range for {len(reader)} rows of {store_path}", "pass valid row numbers")
    out = FrameRows(
        str(store_path),
        idx,
        np.asarray(fs.y, dtype=np.int64)[idx],
        [fs.utt_id[i] for i in idx],
        [fs.speaker[i] for i in idx],
        reader.n_frames[idx].copy(),
        reader.dim,
        store_recipe(fs, reader),
        _reader=reader,
    )
    if int(out.n_frames.sum()) * reader.dim * 4 <= max_resident_bytes:
        out.frames = [reader.read(int(r)) for r in idx]
    return out


def check_rows(fr: FrameRows, role: str, need_both: bool = True) -> None:
    """Refuse rows a detector cannot be trained or validated on (empty, unlabelled, one class, non-finite)."""
    if len(fr) == 0:
        raise InputError(fr.source, f"no {role} rows", "pass rows of a non-empty frame store")
    if not np.isin(fr.y, (0, 1)).all():
        bad = [fr.utt_id[i] for i in np.flatnonzero(~np.isin(fr.y, (0, 1)))[:3]]
        raise InputError(
            fr.source,
            f"{int((~np.isin(fr.y, (0, 1))).sum())} {role} row(s) are unlabelled (e.g. {', '.join(bad)})",
            "featurize with --labels PROTOCOL so every row is bona fide or spoof",
        )
    if need_both and len(np.unique(fr.y)) < 2:
        raise InputError(fr.source, f"the {role} rows are all one class", "a detector needs bona fide and spoof rows")


def fit_scaler(fr: FrameRows) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population std of every frame dimension over all frames of `fr` (float64; std 0 -> 1)."""
    s = np.zeros(fr.dim)
    ss = np.zeros(fr.dim)
    n = 0
    for i in range(len(fr)):
        m = np.asarray(fr.get(i), dtype=np.float64)
        if not np.isfinite(m).all():
            raise InputError(fr.source, f"row {fr.utt_id[i]!r} has NaN or infinite frames", "re-featurize it")
        s += m.sum(axis=0)
        ss += (m * m).sum(axis=0)
        n += len(m)
    mean = s / n
    var = np.maximum(ss / n - mean * mean, 0.0)
    scale = np.sqrt(var)
    scale[scale == 0] = 1.0
    return mean, scale


def chunk_batch(
    fr: FrameRows, idx: np.ndarray, starts: np.ndarray, length: int, mean: np.ndarray, scale: np.ndarray
) -> np.ndarray:
    """Standardised chunks [B, length, D] (float32) of local rows `idx` at `starts`."""
    return standardized_chunks((fr.get(i) for i in idx), starts, length, mean, scale)


def rows_logits(module: nn.Module, fr: FrameRows, mean: np.ndarray, scale: np.ndarray, length: int) -> np.ndarray:
    """Whole-utterance spoof logits of every row (mean of chunk logits), read one utterance at a time."""
    out = np.empty(len(fr))
    for i in range(len(fr)):
        out[i] = utterance_logits(module, [fr.get(i)], mean, scale, length)[0]
    return out


def _data_record(fr: FrameRows, note: str | None = None) -> dict[str, Any]:
    from dfdet.provenance import array_hash, file_hash

    rec: dict[str, Any] = {
        "source": fr.source if note is None else f"{fr.source} ({note})",
        "rows": len(fr),
        "bonafide": int((fr.y == 0).sum()),
        "spoof": int((fr.y == 1).sum()),
        "frames": int(fr.n_frames.sum()),
        "hash": array_hash(fr.rows, fr.y),  # of the store rows used and their labels
    }
    if Path(fr.source).is_file():
        rec["file_hash"] = file_hash(fr.source)
    return rec


def _check_same_recipe(train: FrameRows, other: FrameRows, role: str) -> None:
    a, b = train.recipe, other.recipe
    if other.dim != train.dim or (a.get("hash") and b.get("hash") and a["hash"] != b["hash"]):
        raise InputError(
            other.source,
            f"{role} frames were made with recipe {b.get('name')} (hash {b.get('hash')}, {other.dim} per frame) but "
            f"the training frames with {a.get('name')} (hash {a.get('hash')}, {train.dim} per frame)",
            "featurize both with the same recipe and settings",
        )


def _fit_chunks(
    cfg: TrainConfig,
    fit: FrameRows,
    val: FrameRows | None,
    mean: np.ndarray,
    scale: np.ndarray,
    y_all: np.ndarray,
    loss_fn: Any,
    hparams: dict[str, Any],
    device: Any,
    log: Any,
) -> tuple[nn.Module, list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """The epoch loop on random fixed-length chunks (validation: early stopping on whole utterances)."""
    from dfdet.seeding import seed_everything

    length = int(cfg.chunk_frames)
    seed_everything(cfg.seed, with_torch=True)
    module = build_model(cfg.model, fit.dim, **cfg.model_config).to(device)
    initial_state = {k: v.detach().to("cpu").clone() for k, v in module.state_dict().items()}
    optimizer = build_from_hparams(cfg.optimizer, module.parameters(), hparams)
    if cfg.scheduler not in ("cosine", "none"):
        raise UsageError(f"unknown scheduler {cfg.scheduler!r}", "use cosine or none")
    scheduler = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs) if cfg.scheduler == "cosine" else None
    )
    n = len(fit)
    bs = n if cfg.batch_size is None else min(int(cfg.batch_size), n)
    closure_needed = needs_closure(cfg.optimizer)
    tracker = GradTracker(module)
    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    calib = None
    if cfg.bn_recalibrate and bns:
        rng = np.random.default_rng([cfg.seed, 0])
        ci = np.sort(rng.permutation(n)[:BN_CALIBRATION_CHUNKS])
        calib = torch.from_numpy(
            chunk_batch(fit, ci, random_starts(fit.n_frames[ci], length, rng), length, mean, scale)
        )
        calib = calib.to(device)

    history: list[dict[str, Any]] = []
    stopper = EarlyStopping(cfg.patience)
    step = 0
    stopped_early = False
    t_start = time.perf_counter()
    train_seconds = train_cpu_seconds = 0.0
    for epoch in range(1, cfg.epochs + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        module.train()
        lr = float(optimizer.param_groups[0]["lr"])
        rng = np.random.default_rng([cfg.seed, epoch])  # order and chunk offsets of this epoch
        order = rng.permutation(n)
        starts = random_starts(fit.n_frames[order], length, rng)
        correct = 0
        for b0 in range(0, n, bs):
            idx = order[b0 : b0 + bs]
            xb = torch.from_numpy(chunk_batch(fit, idx, starts[b0 : b0 + bs], length, mean, scale)).to(device)
            yb = torch.from_numpy(y_all[idx]).to(device)
            out = train_step(module, optimizer, loss_fn, xb, yb, tracker, cfg.track_steps, bns, closure_needed)
            correct += int(((out > 0) == (yb > 0.5)).sum().item())
            step += 1
        if scheduler is not None:
            scheduler.step()
        losses, gnorm, _ = flush_steps(tracker, history, epoch, step, lr)
        t_train = time.perf_counter() - t0
        train_seconds += t_train
        train_cpu_seconds += time.process_time() - c0
        rec: dict[str, Any] = {
            "type": "epoch",
            "epoch": epoch,
            "train_loss": float(np.mean(losses)),
            "train_acc": correct / n,
            "grad_norm_mean": float(np.mean(gnorm)) if cfg.track_steps else None,
            "lr": lr,
            "steps": len(losses),
        }
        if val is not None:
            if calib is not None:
                recalibrate_batchnorm(module, calib, cfg.batch_size or None)
            vlog = rows_logits(module, val, mean, scale, length)
            vloss = loss_fn(torch.from_numpy(vlog), torch.from_numpy(val.y.astype(np.float64))).item()
            stopper.validate(rec, module, epoch, vlog, val.y, vloss)
        rec["train_seconds"] = t_train
        rec["wall_time"] = time.perf_counter() - t_start
        history.append(rec)
        if log is not None:
            log(epoch_line(rec, cfg.epochs))
        if stopper.should_stop:
            stopped_early = True
            break

    best_epoch = stopper.restore(module, history[-1]["epoch"])
    recalibrated = False
    if calib is not None:
        recalibrated = recalibrate_batchnorm(module, calib, cfg.batch_size or None)
    module.eval()

    summary = run_summary(
        history,
        tracker,
        cfg,
        stopper,
        best_epoch,
        stopped_early=stopped_early,
        recalibrated=recalibrated,
        train_seconds=train_seconds,
        train_cpu_seconds=train_cpu_seconds,
        started=t_start,
        rows=n,
    )
    epochs_run = summary["epochs_run"]
    summary["seconds_per_epoch"] = train_seconds / epochs_run
    return module, history, summary, initial_state


def train_frames(
    train: FrameRows,
    val: FrameRows | None = None,
    config: TrainConfig | None = None,
    test: FrameRows | None = None,
    log: Any = None,
) -> TrainResult:
    """Train the frame model `config.model` on `train`; validate on `val` or a `config.val_split` hold-out of it
    (stratified, speaker-disjoint when speakers are known). Validation chooses the epoch and the threshold; `test`
    is only scored at the end. Returns a TrainResult whose `frames` record the chunk length."""
    from dfdet.splitting import train_val_indices

    cfg = config or TrainConfig(model="lcnn")
    if model_input(cfg.model) != "frames":
        raise UsageError(f"model {cfg.model!r} reads feature vectors, not frames", "use dfdet.training.train_model")
    if cfg.epochs < 1:
        raise UsageError(f"--epochs must be >= 1, got {cfg.epochs}", "e.g. --epochs 30")
    if cfg.batch_size == "full":
        cfg.batch_size = None
    if cfg.batch_size is not None and int(cfg.batch_size) < 1:
        raise UsageError(f"--batch-size must be >= 1 or 'full', got {cfg.batch_size}", "e.g. --batch-size 32")
    length = int(cfg.chunk_frames)
    if length < 16:
        raise UsageError(f"--chunk-frames must be >= 16, got {length}", "e.g. --chunk-frames 400 (4 s)")
    if cfg.adversarial:
        raise UsageError("--adversarial is not available for frame models yet", "drop --adversarial")
    loss_fn = make_loss(cfg.loss, cfg.focal_alpha, cfg.focal_gamma)
    hparams = resolve_hparams(cfg.optimizer, cfg.protocol, **cfg.optimizer_overrides)
    device = resolve_device(cfg.device)

    check_rows(train, "training")
    for other, role in ((val, "validation"), (test, "test")):
        if other is not None:
            check_rows(other, role)
            _check_same_recipe(train, other, role)
    split_mode = "file" if val is not None else "none"
    fit = train
    if val is None and cfg.val_split and cfg.val_split > 0:
        tr_idx, va_idx, split_mode = train_val_indices(train.y, float(cfg.val_split), cfg.seed, train.speaker)
        fit, val = train.subset(tr_idx), train.subset(va_idx)
        for part, role in ((fit, "training"), (val, "validation")):
            if len(np.unique(part.y)) < 2:
                raise DfdetError(
                    f"the {role} part of --val-split {cfg.val_split} has only one class",
                    "use more data, a different --val-split, or pass --val FILE",
                )
    mean, scale = fit_scaler(fit)
    y_all = fit.y.astype(np.float32)

    if model_solver(cfg.model) == "em":  # a library EM fit (dfdet.gmm): no chunks, epochs or gradients
        from dfdet.gmm import fit_gmm_pair

        module, history, summary, hparams = fit_gmm_pair(cfg, fit, mean, scale, log)
        initial_state: dict[str, Any] = {}
    else:
        module, history, summary, initial_state = _fit_chunks(
            cfg, fit, val, mean, scale, y_all, loss_fn, hparams, device, log
        )
    if val is not None:
        vscores = -rows_logits(module, val, mean, scale, length)
        threshold = validation_threshold(vscores, val.y)
        threshold_source = "validation EER operating point"
        summary["val"] = _eval_metrics(-vscores, val.y, threshold)
    else:
        threshold = 0.0
        threshold_source = "fixed: score 0 (p_spoof 0.5), no validation data"
    if test is not None:
        summary["test"] = _eval_metrics(rows_logits(module, test, mean, scale, length), test.y, threshold)
    summary["threshold"] = threshold
    summary["threshold_source"] = threshold_source

    held_out = split_mode not in ("file", "none")
    data: dict[str, Any] = {
        "train": _data_record(fit, "rest after the hold-out" if held_out else None),
        "split": split_mode,
    }
    if val is not None:
        data["val"] = _data_record(val, f"{split_mode} {cfg.val_split} hold-out" if held_out else None)
    if test is not None:
        data["test"] = _data_record(test)
    module.to("cpu")
    return TrainResult(
        module=module,
        arch=cfg.model,
        arch_config=dict(cfg.model_config),
        input_dim=fit.dim,
        scaler_mean=mean,
        scaler_scale=scale,
        threshold=float(threshold),
        threshold_source=threshold_source,
        config=cfg,
        optimizer_hparams=hparams,
        history=history,
        summary=plain(summary, nan_to_none=False),
        data=data,
        recipe=dict(train.recipe),
        initial_state=initial_state,
        frames={"chunk_frames": length, "scoring": SCORING},
    )


def train_frame_stores(
    train_path: str | Path,
    config: TrainConfig,
    val_path: str | Path | None = None,
    test_path: str | Path | None = None,
    log: Any = None,
) -> TrainResult:
    """`dfdet train STORE --model lcnn`: every row of a frame store (plus optional validation and test stores)."""
    opened: list[FrameRows] = []
    try:
        for p in (train_path, val_path, test_path):
            if p is not None:
                opened.append(open_frame_rows(p))
        train = opened[0]
        val = opened[1] if val_path is not None else None
        test = opened[-1] if test_path is not None else None
        return train_frames(train, val, config, test=test, log=log)
    finally:
        for fr in opened:
            fr.close()


def fit_frames(
    store_path: str | Path,
    train_rows: np.ndarray,
    config: TrainConfig,
    seed: int | None = None,
    val_rows: np.ndarray | None = None,
) -> TrainResult:
    """Train a frame model on rows `train_rows` of one frame store (a cross-validation fold), without copying it.

    `seed` (if given) overrides `config.seed`. Validation (early stopping, threshold): rows `val_rows` of the same
    store when given (an empty array: none), else a `config.val_split` hold-out of `train_rows`. Score with
    `score_frame_rows(result, ...)` or turn the result into a Detector with `dfdet.artifact.detector_of`.
    """
    cfg = copy.copy(config)
    if seed is not None:
        cfg.seed = int(seed)
    fr = open_frame_rows(store_path, train_rows)
    val = None
    try:
        if val_rows is not None:
            cfg.val_split = 0.0
            if len(val_rows):
                val = open_frame_rows(store_path, val_rows)
        return train_frames(fr, val, cfg)
    finally:
        fr.close()
        if val is not None:
            val.close()


def score_frame_rows(detector: Any, store_path: str | Path, rows: np.ndarray) -> np.ndarray:
    """Bona-fide-positive scores (-logit, float64 [len(rows)]) of rows `rows` of a frame store, whole utterances.

    `detector`: a `dfdet.artifact.FrameDetector` (load_model) or a TrainResult from `fit_frames`. Refuses a store
    made with another recipe than the model's, naming both.
    """
    from dfdet.artifact import detector_of
    from dfdet.store import FrameReader, h5open

    det = detector_of(detector) if isinstance(detector, TrainResult) else detector
    if getattr(det, "input_kind", "vector") != "frames":
        raise UsageError(f"{det.path or 'the model'} is not a frame model", "score vector models on /features")
    with h5open(store_path) as f:
        recipe, rhash = str(f.attrs.get("recipe", "")) or None, str(f.attrs.get("recipe_hash", "")) or None
    det.check_recipe(recipe, rhash, str(store_path))
    idx = np.asarray(rows, dtype=np.int64).ravel()
    with FrameReader(store_path) as r:
        if r.dim != det.input_dim:
            raise DfdetError(
                f"{store_path} has {r.dim} values per frame but the model expects {det.input_dim}",
                f"featurize with the model's recipe ({det.recipe})",
            )
        return np.array([det.scores([r.read(int(i))])[0] for i in idx], dtype=np.float64)
