"""How far float32 scores move with batching and thread count: the evidence behind SCORE_ATOL/SCORE_RTOL.

For each architecture (freshly initialised, seeded) and 4096 random standardised rows, the bona-fide-positive score is
computed (a) in one batch, (b) one row at a time, (c) in blocks of 64, each at 1 and 2 torch threads. Prints the
largest absolute and relative difference to (a)@1 thread and the contract's bound (SCORE_ATOL + SCORE_RTOL * |s|).

    python benchmarks/score_contract.py [--rows 4096]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from dfdet.models import build_model
from dfdet.scores import SCORE_ATOL, SCORE_RTOL


def scores(module: torch.nn.Module, X: torch.Tensor, block: int, threads: int) -> np.ndarray:
    torch.set_num_threads(threads)
    with torch.inference_mode():
        out = torch.cat([module(X[i : i + block]) for i in range(0, len(X), block)])
    return -out.double().numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=4096)
    args = ap.parse_args()
    torch.manual_seed(0)
    X = torch.randn(args.rows, 154)
    print(f"contract: |a - b| <= {SCORE_ATOL:g} + {SCORE_RTOL:g} * |score|")
    for arch in ("linear", "mlp", "cnn"):
        torch.manual_seed(1)
        m = build_model(arch, 154).eval()
        ref = scores(m, X, len(X), 1)
        worst = 0.0
        for block in (len(X), 64, 1):
            for threads in (1, 2):
                s = scores(m, X, block, threads)
                d = np.abs(s - ref)
                ratio = float((d / (SCORE_ATOL + SCORE_RTOL * np.abs(ref))).max())
                worst = max(worst, ratio)
                print(
                    f"{arch:6s} block {block:5d} threads {threads}: max |diff| {d.max():.2e}, "
                    f"max rel {float((d / np.maximum(np.abs(ref), 1e-12)).max()):.2e}, {ratio:.3f} of the bound"
                )
        print(f"{arch:6s} worst: {worst:.3f} of the contract's bound")


if __name__ == "__main__":
    main()
