"""Feature probes on real deepfakes: do other utterance-level statistics transfer better than LFCC mean and std?

Issue 11 asks for the table of what was tried when its goals are missed. The shipped default reads the mean and std
of each LFCC frame dimension. This script asks whether richer statistics of the same frames, or spectral statistics
at other resolutions, help a convex L2 logistic regression (`logreg`, the default's model) on unseen generators.
Every probe goes through `dfdet.crossval` with the same folds as `make realspeech`: grouped by spoof system (5
folds) and leave one source page out. Pooled EER with its 95 % group-bootstrap CI.

Probes from the stored LFCC frames: mean+std (the default's input), + skewness and kurtosis, + 10/50/90th
percentiles, + the covariance of the 20 static coefficients, mean+std of speech frames only (c0 within the top half
of its range), std only, delta and delta-delta statistics only.
Probes from the audio (decoded, resampled once to 16 kHz; frames whose mean log power is within 40 dB of the clip's
loudest): the long-term log power spectrum (512-point FFT, 257 bins: mean and std), the same at 2048 points (1,025
bins, mean), the spectral fine structure (log spectrum minus its 30-quefrency cepstral envelope: mean and std), and
the phase: mean and std of the absolute instantaneous-frequency deviation per bin between 10-ms frames.

Usage: .venv/bin/python benchmarks/feature_probes.py build/realspeech/lfcc.h5 [-o probes.json] [--bootstrap 1000]
(the store from `make realspeech SHARED=../shared`; about 2 min on one core).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

from dfdet.attacks import frames_of  # noqa: E402
from dfdet.audio import load_audio  # noqa: E402
from dfdet.crossval import crossval_model, plan_folds  # noqa: E402
from dfdet.features import FeatureGroup  # noqa: E402
from dfdet.features.lfcc import resample_16k  # noqa: E402
from dfdet.store import FeatureSet, load_features  # noqa: E402
from dfdet.training import make_config  # noqa: E402

SPEECH_DB = 40.0  # frames within this many dB of the clip's loudest count as speech


def frame_statistics(mats: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Probes computed from the stored [T, 60] LFCC frames."""
    iu = np.triu_indices(20)
    blocks: dict[str, list[np.ndarray]] = {k: [] for k in ("ms", "skk", "pct", "cov", "speech")}
    for m in mats:
        m = np.asarray(m, dtype=np.float64)
        blocks["ms"].append(np.r_[m.mean(0), m.std(0)])
        blocks["skk"].append(np.nan_to_num(np.r_[stats.skew(m, axis=0), stats.kurtosis(m, axis=0)]))
        blocks["pct"].append(np.percentile(m, [10, 50, 90], axis=0).ravel())
        s = m[:, :20] - m[:, :20].mean(0)
        blocks["cov"].append((s.T @ s / len(s))[iu])
        c0 = m[:, 0]
        act = c0 > c0.max() - 0.5 * (c0.max() - c0.min())
        a = m[act] if act.sum() > 5 else m
        blocks["speech"].append(np.r_[a.mean(0), a.std(0)])
    B = {k: np.asarray(v) for k, v in blocks.items()}
    ms = B["ms"]
    return {
        "LFCC mean+std (the default's input)": ms,
        "+ skewness, kurtosis": np.c_[ms, B["skk"]],
        "+ 10/50/90th percentiles": np.c_[ms, B["pct"]],
        "+ static covariance": np.c_[ms, B["cov"]],
        "mean+std of speech frames only": B["speech"],
        "std only": ms[:, 60:],
        "delta and delta-delta statistics only": ms[:, list(range(20, 60)) + list(range(80, 120))],
    }


def _frames(y: np.ndarray, win: int, hop: int) -> np.ndarray:
    n = 1 + (len(y) - win) // hop
    return y[np.arange(win)[None, :] + hop * np.arange(n)[:, None]] * np.hamming(win)


def spectral_statistics(paths: list[str]) -> dict[str, np.ndarray]:
    """Probes computed from the audio."""
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("ltas", "ltas2048", "fine", "ifd")}
    expect = 2 * np.pi * np.arange(257) * 160 / 512
    for p in paths:
        y, sr = load_audio(p)
        y = resample_16k(np.asarray(y.mean(axis=1) if y.ndim == 2 else y, dtype=np.float64), sr)
        S = np.fft.rfft(_frames(y, 320, 160), 512)
        L = np.log10(np.abs(S) ** 2 + 1e-10)
        e = L.mean(axis=1)
        act = e > e.max() - SPEECH_DB / 10
        La = L[act]
        out["ltas"].append(np.r_[La.mean(0), La.std(0)])
        C = np.fft.irfft(La, axis=1)
        C[:, 30:-29] = 0
        R = La - np.fft.rfft(C, axis=1).real[:, :257]
        out["fine"].append(np.r_[R.mean(0), R.std(0)])
        L2 = np.log10(np.abs(np.fft.rfft(_frames(y, 2048, 512), 2048)) ** 2 + 1e-10)
        out["ltas2048"].append(L2[L2.mean(1) > L2.mean(1).max() - SPEECH_DB / 10].mean(0))
        dev = np.abs(np.angle(np.exp(1j * (np.angle(S[1:] * np.conj(S[:-1])) - expect))))[act[1:] & act[:-1]]
        out["ifd"].append(np.r_[dev.mean(0), dev.std(0)])
    names = {
        "ltas": "log power spectrum, 257 bins: mean+std",
        "ltas2048": "log power spectrum, 1,025 bins: mean",
        "fine": "spectral fine structure (minus cepstral envelope): mean+std",
        "ifd": "phase: instantaneous-frequency deviation, mean+std",
    }
    return {names[k]: np.asarray(v) for k, v in out.items()}


def probe_set(fs: FeatureSet, X: np.ndarray, name: str) -> FeatureSet:
    """The store's rows and metadata with features X (a vector set)."""
    out = fs.subset(np.arange(len(fs)))
    out.X = np.asarray(X, dtype=np.float32)
    out.feature_names = [f"f{i}" for i in range(X.shape[1])]
    out.groups = [FeatureGroup(name[:20], 0, X.shape[1])]
    out.frames = None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("store", help="the lfcc frame store of the realspeech corpus (build/realspeech/lfcc.h5)")
    ap.add_argument("-o", "--output", default=None, help="JSON with every probe's crossval summary")
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    fs = load_features(args.store)
    orig = np.flatnonzero([not a for a in fs.augment])
    fs = fs.subset(orig)
    t0 = time.perf_counter()
    probes = {**frame_statistics(frames_of(fs)), **spectral_statistics(list(fs.path))}
    print(f"# {len(probes)} probes of {len(fs)} clips in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    cfg = make_config("default", model="logreg", seed=args.seed)
    rows, doc = [], {"store": args.store, "model": "logreg", "seed": args.seed, "probes": {}}
    print("| probe | dims | grouped by system, 5 folds: pooled EER [95 % CI] | leave one source out | mean / max |")
    print("|---|---|---|---|---|")
    for name, X in probes.items():
        pf = probe_set(fs, X, name)
        res = {}
        for group, folds in (("system", 5), ("source", "logo")):
            plan = plan_folds(pf, group, folds, args.seed)
            res[group] = crossval_model(pf, plan, "logreg", cfg, n_boot=args.bootstrap)
        doc["probes"][name] = {
            g: {"pooled": r["pooled"], "fold_eer": r["fold_eer"], "per_family": r["per_family"]} for g, r in res.items()
        }
        s, o = res["system"]["pooled"], res["source"]
        fe = [f["eer"] for f in o["folds"] if f.get("eer") is not None]
        rows.append(
            f"| {name} | {X.shape[1]} | {100 * s['eer']:.1f} % [{100 * s['ci'][0]:.1f}, {100 * s['ci'][1]:.1f}] "
            f"| {100 * o['pooled']['eer']:.1f} % [{100 * o['pooled']['ci'][0]:.1f}, {100 * o['pooled']['ci'][1]:.1f}]"
            f" | {100 * np.mean(fe):.1f} / {100 * np.max(fe):.1f} % |"
        )
        print(rows[-1], flush=True)
    if args.output:
        Path(args.output).write_text(json.dumps(doc, indent=1, default=float))
    print(f"# {time.perf_counter() - t0:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
