"""How an artifact was made: versions, command line, time, host."""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import json
import platform
import sys
from pathlib import Path
from typing import Any

from dfdet import __version__


def config_hash(config: Any) -> str:
    """Stable short hash of a JSON-able configuration (sorted keys, no whitespace)."""
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def file_hash(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()[:16]


def array_hash(*arrays: Any) -> str:
    """Hash of array contents (dtype, shape and bytes) — identifies the data a calibration or model was fitted on."""
    import numpy as np

    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(np.asarray(a))
        if a.dtype.kind in "OUS":
            a = np.asarray([str(v) for v in a.ravel()], dtype=object)
            h.update("\x1f".join(a).encode())
        else:
            h.update(str(a.dtype).encode() + str(a.shape).encode())
            h.update(a.tobytes())
    return h.hexdigest()[:16]


def cpu_signature() -> dict[str, str]:
    """Vendor, model, cache and a hash of the instruction-set flags of the first CPU.

    BLAS and oneDNN pick float32 kernels by these: two machines with the same torch and `cpu_capability` (AVX512)
    but different flags (one with AMX) train the same seeded CNN to weights that differ in the last bits.
    """
    return dict(_cpu_signature())  # a copy: callers may edit the record they embed


@functools.cache
def _cpu_signature() -> dict[str, str]:  # read once per process: every artifact written records it
    sig = {"machine": platform.machine()}
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:  # not Linux: the machine type is all we know
        return sig
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break  # the first processor's block
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    flags = " ".join(sorted(fields.get("flags", fields.get("Features", "")).split()))
    sig.update(
        vendor=fields.get("vendor_id") or fields.get("CPU implementer", ""),  # x86, or Arm's implementer code
        model=fields.get("model name", ""),
        cache=fields.get("cache size", ""),
        flags_sha=hashlib.sha256(flags.encode()).hexdigest()[:16],
    )
    return sig


def provenance(**extra: Any) -> dict[str, Any]:
    """A JSON-able record of the running dfdet, python, key libraries, argv and UTC time."""
    libs = {}
    for name in ("numpy", "torch", "librosa", "sklearn", "soundfile", "h5py"):
        mod = sys.modules.get(name)
        if mod is not None:
            libs[name] = getattr(mod, "__version__", "?")
    rec = {
        "dfdet_version": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "libraries": libs,
        "argv": list(sys.argv),
        "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    rec["cpu"] = cpu_signature()
    torch = sys.modules.get("torch")
    if torch is not None:  # float sums depend on it: the same seed reproduces bit for bit only at the same count
        rec["torch_threads"] = torch.get_num_threads()
        rec["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()  # which float kernels ran (AVX2, ...)
    rec.update(extra)
    return rec


def input_files(**paths: str | None) -> dict[str, Any]:
    """Path and content hash of each named input file (missing/None ones left out), for provenance records."""
    rec = {}
    for k, p in paths.items():
        if p and Path(p).is_file():
            rec[k] = {"path": str(p), "hash": file_hash(p)}
    return rec
