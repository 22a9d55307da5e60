"""One place that seeds python, numpy and torch, so same seed + same inputs gives the same outputs on CPU."""

from __future__ import annotations

import os
import random

import numpy as np


def seed_everything(seed: int, with_torch: bool | None = None) -> None:
    """Seed python, numpy and (when it is or will be used) torch.

    `with_torch=None` seeds torch only if it is already imported, so light commands never pay its import.
    """
    random.seed(seed)
    np.random.seed(seed % (2**32))
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    import sys

    if with_torch or (with_torch is None and "torch" in sys.modules):
        import torch

        torch.manual_seed(seed)
        if torch.cuda.is_available():
            # CPU kernels used here are deterministic already; the switch costs ~1 s of imports, so GPU runs only.
            torch.use_deterministic_algorithms(True, warn_only=True)
