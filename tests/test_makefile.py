"""`make reproduce` runs its rules for real on generated fixtures in the ASVspoof 2019 LA and In-the-Wild layouts."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dfdet.scores import read_scores
from dfdet.store import load_features
from tests.fixtures import bona_signal, make_asvspoof_la, spoof_signal, write_audio

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")


def make_itw_mixed(root: Path, speakers: int = 6, per_class: int = 2) -> Path:
    """In-the-Wild layout where every speaker has both classes (so a speaker split keeps both in each half)."""
    root.mkdir(parents=True)
    rows = []
    for s in range(speakers):
        for k in range(2 * per_class):
            spoof = k % 2 == 1
            name = f"{s * 10 + k}.wav"
            write_audio(root / name, (spoof_signal if spoof else bona_signal)(16000, 0.5, s * 100 + k), 16000)
            rows.append([name, f"speaker {s}", "spoof" if spoof else "bona-fide"])
    with open(root / "meta.csv", "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([["file", "speaker", "label"], *rows])
    return root


def test_make_reproduce_on_real_layouts(tmp_path):
    la = tmp_path / "LA"
    for part in ("train", "dev", "eval"):
        make_asvspoof_la(la, n_per_class=6, partition=part, seed={"train": 1, "dev": 2, "eval": 3}[part])
    itw = make_itw_mixed(tmp_path / "release_in_the_wild")
    out = tmp_path / "r"
    bin_dir = Path(sys.executable).parent
    cmd = [
        "make", "-C", str(ROOT), "-j2", "reproduce", f"ASVSPOOF={la}", f"ITW={itw}", f"R={out}",
        f"BIN={bin_dir}", "CV=2", "JOBS=1", "-o", f"{bin_dir}/dfdet",
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert f"report: {out}/report/index.html" in r.stdout
    # train on train, evaluate on eval: eval's attacks (A07-A19) never seen in training
    eval_scores = read_scores(out / "scores/adamw.la_eval.tsv")
    assert len(eval_scores.utt_id) == 12 and all(u.startswith("LA_E_") for u in eval_scores.utt_id)
    assert {s for s in load_features(out / "feats/la_train.h5").system if s} <= {f"A0{i}" for i in range(1, 7)}
    # In-the-Wild split by speaker into calibration and test halves
    cal, test = load_features(out / "split/itw_cal.h5"), load_features(out / "split/itw_test.h5")
    assert not set(cal.speaker) & set(test.speaker) and len(cal) + len(test) == 24
    ens = json.loads((out / "ens/itw.json").read_text())
    assert ens["kind"] == "ensemble" and len(ens["members"]) == 5
    summary = json.loads((out / "report/summary.json").read_text())
    assert summary and (out / "report/index.html").stat().st_size > 10_000


def test_reproduce_without_corpora_says_what_to_set():
    r = subprocess.run(["make", "-C", str(ROOT), "-n", "reproduce"], capture_output=True, text=True)
    assert r.returncode != 0 and "ASVSPOOF=" in r.stderr
