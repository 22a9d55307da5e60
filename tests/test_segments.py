"""`dfdet score --segments`: window geometry, a window scored as the same seconds cut into a file of their own, a
partial fake localised by a detector trained here, and the command's rows and errors."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from dfdet.cli import cli
from dfdet.segments import COLUMNS, read_segments, window_bounds
from tests.conftest import speechlike
from tests.contract import assert_scores_agree
from tests.fixtures import write_audio
from tests.test_frame_models import one_torch_thread  # noqa: F401  (autouse: tiny forwards on one thread)

SR = 16000
_CACHE: dict[str, object] = {}


# --------------------------------------------------------------------------------------------------- audio
def syllables(seconds: float, seed: int, sr: int = SR) -> np.ndarray:
    """Bona fide speech-like audio of any length: a train of 1/3-s voiced syllables of random pitch (speechlike is
    one syllable then noise)."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * 3)) + 1
    parts = [speechlike(sr, 1 / 3, f0=rng.uniform(90, 220), seed=int(rng.integers(1 << 30))) for _ in range(n)]
    return np.concatenate(parts)[: int(round(seconds * sr))]


def resynthesised(y: np.ndarray) -> np.ndarray:
    """A 'fake' of `y`: its magnitude STFT with the phase rebuilt by a few Griffin-Lim iterations (vocoder-like
    phasiness), the same length."""
    import librosa

    S = np.abs(librosa.stft(y, n_fft=1024, hop_length=256))
    return librosa.griffinlim(S, n_iter=4, hop_length=256, n_fft=1024, random_state=0, length=len(y))


@dataclass
class Detectors:
    root: Path
    linear: Path  # linear on an lfcc frame store's mean+std: a vector model on a frame recipe
    calibrated: Path  # the linear model + a logistic calibration JSON
    lcnn: Path  # a frame model


def build_detectors(root: Path) -> Detectors:
    """Bona fide syllable trains and their resynthesised copies -> an lfcc frame store -> a linear model (seeded,
    CPU, a few seconds), a calibration of it and a tiny LCNN."""
    if "det" in _CACHE:
        return _CACHE["det"]  # type: ignore[return-value]
    from dfdet.artifact import save_result
    from dfdet.calibration import fit_calibration, save_calibration
    from dfdet.featurize import featurize
    from dfdet.frametraining import open_frame_rows, train_frames
    from dfdet.inputs import Utterance
    from dfdet.scoring import load_detector
    from dfdet.store import load_features
    from dfdet.training import make_config, train_model

    utts = []
    for i in range(10):
        y = syllables(1.5, seed=100 + i)
        for label, sig in ((0, y), (1, resynthesised(y))):
            p = write_audio(root / "train" / f"{'bs'[label]}{i}.wav", sig, SR, subtype="FLOAT")
            utts.append(Utterance(p.stem, str(p), label=label))
    featurize(utts, root / "train.h5", recipe="lfcc", jobs=1, show_progress=False)
    fs = load_features(root / "train.h5")
    cfg = make_config(model="linear", optimizer="adamw", epochs=60, batch_size=4, val_split=0.0, patience=None, seed=0)
    save_result(root / "linear.pt", train_model(fs, config=cfg))
    raw = load_detector(root / "linear.pt").score_features(fs.X)["score"]
    save_calibration(root / "cal.json", fit_calibration(raw, fs.y, "logistic", "eer"), detector=root / "linear.pt")
    cfg = make_config(
        model="lcnn", epochs=1, batch_size=8, chunk_frames=32, val_split=0.0, seed=0,
        model_config={"width": 0.25, "hidden": 8, "dropout": 0.0},
    )  # fmt: skip
    rows = open_frame_rows(root / "train.h5")
    try:
        save_result(root / "lcnn.pt", train_frames(rows, None, cfg))
    finally:
        rows.close()
    out = Detectors(root, root / "linear.pt", root / "cal.json", root / "lcnn.pt")
    _CACHE["det"] = out
    return out


@pytest.fixture(scope="module")
def dets(tmp_path_factory) -> Detectors:
    return build_detectors(tmp_path_factory.mktemp("segments"))


def tsv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text), delimiter="\t"))


def run_segments(runner, detector: Path, *args: str, input: str | None = None):
    return runner.invoke(cli, ["score", str(detector), *args], input=input)


# --------------------------------------------------------------------------------------------------- geometry
def test_window_bounds_hop_partial_window_and_short_signal():
    assert window_bounds(10, 4, 2) == [(0, 4), (2, 6), (4, 8), (6, 10)]
    assert window_bounds(11, 4, 2) == [(0, 4), (2, 6), (4, 8), (6, 10), (8, 11)]  # rest of 3 >= half a window
    assert window_bounds(13, 4, 4) == [(0, 4), (4, 8), (8, 12)]  # rest of 1 < half a window: dropped
    assert window_bounds(14, 4, 4) == [(0, 4), (4, 8), (8, 12), (12, 14)]
    assert window_bounds(3, 4, 2) == [(0, 3)]  # shorter than one window: the whole signal
    assert window_bounds(3, 4, 2, min_len=4) == []
    assert window_bounds(9, 4, 3) == [(0, 4), (3, 7), (6, 9)]  # hop respected; rest 3 >= 2 kept
    with pytest.raises(ValueError):
        window_bounds(10, 0, 2)


@pytest.mark.parametrize("win,hop", [(4, 2), (5, 2), (7, 3), (8, 4)])
def test_windows_with_hop_at_most_half_cover_every_sample(win, hop):
    for n in range(1, 40):
        covered = np.zeros(n, dtype=bool)
        for a, b in window_bounds(n, win, hop):
            assert 0 <= a < b <= n and b - a <= win
            covered[a:b] = True
        assert covered.all(), (n, window_bounds(n, win, hop))


def test_streamed_audio_is_the_recipes_prepare_of_the_whole_file(tmp_path):
    """The windows' audio: decoded and resampled block by block, the same samples as `lfcc`'s prepare of the whole
    decoded file (stereo 44.1 kHz, blocks of 0.3 s)."""
    from dfdet.audio import load_audio
    from dfdet.features import get_recipe
    from dfdet.segments import prepared_blocks

    y = np.stack([syllables(2.0, seed=30, sr=44100), syllables(2.0, seed=31, sr=44100)], axis=1)
    p = write_audio(tmp_path / "st.wav", y, 44100, subtype="FLOAT")
    parts = list(prepared_blocks(p, SR, block_seconds=0.3))
    assert len(parts) == 7 and sum(sec for _, sec in parts) == pytest.approx(2.0)
    want = get_recipe("lfcc").prepare(*load_audio(p))
    np.testing.assert_array_equal(np.concatenate([a for a, _ in parts]), want)


def test_rows_cover_the_file_in_time_order(dets, runner, tmp_path):
    p = write_audio(tmp_path / "long.wav", syllables(5.3, seed=3), SR, subtype="FLOAT")
    short = write_audio(tmp_path / "short.wav", syllables(1.2, seed=4), SR, subtype="FLOAT")
    r = run_segments(runner, dets.linear, str(p), str(short), "--segments", "2")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.splitlines()[0].split("\t") == list(COLUMNS)
    rows = tsv_rows(r.stdout)
    spans = [(x["utt_id"], float(x["start"]), float(x["end"])) for x in rows]
    assert spans == [
        ("long", 0.0, 2.0), ("long", 1.0, 3.0), ("long", 2.0, 4.0), ("long", 3.0, 5.0), ("long", 4.0, 5.3),
        ("short", 0.0, 1.2),
    ]  # fmt: skip
    assert {x["decision"] for x in rows} <= {"bonafide", "spoof"}
    assert all(x["path"] == str(p) for x in rows[:5])
    for x in rows:  # p_spoof = sigmoid(-score), decision at the model's threshold 0
        s = float(x["score"])
        assert float(x["p_spoof"]) == pytest.approx(1 / (1 + np.exp(s)), abs=1e-6)
        assert x["decision"] == ("bonafide" if s >= 0 else "spoof")
    r = run_segments(runner, dets.linear, str(p), "--segments", "2", "--segment-hop", "0.5")
    starts = [float(x["start"]) for x in tsv_rows(r.stdout)]
    assert starts == [0.5 * k for k in range(8)]  # 3.5-5.3: the partial window (1.8 s >= 1 s)


# --------------------------------------------------------------------------------------------------- contract
@pytest.mark.parametrize("which", ["linear", "calibrated", "lcnn"])
def test_a_window_scores_as_its_audio_cut_into_a_file(dets, runner, tmp_path, which):
    """The score of window [a, b) is `dfdet score`'s score of y[a:b] written as a file of its own."""
    det = getattr(dets, which)
    y = syllables(5.3, seed=11).astype(np.float32)
    p = write_audio(tmp_path / "clip.wav", y, SR, subtype="FLOAT")
    r = run_segments(runner, det, str(p), "--segments", "2")
    assert r.exit_code == 0, r.stderr
    rows = tsv_rows(r.stdout)
    cuts = []
    for k, x in enumerate(rows):
        a, b = round(float(x["start"]) * SR), round(float(x["end"]) * SR)
        cuts.append(write_audio(tmp_path / "cuts" / f"w{k}.wav", y[a:b], SR, subtype="FLOAT"))
    r2 = runner.invoke(cli, ["score", str(det), *map(str, cuts)])
    assert r2.exit_code == 0, r2.stderr
    whole = {x["utt_id"]: x for x in tsv_rows(r2.stdout)}
    want = [whole[f"w{k}"] for k in range(len(rows))]
    assert_scores_agree([float(x["score"]) for x in rows], [float(x["score"]) for x in want])
    assert [x["decision"] for x in rows] == [x["decision"] for x in want]


# --------------------------------------------------------------------------------------------------- localisation
def test_a_spliced_resynthesised_segment_is_where_the_lowest_window_is(dets, tmp_path):
    """A partial fake: 1.5 s of bona fide speech replaced by its Griffin-Lim resynthesis inside an 8-s clip. The
    most spoof-like window (lowest bona-fide-positive score) overlaps the splice, and windows inside the splice score
    lower than windows clear of it."""
    from dfdet.scoring import load_detector
    from dfdet.segments import score_segments

    y = syllables(8.0, seed=7)
    a, b = 4.5, 6.0
    ia, ib = int(a * SR), int(b * SR)
    fake = y.copy()
    fake[ia:ib] = resynthesised(y[ia:ib])
    p = write_audio(tmp_path / "partial.wav", fake, SR, subtype="FLOAT")
    rows = list(score_segments(load_detector(dets.linear), [p], 1.0))
    assert [r.start for r in rows] == [0.5 * k for k in range(15)]
    lowest = min(rows, key=lambda r: r.score)
    assert lowest.start < b and lowest.end > a, [(r.start, round(r.score, 2)) for r in rows]
    inside = [r.score for r in rows if r.start >= a and r.end <= b]
    clear = [r.score for r in rows if r.end <= a or r.start >= b]
    assert inside and max(inside) < min(clear)


# --------------------------------------------------------------------------------------------------- command
def test_fixed_window_detector_store_input_and_bad_sizes_are_one_line_errors(dets, runner, tmp_path, tmp_path_factory):
    from tests.test_scoring import build_trained

    seed = build_trained(tmp_path_factory)
    p = write_audio(tmp_path / "a.wav", syllables(2.0, seed=1), SR)
    r = run_segments(runner, seed.model, str(p), "--segments", "2")
    assert r.exit_code == 2 and r.stdout == ""
    (line,) = r.stderr.strip().splitlines()[-1:]
    assert line.startswith("dfdet score: error: --segments needs a detector on a frame recipe")
    assert "seed154" in line and "first 2 s" in line and "lfcc" in line
    r = run_segments(runner, dets.linear, str(dets.root / "train.h5"), "--segments", "2")
    assert r.exit_code == 2 and "feature store keeps each file's features, not its audio" in r.stderr
    for bad in (["--segments", "0"], ["--segments", "2", "--segment-hop", "3"], ["--segment-hop", "1"]):
        r = run_segments(runner, dets.linear, str(p), *bad)
        assert r.exit_code == 2 and r.stderr.strip().splitlines()[-1].startswith("dfdet score: error: "), bad
    r = run_segments(runner, dets.linear, str(p), "--segments", "2", "--format", "asvspoof5")
    assert r.exit_code == 2 and "--format asvspoof5 does not apply to --segments" in r.stderr
    tiny = write_audio(tmp_path / "tiny.wav", syllables(0.1, seed=2), SR)
    r = run_segments(runner, dets.linear, str(tiny), "--segments", "2")
    assert r.exit_code == 1 and "too short to judge" in r.stderr and r.stdout == ""


def test_skip_bad_jobs_stdin_and_output_file(dets, runner, tmp_path):
    good = [write_audio(tmp_path / "in" / f"g{i}.wav", syllables(3.0, seed=20 + i), SR) for i in range(3)]
    (tmp_path / "in" / "bad.wav").write_bytes(b"RIFF....WAVEfmt garbage" * 20)
    r = run_segments(runner, dets.linear, str(tmp_path / "in"), "--segments", "1.5")
    assert r.exit_code == 1 and "bad.wav" in r.stderr and r.stdout == ""
    out = tmp_path / "w.tsv"
    r = run_segments(runner, dets.linear, str(tmp_path / "in"), "--segments", "1.5", "--skip-bad", "-o", str(out))
    assert r.exit_code == 3 and "skipped" in r.stderr and "bad.wav" in r.stderr
    serial = out.read_text()
    assert [x["utt_id"] for x in tsv_rows(serial)] == [f"g{i}" for i in range(3) for _ in range(3)]
    r = run_segments(runner, dets.linear, str(tmp_path / "in"), "--segments", "1.5", "--skip-bad", "-j", "2")
    assert r.exit_code == 3 and r.stdout == serial  # the same rows, bit for bit, from two worker processes
    r = run_segments(runner, dets.linear, "-", "--segments", "1.5", input="".join(f"{g}\n" for g in good))
    assert r.exit_code == 0, r.stderr
    assert [x["score"] for x in tsv_rows(r.stdout)] == [x["score"] for x in tsv_rows(serial)]
    got = read_segments(out)
    assert got["utt_id"][:3] == ["g0"] * 3 and np.array_equal(got["start"][:3], [0.0, 0.75, 1.5])
    assert np.array_equal(got["decision"], [0 if x["decision"] == "bonafide" else 1 for x in tsv_rows(serial)])
