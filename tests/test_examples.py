"""Every shell pipeline in examples/ runs for real on a tiny generated corpus (bash, the installed CLI)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from dfdet.democorpus import make_demo_corpus
from dfdet.scores import read_scores
from dfdet.store import load_features
from tests.fixtures import make_asvspoof_la

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def run(script: str, *args: str, cwd: Path, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, DFDET=f"{sys.executable} -m dfdet -q", OMP_NUM_THREADS="1", CV="3")
    env.update(env_extra or {})
    r = subprocess.run(
        ["bash", str(EXAMPLES / script), *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert r.returncode == 0, f"{script} failed ({r.returncode}):\n{r.stderr[-3000:]}"
    return r


def dfdet(*args: str, cwd: Path) -> None:
    cmd = [sys.executable, "-m", "dfdet", "-q", *map(str, args)]
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode == 0, r.stderr[-3000:]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A tiny demo corpus, featurized, split, with two quickly trained models."""
    root = tmp_path_factory.mktemp("examples")
    make_demo_corpus(root / "corpus", n_per_class=16, n_wild_per_class=12, seed=3, seconds=(1.0, 1.5))
    dfdet("featurize", "--labels", root / "corpus/lab.csv", "-j", "1", "-o", root / "lab.h5", cwd=root)
    dfdet("featurize", "--labels", root / "corpus/wild.csv", "-j", "1", "-o", root / "wild.h5", cwd=root)
    dfdet(
        "split", root / "lab.h5", "--parts", "train=0.5,dev=0.25,test=0.25", "--out-pattern", "lab_{part}.h5", cwd=root
    )
    for opt in ("adam", "sgd"):
        dfdet(
            "train", "lab_train.h5", "--val", "lab_dev.h5", "--model", "linear", "--optimizer", opt,
            "--epochs", "4", "--batch-size", "8", "-o", f"{opt}.pt", cwd=root,
        )  # fmt: skip
    return root


def test_featurize_folder(study):
    r = run("featurize_folder.sh", study / "corpus/lab", "folder.h5", cwd=study)
    fs = load_features(study / "folder.h5")
    assert len(fs) == 32 and fs.dim == 154
    assert "rows" in r.stdout and "32" in r.stdout


def test_score_from_find_streams_every_wav(study):
    r = run("score_from_find.sh", "adam.pt", "corpus/lab", cwd=study)
    lines = r.stdout.strip().splitlines()
    assert lines[0].split("\t")[:2] == ["utt_id", "score"]
    n_wav = len(list((study / "corpus/lab").rglob("*.wav")))
    assert len(lines) - 1 == n_wav == 32
    scores = np.array([float(line.split("\t")[1]) for line in lines[1:]])
    assert np.all(np.isfinite(scores))


def test_calibrate_and_ensemble(study):
    r = run("calibrate_and_ensemble.sh", "lab_dev.h5", "lab_test.h5", "out", "adam.pt", "sgd.pt", cwd=study)
    for name in ("calibrated.json", "ensemble.json", "calibrated.test.tsv", "ensemble.test.tsv"):
        assert (study / "out" / name).stat().st_size > 0
    table = read_scores(study / "out/ensemble.test.tsv")
    assert len(table.utt_id) == len(load_features(study / "lab_test.h5"))
    assert "calibrated.test" in r.stdout and "ensemble.test" in r.stdout


def test_domain_shift(study):
    r = run("domain_shift.sh", "wild.h5", "shift", "adam.pt", "sgd.pt", cwd=study)
    assert "lab-model" in r.stdout and "wild-fused" in r.stdout
    fit = load_features(study / "shift/wild_fit.h5")
    ev = load_features(study / "shift/wild_eval.h5")
    assert not set(fit.utt_id) & set(ev.utt_id)
    assert not {s for s in fit.speaker if s} & {s for s in ev.speaker if s}


def test_evaluate_asvspoof(tmp_path):
    proto = make_asvspoof_la(tmp_path / "LA", n_per_class=6, partition="eval")
    rng = np.random.default_rng(0)
    rows = []
    for line in proto.read_text().splitlines():
        _, utt, _, _, key = line.split()
        rows.append(f"{utt} {rng.normal(1.0 if key == 'bonafide' else -1.0):.4f}")
    (tmp_path / "cm_scores.txt").write_text("\n".join(rows) + "\n")
    r = run("evaluate_asvspoof.sh", "cm_scores.txt", proto, cwd=tmp_path)
    assert "A07" in r.stdout and "eer" in r.stdout.lower()


def test_slurm_array_shards_merge_to_single_run(study):
    for k in (1, 2, 3):
        env = {"SLURM_ARRAY_TASK_ID": str(k), "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_CPUS_PER_TASK": "1"}
        run("slurm_featurize.sbatch", study / "corpus/wild.csv", "shards", cwd=study, env_extra=env)
    dfdet("merge", "shards/shard.1.h5", "shards/shard.2.h5", "shards/shard.3.h5", "-o", "merged.h5", cwd=study)
    with h5py.File(study / "merged.h5") as a, h5py.File(study / "wild.h5") as b:
        np.testing.assert_array_equal(a["features"][:], b["features"][:])
        assert list(a["utt_id"].asstr()[:]) == list(b["utt_id"].asstr()[:])
