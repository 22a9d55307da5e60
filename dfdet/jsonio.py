"""JSON documents the commands write: plain Python types, strict (NaN/inf -> null) by default, atomic files."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any


def plain(obj: Any, nan_to_none: bool = True) -> Any:
    """numpy scalars/arrays -> Python, tuples -> lists, Paths -> str; NaN/inf -> None unless `nan_to_none` is off.

    Floats keep their repr precision, so a written document reads back to identical numbers.
    """
    import numpy as np

    if isinstance(obj, dict):
        return {str(k): plain(v, nan_to_none) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v, nan_to_none) for v in obj]
    if isinstance(obj, np.ndarray):
        return plain(obj.tolist(), nan_to_none)
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) or not nan_to_none else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def dumps(obj: Any, indent: int | None = 1, sort_keys: bool = False) -> str:
    """Strict JSON text (a reader that rejects NaN accepts it)."""
    return json.dumps(plain(obj), indent=indent, sort_keys=sort_keys, allow_nan=False)


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = 1) -> None:
    """Write `obj` as strict JSON atomically; `-` writes to stdout."""
    from dfdet.atomic import write_text_atomic

    text = dumps(obj, indent) + "\n"
    if str(path) == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    write_text_atomic(path, text)
