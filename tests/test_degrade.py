"""Real-signal degradations: each condition's signal property, seeding, and a report with finite scores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dfdet.attacks import load_diff_detector
from dfdet.degrade import CONDITIONS, apply, resolve_conditions
from dfdet.errors import DfdetError, InputError, UsageError
from dfdet.features import get_recipe, recipe_hash
from dfdet.inputs import Utterance
from dfdet.robustness import degradation_report, file_results
from tests.conftest import speechlike
from tests.test_attacks import linear_model_file

SR = 16000


def snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(clean**2) / np.sum((noisy - clean) ** 2)))


def high_band_energy(y: np.ndarray, sr: int, cutoff: float = 4100.0) -> float:
    spec = np.abs(np.fft.rfft(y)) ** 2
    f = np.fft.rfftfreq(len(y), 1.0 / sr)
    return float(spec[f > cutoff].sum())


@pytest.mark.parametrize("kind", ["white", "pink"])
@pytest.mark.parametrize("snr", [20, 10, 5, 0])
def test_noise_hits_the_target_snr(kind: str, snr: int) -> None:
    y = speechlike(SR, 1.0, seed=1)
    out, sr = apply(CONDITIONS[f"{kind}_snr{snr}"], y, SR, seed=3)
    assert sr == SR and len(out) == len(y)
    assert abs(snr_db(y, out) - snr) < 0.5


def test_pink_noise_is_pink() -> None:
    y = speechlike(SR, 2.0, seed=2)
    noise = apply(CONDITIONS["pink_snr0"], y, SR)[0] - y
    spec = np.abs(np.fft.rfft(noise)) ** 2
    f = np.fft.rfftfreq(len(noise), 1 / SR)
    low, high = spec[(f > 100) & (f < 200)].mean(), spec[(f > 3200) & (f < 6400)].mean()
    assert low / high > 10  # 1/f: ~ 20x more power per bin at 150 Hz than at 4.8 kHz


def test_bandlimit_removes_energy_above_4khz() -> None:
    y = np.random.default_rng(0).standard_normal(SR) * 0.1
    out, sr = apply(CONDITIONS["bandlimit_8k"], y, SR)
    assert sr == SR and len(out) == len(y)
    assert high_band_energy(out, SR) < 1e-3 * high_band_energy(y, SR)
    low = lambda z: float(np.sum(np.abs(np.fft.rfft(z))[: int(3000 * len(z) / SR)] ** 2))  # noqa: E731
    assert 0.9 < low(out) / low(y) < 1.1  # the telephone band survives


@pytest.mark.parametrize("name", ["ogg_vorbis", "mp3"])
def test_reencoded_audio_decodes(name: str) -> None:
    if CONDITIONS[name].needs_format not in sf.available_formats():
        pytest.skip(f"libsndfile cannot write {CONDITIONS[name].needs_format} here")
    y = speechlike(SR, 1.0, seed=4)
    out, sr = apply(CONDITIONS[name], y, SR)
    assert sr == SR and np.isfinite(out).all()
    assert abs(len(out) - len(y)) < 0.1 * len(y)
    rms = lambda z: float(np.sqrt(np.mean(z**2)))  # noqa: E731
    assert 0.5 < rms(out) / rms(y) < 2.0
    assert not np.array_equal(out[: len(y)], y[: len(out)])  # lossy: not bit-exact


def test_gain_trim_and_silence() -> None:
    y = speechlike(SR, 1.0, seed=5)
    quiet = apply(CONDITIONS["gain_-20db"], y, SR)[0]
    np.testing.assert_allclose(quiet, 0.1 * y, rtol=1e-12)
    loud = apply(CONDITIONS["gain_+6db_clip"], 1.5 * y, SR)[0]
    assert np.max(np.abs(loud)) <= 1.0 and np.isclose(np.max(np.abs(loud)), 1.0)
    trimmed = apply(CONDITIONS["trim_0.5s"], y, SR)[0]
    np.testing.assert_array_equal(trimmed, y[SR // 2 :])
    padded = apply(CONDITIONS["silence_1s"], y, SR)[0]
    assert len(padded) == len(y) + SR and not padded[:SR].any()
    np.testing.assert_array_equal(padded[SR:], y)


def test_seeded() -> None:
    y = speechlike(SR, 0.5, seed=6)
    d = CONDITIONS["white_snr10"]
    a, b = apply(d, y, SR, seed=1, utt_index=0)[0], apply(d, y, SR, seed=1, utt_index=0)[0]
    c = apply(d, y, SR, seed=1, utt_index=1)[0]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_resolve_conditions() -> None:
    names = [d.name for d in resolve_conditions("mp3,white_snr0")]
    assert names == ["clean", "mp3", "white_snr0"]
    assert len(resolve_conditions()) == len(CONDITIONS)
    with pytest.raises(UsageError, match="unknown degradation"):
        resolve_conditions("clean,telephone")


def seed154_model(path: Path) -> Path:
    rec = get_recipe("seed154")
    recipe = {
        "name": "seed154",
        "hash": recipe_hash(rec),
        "feature_names": rec.feature_names,
        "groups": [[g.name, g.start, g.stop] for g in rec.groups],
    }
    w = np.random.default_rng(0).normal(size=154) * 1e-2
    return linear_model_file(path, w, 0.0, recipe=recipe)


def labelled_clips(root: Path, n: int = 2) -> list[Utterance]:
    """n bona fide (speech-like) and n 'spoof' clips (the same with a buzzier source) as WAV files."""
    root.mkdir(parents=True, exist_ok=True)
    utts = []
    for i in range(n):
        for label, f0 in ((0, 110.0 + 15 * i), (1, 190.0 + 15 * i)):
            y = speechlike(SR, 1.2, f0=f0, seed=i)
            if label:
                y = np.clip(1.8 * y, -0.5, 0.5)
            p = root / f"{'spoof' if label else 'bona'}_{i}.wav"
            sf.write(p, y, SR)
            utts.append(Utterance(utt_id=p.stem, path=str(p), label=label))
    return utts


def test_report_covers_every_condition_with_finite_scores(tmp_path: Path) -> None:
    det = load_diff_detector(seed154_model(tmp_path / "m.pt"))
    utts = labelled_clips(tmp_path / "audio")
    rep = degradation_report(det, utts, resolve_conditions(), seed=0)
    names = [r["condition"] for r in rep["conditions"]]
    expected = [n for n, d in CONDITIONS.items() if d.needs_format is None or d.needs_format in sf.available_formats()]
    assert names == expected
    assert {"white_snr0", "pink_snr20", "bandlimit_8k", "ogg_vorbis", "mp3", "trim_0.5s", "silence_1s"} <= set(names)
    for r in rep["conditions"]:
        assert r["n_scored"] == len(utts) and r["n_failed"] == 0, r
        assert 0.0 <= r["eer"] <= 1.0 and 0.0 <= r["auc"] <= 1.0 and np.isfinite(r["mean_score_shift"])
    clean = rep["conditions"][0]
    assert clean["flip_rate_vs_clean"] == 0.0 and clean["mean_score_shift"] == 0.0
    assert not rep["failures"]


# -j: the same numbers from a pool (seeds per file and condition, not a shared stream), failures as before.
POOL_CONDITIONS = "white_snr10,pink_snr5,bandlimit_8k,trim_0.5s"


def pool_inputs(root: Path) -> list[Utterance]:
    """4 labelled clips plus a 0.3 s clip that 'trim_0.5s' empties (a per-condition failure in the middle)."""
    utts = labelled_clips(root)
    short = root / "short.wav"
    sf.write(short, speechlike(SR, 0.3, seed=9), SR)
    return [*utts[:2], Utterance(utt_id="short", path=str(short), label=0), *utts[2:]]


def test_pool_gives_bit_identical_features(tmp_path: Path) -> None:
    rec = get_recipe("seed154")
    conds = resolve_conditions(POOL_CONDITIONS)
    paths = [u.path for u in pool_inputs(tmp_path / "audio")]
    with file_results(rec, conds, paths, seed=7, jobs=1) as it:
        serial = list(it)
    with file_results(rec, conds, paths, seed=7, jobs=2, start_method="fork") as it:
        pooled = list(it)
    assert len(serial) == len(pooled) == 5
    for (s1, (good1, F1), fail1), (s2, (good2, F2), fail2) in zip(serial, pooled, strict=True):
        assert s1 == s2 == "ok" and good1 == good2 and fail1 == fail2
        assert F1.dtype == np.float32 and np.array_equal(F1, F2)
    trim = [d.name for d in conds].index("trim_0.5s")
    assert serial[2][2] == [(trim, "trim_0.5s: ValueError: no samples left")] and trim not in serial[2][1][0]
    clean, white = serial[0][1][1][0], serial[0][1][1][1]
    assert not np.array_equal(clean, white)  # the noise reached the features


def test_report_is_the_same_for_any_jobs(tmp_path: Path) -> None:
    det = load_diff_detector(seed154_model(tmp_path / "m.pt"))
    utts = pool_inputs(tmp_path / "audio")
    conds = resolve_conditions(POOL_CONDITIONS)
    reps = [degradation_report(det, utts, conds, seed=3, jobs=j, start_method="fork") for j in (1, 2)]
    assert json.dumps(reps[0], sort_keys=True) == json.dumps(reps[1], sort_keys=True)
    trim = next(r for r in reps[0]["conditions"] if r["condition"] == "trim_0.5s")
    assert trim["n_failed"] == 1 and trim["n_scored"] == 4
    assert [f["utt_id"] for f in reps[0]["failures"]] == ["short"]


def test_skip_bad_with_jobs(tmp_path: Path) -> None:
    det = load_diff_detector(seed154_model(tmp_path / "m.pt"))
    utts = labelled_clips(tmp_path / "audio", n=1)
    broken = tmp_path / "audio" / "broken.wav"
    broken.write_bytes(b"not audio at all")
    utts.insert(1, Utterance(utt_id="broken", path=str(broken), label=1))
    conds = resolve_conditions("gain_-20db")
    messages = []
    for j in (1, 2):
        with pytest.raises(InputError) as err:
            degradation_report(det, utts, conds, jobs=j, start_method="fork")
        messages.append(str(err.value))
    assert messages[0] == messages[1] and "broken.wav" in messages[0]
    warned: list[list[str]] = [[], []]
    reps = [
        degradation_report(det, utts, conds, skip_bad=True, warn=warned[j - 1].append, jobs=j, start_method="fork")
        for j in (1, 2)
    ]
    assert json.dumps(reps[0], sort_keys=True) == json.dumps(reps[1], sort_keys=True)
    assert warned[0] == warned[1] and len(warned[0]) == 1 and "broken.wav" in warned[0][0]
    assert reps[1]["inputs"] == 3 and reps[1]["inputs_scored"] == 2
    assert [f["utt_id"] for f in reps[1]["failures"]] == ["broken"]


@pytest.mark.parametrize(
    "exc",
    [InputError("x.wav", "too short for the recipe", "pass --skip-bad"), DfdetError("boom", "fix it"), KeyError("k")],
)
def test_worker_errors_reach_the_parent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exc: Exception) -> None:
    """An exception in a worker is raised in the parent with its type and message (one that did not unpickle would
    kill the pool's result thread and hang the run)."""
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("needs fork to patch the workers")

    def fail(*args: object) -> None:
        raise exc

    monkeypatch.setattr("dfdet.robustness.featurize_clips", fail)
    paths = [u.path for u in labelled_clips(tmp_path / "audio", n=1)]
    rec, conds = get_recipe("seed154"), resolve_conditions("gain_-20db")
    with pytest.raises(type(exc)) as err, file_results(rec, conds, paths, jobs=2, start_method="fork") as it:
        list(it)
    assert str(err.value) == str(exc)


def test_long_clip_reencodes_to_ogg_without_crashing_libsndfile():
    """One 2.9 M-sample write crashes libsndfile's Vorbis encoder (SIGSEGV, seen on an 86-s 48 kHz clip during
    featurize --augment); reencode writes in blocks and gets the whole clip back."""
    import soundfile as sf

    from dfdet.degrade import reencode

    if "OGG" not in sf.available_formats():
        pytest.skip("libsndfile without OGG")
    y = 0.1 * np.random.default_rng(0).standard_normal(48000 * 60)
    out, sr = reencode(y, 48000, "OGG", "VORBIS")
    assert sr == 48000 and len(out) == len(y) and np.isfinite(out).all()
