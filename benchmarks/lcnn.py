"""LCNN speed: inference in x real time per core (goal >= 200x) and training seconds per epoch on a frame store.

Usage: .venv/bin/python benchmarks/lcnn.py [--seconds 60] [--repeats 5] [--model MODEL.pt]
                                           [--store FRAMES.h5 --rows 300 --epochs 1 --batch-size 32]

One torch/BLAS thread (per core). Inference: the whole-utterance scoring path (`FrameDetector.logits`: chunking into
4-s chunks, standardisation, forward, mean of chunk logits) on a `--seconds` utterance of LFCC frames, best of
`--repeats` in wall time and in process CPU time (the figure to read on a loaded machine); the untrained default
`lcnn` unless `--model` names a trained one (same cost). Beside it, in the same process and on the same audio, the
`lfcc` front end (16 kHz audio -> frames), so `end_to_end` is what scoring audio costs per core, decoding excluded.
Training (with `--store`): `fit_frames` on the first `--rows` rows of the store (no validation), seconds per epoch
(wall and process CPU), one random 4-s chunk per utterance and epoch.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _p in (str(HERE), str(ROOT)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from featurize import machine_line  # noqa: E402  (benchmarks/featurize.py)
from lfcc import best_seconds, speechlike  # noqa: E402  (benchmarks/lfcc.py)


def best_cpu_seconds(fn, repeats: int) -> float:
    """Best process CPU time of `repeats` calls: on a loaded machine, what a core of its own would take."""
    best = float("inf")
    for _ in range(repeats):
        c0 = time.process_time()
        fn()
        best = min(best, time.process_time() - c0)
    return best


def untrained_detector(chunk_frames: int = 400):
    """A FrameDetector around a freshly initialised default lcnn (identity scaler): inference cost as trained."""
    import torch

    from dfdet.artifact import FrameDetector, model_dict
    from dfdet.models import build_model

    torch.manual_seed(0)
    module = build_model("lcnn", 60).eval()
    obj = model_dict(
        module,
        arch="lcnn",
        input_dim=60,
        scaler_mean=np.zeros(60),
        scaler_scale=np.ones(60),
        frames={"chunk_frames": chunk_frames},
    )
    return FrameDetector(module, obj, "")


def inference(seconds: float, repeats: int, model: str | None) -> dict:
    import torch

    from dfdet.artifact import load_model
    from dfdet.features.lfcc import lfcc

    torch.set_num_threads(1)
    det = load_model(model) if model else untrained_detector()
    y = speechlike(16000, seconds)
    frames = lfcc(y, 16000).astype(np.float32)
    det.logits([frames])  # warm-up (lazy init of the conv kernels)
    t_model = best_seconds(lambda: det.logits([frames]), repeats)
    t_front = best_seconds(lambda: lfcc(y, 16000), repeats)
    c_model = best_cpu_seconds(lambda: det.logits([frames]), repeats)
    params = sum(p.numel() for p in det.module.parameters())
    return {
        "utterance_seconds": seconds,
        "frames": len(frames),
        "chunk_frames": det.chunk_frames,
        "parameters": params,
        "lcnn_x_realtime_per_core": seconds / t_model,
        "lcnn_x_realtime_per_cpu_second": seconds / c_model,
        "lfcc_x_realtime_per_core": seconds / t_front,
        "end_to_end_x_realtime_per_core": seconds / (t_model + t_front),
        "lcnn_over_lfcc_time": t_model / t_front,
        "goal_x_realtime": 200,
    }


def training(store: str, rows: int, epochs: int, batch_size: int) -> dict:
    import torch

    from dfdet.frametraining import fit_frames
    from dfdet.store import FrameReader
    from dfdet.training import make_config

    torch.set_num_threads(1)
    with FrameReader(store) as r:
        n = min(rows, len(r))
        frames = int(r.n_frames[:n].sum())
    cfg = make_config("default", model="lcnn", epochs=epochs, batch_size=batch_size, patience=0)
    t0 = time.perf_counter()
    res = fit_frames(store, np.arange(n), cfg, seed=0, val_rows=np.zeros(0, dtype=np.int64))
    total = time.perf_counter() - t0
    s = res.summary
    return {
        "store": store,
        "rows": n,
        "audio_minutes": frames / 100 / 60,
        "epochs": epochs,
        "seconds_per_epoch": s["seconds_per_epoch"],
        "cpu_seconds_per_epoch": s["train_cpu_seconds"] / s["epochs_run"],
        "chunks_per_second": s["samples_per_second"],
        "total_seconds_incl_loading": total,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--model", default=None)
    ap.add_argument("--store", default=None)
    ap.add_argument("--rows", type=int, default=300)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=32)
    a = ap.parse_args()
    print(machine_line(), file=sys.stderr)
    out = {"inference": inference(a.seconds, a.repeats, a.model)}
    if a.store:
        out["training"] = training(a.store, a.rows, a.epochs, a.batch_size)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
