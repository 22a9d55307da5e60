"""Start-up cost: what a fresh `dfdet` process imports on its hot paths (timings live in benchmarks/startup.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import speechlike
from tests.fixtures import write_audio

ROOT = Path(__file__).resolve().parents[1]
# librosa pulls numba, scipy.signal and scipy.stats: seconds of start-up for numerics dfdet does itself.
HEAVY = ("librosa", "numba", "scipy", "sklearn", "torch", "matplotlib", "pandas")

PROBE = """
import json, sys
from dfdet.cli import cli
try:
    cli.main(args=sys.argv[1:], prog_name="dfdet")
except SystemExit as e:
    code = e.code
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(os.environ["HEAVY"])))
print(json.dumps({"code": code, "heavy": heavy}), file=sys.__stderr__)
"""


def _imports(args: list[str], cwd: Path) -> dict:
    """Run `dfdet ARGS` in a fresh interpreter; the top-level heavy packages it imported and its exit code."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HEAVY": json.dumps(HEAVY)}
    proc = subprocess.run(
        [sys.executable, "-c", "import os\n" + PROBE, *args], cwd=cwd, env=env, capture_output=True, text=True
    )
    return json.loads(proc.stderr.strip().splitlines()[-1])


def test_featurize_imports_no_heavy_library(tmp_path):
    """seed154 at 24 kHz (resampled) featurizes with numpy, soundfile, soxr and h5py only."""
    wav = write_audio(tmp_path / "a.wav", speechlike(24000, 3.0, seed=1), 24000, subtype="PCM_16")
    out = _imports(["-q", "featurize", str(wav), "-o", str(tmp_path / "a.h5")], tmp_path)
    assert out == {"code": 0, "heavy": []}
    assert (tmp_path / "a.h5").exists()


def test_help_and_version_import_nothing_heavy(tmp_path):
    for args in (["--help"], ["--version"], ["featurize", "--help"], ["score", "--help"]):
        out = _imports(args, tmp_path)
        assert out == {"code": 0, "heavy": []}, args
