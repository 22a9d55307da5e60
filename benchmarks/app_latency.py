"""`dfdet app` response time: uploaded bytes of one 10-s clip -> verdict, with the detector already loaded (warm cache).

Usage: .venv/bin/python benchmarks/app_latency.py [--models DIR] [--seconds 10] [--repeats 20] [--target 0.5]

What is timed is `dfdet.app.backend.score_uploads`, the function the page calls on an upload (write the bytes to a
temporary directory, decode, resample, featurize, score every member, fuse/calibrate, decide, build the TSV), with
the detector loaded once beforehand as the page's `st.cache_resource` holds it. Streamlit's own transport and
rendering are not included. Without --models, a demo-like models dir is built in a temporary directory: five models
of the study's architecture (`cnn`, random seeded weights: speed does not depend on what they learned) and a
model-member ensemble + calibration over them, i.e. the largest detector the demo serves. With --models DIR (e.g.
`demo` after `make demo`) its usable operating points are timed instead.

Printed per operating point and clip format: median and 90th percentile of --repeats warm calls, the first call
after loading, the load time (a cache miss), and the ratio median / target (< 1 meets the target); also the time of
the Inspect tab's data (waveform, log-mel, features, saliency and integrated gradients), which the page computes
after the verdict is shown (not part of the target).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "sam")


def speechlike(sr: int, seconds: float, f0: float = 120.0, seed: int = 0) -> np.ndarray:
    """A deterministic voiced-speech-like signal (the test suite's generator)."""
    rng = np.random.default_rng(seed)
    n = int(round(sr * seconds))
    t = np.arange(n) / sr
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.05 * np.sin(2 * np.pi * 4 * t))) / sr
    sig = sum((1.0 / k) * np.sin(k * phase) * np.exp(-(((k * f0) - 700) ** 2) / 2e6) for k in range(1, 30))
    sig = sig * (0.5 * (1 - np.cos(2 * np.pi * np.minimum(t * 3, 1)))) + 0.01 * rng.standard_normal(n)
    return 0.5 * sig / (np.max(np.abs(sig)) + 1e-9)


def clip_bytes(sr: int, seconds: float, fmt: str) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sub = {"WAV": "PCM_16", "FLAC": "PCM_16", "MP3": "MPEG_LAYER_III", "OGG": "VORBIS"}[fmt]
    sf.write(buf, speechlike(sr, seconds), sr, format=fmt, subtype=sub)
    return buf.getvalue()


def build_models(root: Path) -> Path:
    """Five random-weight `cnn` models + an auc2 ensemble (with calibration) of them; returns the models dir."""
    import torch

    from dfdet.artifact import save_model
    from dfdet.features import get_recipe, recipe_hash
    from dfdet.fusion import build_ensemble_document, model_member
    from dfdet.jsonio import write_json
    from dfdet.models import build_model

    rec = get_recipe("seed154")
    d = len(rec.feature_names)
    recipe = {
        "name": rec.name,
        "hash": recipe_hash(rec),
        "config": rec.config(),
        "feature_names": list(rec.feature_names),
        "groups": [[g.name, g.start, g.stop] for g in rec.groups],
    }
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, d))
    paths = []
    for i, name in enumerate(OPTIMIZERS):
        torch.manual_seed(i)
        p = root / "models" / f"{name}.pt"
        save_model(p, build_model("cnn", d), arch="cnn", input_dim=d, scaler_mean=X.mean(0), scaler_scale=X.std(0),
                   recipe=recipe)  # fmt: skip
        paths.append(p)
    from dfdet.artifact import load_model

    y = np.arange(64) % 2
    S = np.column_stack([load_model(p).scores(X) for p in paths])
    ens = root / "ens" / "lab.json"
    members = [model_member(n, p, ens) for n, p in zip(OPTIMIZERS, paths, strict=True)]
    doc, _, _ = build_ensemble_document(S, y, members, cv=None)
    write_json(ens, doc)
    return root


def time_option(path: Path, clips: dict[str, bytes], repeats: int, target: float) -> list[float]:
    from dfdet.app.backend import load_for_app, score_uploads

    t0 = time.perf_counter()
    loaded = load_for_app(path)
    t_load = time.perf_counter() - t0
    medians = []
    for label, data in clips.items():
        t0 = time.perf_counter()
        first = score_uploads(loaded, [(f"clip.{label.split()[0].lower()}", data)])
        t_first = time.perf_counter() - t0
        if not first.ok:
            raise SystemExit(f"{path}: {label}: {first.files[0].error}")
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            score_uploads(loaded, [(f"clip.{label.split()[0].lower()}", data)])
            times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        p90 = float(np.percentile(times, 90))
        medians.append(med)
        print(
            f"  {label:<22} median {1000 * med:7.1f} ms  p90 {1000 * p90:7.1f} ms  first {1000 * t_first:7.1f} ms  "
            f"ratio to {target:g} s target {med / target:.3f}  ({first.ok[0].decision}, "
            f"{len(first.ok[0].members)} member(s))"
        )
    print(f"  (load, a cache miss: {t_load:.2f} s)")
    from dfdet.app.backend import inspect_upload, load_explainer

    label, data = next(iter(clips.items()))
    explainer = load_explainer(path)
    inspect_upload(loaded, "clip.wav", data, explainer)
    times = []
    for _ in range(max(3, repeats // 4)):
        t0 = time.perf_counter()
        inspect_upload(loaded, "clip.wav", data, explainer)
        times.append(time.perf_counter() - t0)
    print(f"  (Inspect tab data for the {label} clip, saliency + IG included: median {statistics.median(times):.3f} s)")
    return medians


def time_page(root: Path, seconds: float, repeats: int) -> None:
    """The whole page (all four tabs) re-run by AppTest after a new upload: verdict, Inspect figures, Models tab."""
    import os

    from streamlit.testing.v1 import AppTest

    os.environ["DFDET_APP_MODELS"] = str(root)
    at = AppTest.from_file(str(ROOT / "dfdet" / "app" / "streamlit_app.py"), default_timeout=120)
    at.run()
    times = []
    for i in range(repeats + 1):
        data = clip_bytes(16000, seconds + 0.001 * i, "WAV")  # new bytes each time: no cache hit
        at.file_uploader(key="uploads").set_value([(f"clip{i}.wav", data, "audio/wav")])
        t0 = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - t0)
        if at.exception or at.error:
            raise SystemExit(f"page failed: {at.exception or [e.value for e in at.error]}")
    print(
        f"whole page re-run after a new {seconds:g}-s upload (AppTest, default operating point, all tabs incl. "
        f"Inspect figures and saliency): median {statistics.median(times[1:]):.3f} s (first {times[0]:.3f} s)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=Path, default=None, help="Models dir to time (default: a generated one).")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--target", type=float, default=0.5, help="Target response time (s).")
    ap.add_argument("--no-page", action="store_true", help="Skip the whole-page AppTest measurement.")
    a = ap.parse_args()

    import torch

    from dfdet.app.backend import find_artifacts

    print(f"torch threads {torch.get_num_threads()}; clip {a.seconds:g} s; {a.repeats} warm repeats")
    clips = {
        "WAV 16 kHz": clip_bytes(16000, a.seconds, "WAV"),
        "FLAC 44.1 kHz": clip_bytes(44100, a.seconds, "FLAC"),
        "MP3 44.1 kHz": clip_bytes(44100, a.seconds, "MP3"),
    }
    with tempfile.TemporaryDirectory(prefix="dfdet-bench-") as tmp:
        root = a.models or build_models(Path(tmp))
        cat = find_artifacts(root)
        worst = 0.0
        for opt in cat.usable:
            if a.models is None and opt.kind == "model" and opt.path.stem != OPTIMIZERS[0]:
                continue  # one single model is enough next to the five-member ensemble
            print(f"{opt.label} ({opt.kind}, {len(opt.members)} member(s)):")
            worst = max(worst, *time_option(opt.path, clips, a.repeats, a.target))
        if not a.no_page:
            time_page(Path(root), a.seconds, max(3, a.repeats // 4))
    verdict = "meets" if worst < a.target else "MISSES"
    print(f"slowest median {1000 * worst:.1f} ms = {worst / a.target:.3f} x the {a.target:g} s target: {verdict} it")


if __name__ == "__main__":
    main()
