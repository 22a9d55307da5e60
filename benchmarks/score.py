"""`dfdet score` throughput: files/s on audio with -j 2 (vs featurize alone on the same files) and rows/s on a store.

Usage: .venv/bin/python benchmarks/score.py [--n-files 1000] [--seconds 2.0] [--jobs 2] [--rows 100000]
       [--model cnn] [--no-cli]

Everything is measured in one run on this machine, so the printed `ratio` lines compare like with like; absolute
numbers depend on the machine and on its load (a shared machine gives lower, noisier numbers). The corpus (seeded
16 kHz FLAC clips, the featurize benchmark's generator) lives in a temporary directory deleted afterwards. The model
has the study's architecture (`cnn`, random weights: speed does not depend on what it learned).

Measured:
- featurize -j N (library, HDF5 store): the baseline: decoding + features, the bulk of scoring's work;
- score -j N on audio (library: score_audio_stream + sorted TSV): should be close to the baseline;
- score of the same files streamed lazily (the `dfdet score MODEL -` route, paths from an iterator);
- the CLI end to end (`dfdet score MODEL DIR -j N -o out.tsv`, and `find DIR | dfdet score MODEL -`) in a subprocess:
  includes interpreter start-up and imports (torch), reported separately;
- a feature store tiled to --rows rows: rows/s of load + score + write TSV (linear model), and of each model alone.
"""

from __future__ import annotations

import argparse
import io
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402


def make_model(path: Path, arch: str, mean: np.ndarray, scale: np.ndarray) -> None:
    """A model file for the seed154 recipe with random weights (seeded)."""
    import torch

    from dfdet.artifact import save_model
    from dfdet.features import get_recipe, recipe_hash
    from dfdet.models import build_model

    rec = get_recipe("seed154")
    torch.manual_seed(0)
    module = build_model(arch, len(rec.feature_names))
    save_model(
        path,
        module,
        arch=arch,
        input_dim=len(rec.feature_names),
        scaler_mean=mean,
        scaler_scale=scale,
        recipe={
            "name": rec.name,
            "hash": recipe_hash(rec),
            "config": rec.config(),
            "feature_names": list(rec.feature_names),
            "groups": [[g.name, g.start, g.stop] for g in rec.groups],
        },
    )


def cli_seconds(cmd: str) -> float:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    p = subprocess.run(cmd, shell=True, capture_output=True, text=True, env=env)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"failed: {cmd}\n{p.stderr}")
    return dt


def main() -> None:
    from featurize import add_corpus_args, machine_line, make_corpus  # benchmarks/featurize.py: shared corpus

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_corpus_args(ap, 1000)
    ap.add_argument("--rows", type=int, default=100_000, help="rows of the tiled feature store")
    ap.add_argument("--model", default="cnn", help="architecture of the benchmark model (cnn, linear, mlp)")
    ap.add_argument("--no-cli", action="store_true", help="skip the subprocess (CLI) measurements")
    args = ap.parse_args()

    from dfdet.features import get_recipe
    from dfdet.featurize import featurize, warm_up
    from dfdet.inputs import list_audio_paths, utterances_from_paths
    from dfdet.scores import write_scores
    from dfdet.scoring import load_detector, rows_to_table, score_audio_stream, score_store, stdin_utterances
    from dfdet.store import load_features, write_features

    print(machine_line())
    with tempfile.TemporaryDirectory(prefix="dfdet-bench-score-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        make_corpus(tmp / "corpus", args.n_files, args.seconds)
        made = time.perf_counter() - t0
        print(f"corpus: {args.n_files} FLAC clips, 16 kHz, {args.seconds:g} s (generated in {made:.1f} s)")
        recipe = get_recipe("seed154")
        warm_up(recipe)
        utts = utterances_from_paths(list_audio_paths([tmp / "corpus"]))

        # baseline: featurize alone
        res = featurize(utts, tmp / "feats.h5", recipe=recipe, jobs=args.jobs, show_progress=False)
        feat_rate = res.done / res.seconds
        print(f"featurize -j {args.jobs}: {res.done} files in {res.seconds:.2f} s = {feat_rate:.0f} files/s (baseline)")

        fs = load_features(tmp / "feats.h5")
        model = tmp / f"{args.model}.pt"
        make_model(model, args.model, fs.X.mean(axis=0).astype(np.float64), fs.X.std(axis=0).astype(np.float64) + 1e-6)
        det = load_detector(model)

        # score on audio (library; what `dfdet score MODEL DIR -j N` runs)
        t0 = time.perf_counter()
        table = rows_to_table(score_audio_stream(det, utts, jobs=args.jobs))
        write_scores(tmp / "audio.tsv", table)
        dt = time.perf_counter() - t0
        score_rate = len(table) / dt
        print(
            f"score -j {args.jobs} on audio ({args.model}): {len(table)} files in {dt:.2f} s = {score_rate:.0f} files/s"
        )
        print(f"ratio score/featurize {score_rate / feat_rate:.2f}x (target: files/s >= 400 on 2 idle cores)")

        # lazily streamed paths (the stdin route)
        text = io.StringIO("".join(f"{u.path}\n" for u in utts))
        t0 = time.perf_counter()
        n = sum(1 for _ in score_audio_stream(det, stdin_utterances(text), jobs=args.jobs))
        dt = time.perf_counter() - t0
        print(f"score -j {args.jobs} streamed (lazy stdin route): {n} files in {dt:.2f} s = {n / dt:.0f} files/s")
        print(f"ratio streamed/featurize {n / dt / feat_rate:.2f}x")

        # the same numbers agree with scoring the store
        st, _ = score_store(det, fs)
        agree = np.max(np.abs(st.score - table.score)) if len(st) == len(table) else float("nan")
        print(f"audio vs store scores: max |difference| {agree:.2e}")

        if not args.no_cli:
            py = shlex.quote(sys.executable)
            m, corpus, out = (shlex.quote(str(x)) for x in (model, tmp / "corpus", tmp / "cli.tsv"))
            t_help = cli_seconds(f"{py} -m dfdet score --help > /dev/null")
            t_start = cli_seconds(f"{py} -c 'import torch, dfdet.scoring, dfdet.featurize'")
            t_cli = cli_seconds(f"{py} -m dfdet -q score {m} {corpus} -j {args.jobs} -o {out}")
            t_pipe = cli_seconds(f"find {corpus} -name '*.flac' | {py} -m dfdet -q score {m} - -j {args.jobs} > {out}")
            print(f"CLI: `score --help` {t_help:.2f} s; interpreter + torch import {t_start:.2f} s")
            print(
                f"CLI `dfdet score MODEL DIR -j {args.jobs} -o OUT`: {t_cli:.2f} s wall = "
                f"{args.n_files / t_cli:.0f} files/s incl. start-up, "
                f"{args.n_files / max(t_cli - t_start, 1e-9):.0f} files/s excluding it"
            )
            print(
                f"CLI `find DIR | dfdet score MODEL -`: {t_pipe:.2f} s wall = {args.n_files / t_pipe:.0f} files/s "
                f"incl. start-up, {args.n_files / max(t_pipe - t_start, 1e-9):.0f} files/s excluding it"
            )

        # feature store tiled to --rows: the scoring machinery (load, standardise, model, sorted TSV) with a linear
        # model, whose compute is negligible; then the model alone per architecture (the CNN is ~11 MFLOP per row)
        reps = int(np.ceil(args.rows / len(fs)))
        big = fs.subset(np.tile(np.arange(len(fs)), reps)[: args.rows])
        big.utt_id = [f"r{i:07d}" for i in range(len(big))]
        write_features(tmp / "big.h5", big)
        lin = tmp / "linear.pt"
        make_model(lin, "linear", fs.X.mean(axis=0).astype(np.float64), fs.X.std(axis=0).astype(np.float64) + 1e-6)
        det_lin = load_detector(lin)
        t0 = time.perf_counter()
        loaded = load_features(tmp / "big.h5")
        t_load = time.perf_counter() - t0
        t1 = time.perf_counter()
        st, _ = score_store(det_lin, loaded)
        t_score = time.perf_counter() - t1
        t2 = time.perf_counter()
        write_scores(tmp / "big.tsv", st)
        t_write = time.perf_counter() - t2
        total = time.perf_counter() - t0
        print(
            f"store of {args.rows} rows (linear): load + score + write TSV {total:.2f} s = "
            f"{args.rows / total:.0f} rows/s "
            f"(load {t_load:.2f} s, score {t_score:.2f} s, write {t_write:.2f} s)"
        )
        print(f"ratio (load+score+write)/(load alone) {total / t_load:.1f}x time")
        import torch

        for name, d in (("linear", det_lin), (args.model, det)):
            n = min(args.rows, 100_000 if name == "linear" else 5_000)
            t0 = time.perf_counter()
            d.score_features(big.X[:n])
            dt = time.perf_counter() - t0
            print(f"model alone ({name}, {torch.get_num_threads()} torch threads): {n / dt:.0f} rows/s on {n} rows")


if __name__ == "__main__":
    main()
