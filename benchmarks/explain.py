"""`dfdet explain` time and peak memory per 100 rows, for one model and for an ensemble of several models.

Usage: .venv/bin/python benchmarks/explain.py [--rows 100] [--members 5] [--model cnn] [--n-steps 64]
       [--baseline-src DIR]

Each run is the CLI end to end (`dfdet -q explain MODEL FEATS -o OUT.json`, methods saliency, ig, ixg; for the
ensemble also every member's attributions) in its own process, so its peak RSS (os.wait4's ru_maxrss) is explain's
alone; the interpreter + torch + captum import is measured the same way and printed so it can be subtracted.
--baseline-src runs the same commands on another dfdet source tree first (e.g. a `git worktree add` of an older
commit) and prints the ratios: like with like, on this machine and its load at the time. The models have the
study's architecture with seeded random weights, the rows are seeded random features of the seed154 recipe (what
matters here is the work per row, not what the models learned); everything lives in a temporary directory.
"""

from __future__ import annotations

import argparse
import os
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


def run_measured(cmd: list[str], src: Path, cwd: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one subprocess importing dfdet from `src` (`cwd` must hold no dfdet: `python
    -m` puts it first on the path)."""
    env = dict(os.environ, PYTHONPATH=str(src), OMP_NUM_THREADS="1")
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    dt = time.perf_counter() - t0
    err = p.stderr.read().decode(errors="replace") if p.stderr else ""
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise SystemExit(f"failed ({p.returncode}): {' '.join(cmd)}\n{err[-2000:]}")
    return dt, usage.ru_maxrss / 1024.0  # Linux: KiB


def make_inputs(tmp: Path, rows: int, members: int, arch: str) -> tuple[Path, Path, Path]:
    """A labelled store of `rows` rows, `members` seeded models and their auc2 ensemble (model, ensemble, store)."""
    from score import make_model  # benchmarks/score.py: a seed154 model file with seeded random weights

    from dfdet.features import get_recipe, recipe_hash
    from dfdet.store import FeatureSet, write_features

    rec = get_recipe("seed154")
    rng = np.random.default_rng(0)
    n = max(rows, 40)
    y = (np.arange(n) % 2).astype(np.int8)
    X = (rng.normal(size=(n, len(rec.feature_names))) + 0.5 * y[:, None]).astype(np.float32)
    fs = FeatureSet(
        X=X,
        y=y,
        utt_id=[f"r{i:06d}" for i in range(n)],
        feature_names=list(rec.feature_names),
        groups=list(rec.groups),
        speaker=[f"s{i % 7}" for i in range(n)],
        recipe=rec.name,
        recipe_config=rec.config(),
        recipe_hash=recipe_hash(rec),
    )
    write_features(tmp / "all.h5", fs)
    write_features(tmp / "rows.h5", fs.subset(np.arange(rows)))
    mean, scale = X.mean(axis=0).astype(np.float64), X.std(axis=0).astype(np.float64) + 1e-6
    models = []
    for k in range(members):
        path = tmp / f"m{k}.pt"
        make_model(path, arch, mean, scale)
        _reseed(path, k)
        models.append(path)
    cmd = [sys.executable, "-m", "dfdet", "-q", "ensemble", "--on", str(tmp / "all.h5"), "--method", "auc2"]
    for m in models:
        cmd += ["--model", str(m)]
    run_measured([*cmd, "--cv", "2", "--in-sample", "-o", str(tmp / "ens.json")], ROOT, tmp)
    return models[0], tmp / "ens.json", tmp / "rows.h5"


def _reseed(path: Path, k: int) -> None:
    """make_model seeds every model alike: perturb member k's weights so the members differ (seeded)."""
    import torch

    ckpt = torch.load(path, weights_only=False)
    g = torch.Generator().manual_seed(1000 + k)
    for name, t in ckpt["state_dict"].items():
        if t.is_floating_point() and "running" not in name:
            t.add_(0.1 * torch.randn(t.shape, generator=g) * (t.std() if t.numel() > 1 else 1.0))
    torch.save(ckpt, path)


def main() -> None:
    from featurize import machine_line  # benchmarks/featurize.py

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100, help="rows explained")
    ap.add_argument("--members", type=int, default=5, help="ensemble members")
    ap.add_argument("--model", default="cnn", help="architecture (dfdet.models registry)")
    ap.add_argument("--n-steps", type=int, default=64, help="integrated-gradients steps")
    ap.add_argument("--baseline-src", type=Path, help="another dfdet source tree to run first (the 'before')")
    args = ap.parse_args()

    print(machine_line())
    print(f"explain: {args.rows} rows, methods saliency,ig,ixg, --n-steps {args.n_steps}, arch {args.model}")
    trees = [("before", args.baseline_src.resolve())] if args.baseline_src else []
    trees.append(("this tree", ROOT))
    with tempfile.TemporaryDirectory(prefix="dfdet-bench-explain-") as tmp:
        tmp = Path(tmp)
        model, ens, feats = make_inputs(tmp, args.rows, args.members, args.model)
        results: dict[tuple[str, str], tuple[float, float]] = {}
        for label, src in trees:
            probe = "import sys, torch, captum.attr, dfdet.explain; assert dfdet.__file__.startswith(sys.argv[1])"
            t_imp, rss_imp = run_measured([sys.executable, "-c", probe, str(src)], src, tmp)  # and the right dfdet
            print(f"[{label}] interpreter + torch + captum import: {t_imp:.2f} s, peak RSS {rss_imp:.0f} MB")
            for what, det in (("model", model), (f"ensemble of {args.members}", ens)):
                cmd = [sys.executable, "-m", "dfdet", "-q", "explain", str(det), str(feats)]
                cmd += ["--n-steps", str(args.n_steps), "-o", str(tmp / "out.json")]
                dt, rss = run_measured(cmd, src, tmp)
                results[(label, what)] = (dt, rss)
                per100 = 100.0 * max(dt - t_imp, 0.0) / args.rows
                print(
                    f"[{label}] explain {what}: {dt:.2f} s wall ({per100:.2f} s per 100 rows after import), "
                    f"peak RSS {rss:.0f} MB ({rss - rss_imp:.0f} MB above import)"
                )
        if args.baseline_src:
            for what in ("model", f"ensemble of {args.members}"):
                (t0, r0), (t1, r1) = results[("before", what)], results[("this tree", what)]
                print(f"ratio {what}: time before/now {t0 / t1:.2f}x, peak RSS before/now {r0 / r1:.2f}x")


if __name__ == "__main__":
    main()
