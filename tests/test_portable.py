"""Torch-free scoring of linear models (dfdet.portable, `dfdet export`): same scores as torch within the score
contract, used only while it matches its .pt byte for byte, and `dfdet score` with it never imports torch."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from dfdet.artifact import load_model, save_result
from dfdet.cli import cli
from dfdet.errors import InputError
from dfdet.portable import PortableDetector, export_portable, load_portable, portable_path
from dfdet.scores import read_scores
from dfdet.scoring import load_detector
from dfdet.store import write_features
from dfdet.training import make_config, train_model
from tests.conftest import ROOT
from tests.contract import assert_scores_agree
from tests.fixtures import bona_signal, write_audio
from tests.test_crossval import corpus, make_fs

DEFAULT = ROOT / "models" / "default"


@pytest.fixture
def trained(tmp_path):
    fs = make_fs(corpus(n_systems=6, n_bona_speakers=6, aug=False), dim=10, seed=4)
    path = tmp_path / "m.pt"
    save_result(path, train_model(fs, None, make_config(model="logreg", val_split=0.0)))
    return fs, path


def test_copy_scores_as_torch_does(trained):
    fs, path = trained
    export_portable(path)
    copy = load_portable(path)
    assert isinstance(copy, PortableDetector) and copy.arch == "logreg" and not copy.needs_torch
    torch_det = load_model(path)
    X = np.vstack([fs.X, np.random.default_rng(0).normal(scale=5.0, size=(200, fs.dim))]).astype(np.float32)
    assert_scores_agree(copy.scores(X), torch_det.scores(X))
    assert copy.threshold == torch_det.threshold and copy.recipe_hash == torch_det.recipe_hash


def test_scoring_uses_the_copy_only_while_it_matches_the_model(trained, tmp_path):
    fs, path = trained
    assert not isinstance(load_detector(path).members[0].detector, PortableDetector)  # no copy yet: torch
    export_portable(path)
    assert isinstance(load_detector(path).members[0].detector, PortableDetector)
    # retrain into the same file: the copy is stale and ignored
    fs2 = fs.subset(np.arange(0, len(fs), 2))
    save_result(path, train_model(fs2, None, make_config(model="logreg", val_split=0.0)))
    assert load_portable(path) is None
    assert not isinstance(load_detector(path).members[0].detector, PortableDetector)


def test_only_linear_models_export(tmp_path):
    fs = make_fs(corpus(n_systems=6, n_bona_speakers=6, aug=False), dim=10, seed=4)
    save_result(tmp_path / "mlp.pt", train_model(fs, None, make_config(model="mlp", epochs=1, val_split=0.0)))
    with pytest.raises(InputError, match="architecture 'mlp' has no torch-free form"):
        export_portable(tmp_path / "mlp.pt")
    assert not portable_path(tmp_path / "mlp.pt").exists()


def test_a_damaged_copy_is_a_clear_error(trained):
    _, path = trained
    portable_path(path).write_bytes(b"not an npz")
    with pytest.raises(InputError, match="unreadable torch-free model copy"):
        load_portable(path)


def test_cli_export_then_score_a_store_agrees_with_torch(runner, trained, tmp_path):
    fs, path = trained
    store = tmp_path / "s.h5"
    write_features(store, fs)
    r = runner.invoke(cli, ["score", str(path), str(store), "-o", str(tmp_path / "torch.tsv")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["export", str(path)])
    assert r.exit_code == 0, r.output
    assert portable_path(path).is_file() and "torch-free scoring" in r.stderr
    r = runner.invoke(cli, ["score", str(path), str(store), "-o", str(tmp_path / "numpy.tsv")])
    assert r.exit_code == 0, r.output
    a, b = read_scores(tmp_path / "numpy.tsv"), read_scores(tmp_path / "torch.tsv")
    assert list(a.utt_id) == list(b.utt_id)
    assert_scores_agree(a.score, b.score)


def test_shipped_default_has_a_current_copy():
    assert load_portable(DEFAULT / "model.pt") is not None, "re-run `make models` (or dfdet export) for the default"


def test_scoring_a_file_with_the_default_never_imports_torch(tmp_path):
    """The reason for the copy: `dfdet score FILE` with the shipped default detector does not import torch."""
    clip = write_audio(tmp_path / "a.wav", bona_signal(16000, 2.0, seed=1), 16000)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DFDET_MODELS": str(tmp_path / "models")}
    shutil.copytree(DEFAULT, tmp_path / "models" / "default")
    r = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "dfdet", "score", str(clip)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.splitlines()[1].startswith("a\t")
    imported = {line.rsplit("|", 1)[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}
    assert "dfdet.portable" in imported and "torch" not in imported


def test_gradient_tools_load_the_torch_model_even_with_a_copy_beside_it(trained):
    """explain/attack need a differentiable module: the numpy copy is for scoring only."""
    from dfdet.attacks import load_diff_detector

    fs, path = trained
    export_portable(path)
    diff = load_diff_detector(path)
    assert_scores_agree(diff.scores(fs.X), load_detector(path).score_features(fs.X)["score"])
