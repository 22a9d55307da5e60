"""Augmentation cost: CPU seconds per second of audio for each kind (x real time), against featurizing the same audio.

Usage: .venv/bin/python benchmarks/augment.py [--seconds 4] [--draws 6] [--rates 16000,44100] [--recipe lfcc]

Each kind is applied to a seeded speech-like clip with `--draws` specs drawn as `featurize --augment` draws them
(its parameter ranges), one BLAS thread, after one untimed warm-up call (lazy imports). `x RT` = audio seconds
processed per CPU second; `vs feat` = the kind's time over the recipe's prepare + extract of the same clip, measured
in this process, so it says how much an augmented copy adds to featurizing an original. The `chain` row is the
default mix (`--augment` with all kinds, up to 2 steps). Short: about half a minute on one core.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _cpu(fn, reps: int) -> float:
    """Mean CPU seconds of fn() over `reps` calls (process time: load on other cores does not count)."""
    t0 = time.process_time()
    for _ in range(reps):
        fn()
    return (time.process_time() - t0) / reps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=4.0, help="clip length")
    ap.add_argument("--draws", type=int, default=6, help="specs timed per kind")
    ap.add_argument("--rates", default="16000,44100", help="sample rates of the clips")
    ap.add_argument("--recipe", default="lfcc", help="feature recipe of the baseline")
    args = ap.parse_args()

    from dfdet import augment as A
    from dfdet.features import get_recipe
    from dfdet.pool import one_blas_thread
    from tests.conftest import speechlike

    rec = get_recipe(args.recipe)
    print(
        f"augment cost, {args.seconds:g} s clips, {args.draws} draws per kind, one thread; baseline: recipe {rec.name}"
    )
    with one_blas_thread():
        for sr in (int(r) for r in args.rates.split(",")):
            y = speechlike(sr, args.seconds, seed=1)
            feat = _cpu(lambda y=y, sr=sr: rec.extract(rec.prepare(y, sr)), 1)  # warm-up
            feat = _cpu(lambda y=y, sr=sr: rec.extract(rec.prepare(y, sr)), 5)
            print(f"\n{sr} Hz: featurize ({rec.name} prepare + extract) {args.seconds / feat:,.0f}x real time")
            print(f"{'kind':<12} {'ms/clip':>9} {'x RT':>9} {'vs feat':>8}  example spec")
            kinds = [(k, A.resolve_config(1, 0, k)) for k in A.AUGMENTATIONS if not A.resolve_config(1, 0, k).skipped]
            for name, cfg in [*kinds, ("chain", A.resolve_config(1, 0))]:
                specs = [A.draw_spec(cfg, f"bench{i}", 1) for i in range(args.draws)]
                A.apply_spec(y, sr, specs[0])  # lazy imports (scipy.signal, codecs), not timed
                t = sum(_cpu(lambda s=s, y=y, sr=sr: A.apply_spec(y, sr, s), 1) for s in specs) / len(specs)
                print(f"{name:<12} {1e3 * t:>9.1f} {args.seconds / t:>9,.0f} {t / feat:>8.2f}  {specs[0]}")


if __name__ == "__main__":
    main()
