"""Augmentation: spec strings reproduce the audio, copies are drawn per (seed, utt_id, copy), each kind does what it
says to the signal, and `featurize --augment` writes originals plus copies identically for any -j."""

from __future__ import annotations

import io
import random

import numpy as np
import pytest
import soundfile as sf

from dfdet import augment as A
from dfdet.cli import cli
from dfdet.errors import DfdetError, InputError, UsageError
from dfdet.features import get_recipe
from dfdet.featurize import featurize
from dfdet.inputs import Utterance
from dfdet.store import load_features
from tests.conftest import speechlike
from tests.fixtures import make_table_corpus, write_audio
from tests.test_degrade import high_band_energy, snr_db

SR = 16000


def spec_of(kind: str, key: str = "x", seed: int = 0) -> str:
    return A.draw_spec(A.resolve_config(1, seed, kind), key, 1)


def band_energy(y: np.ndarray, sr: int, lo: float, hi: float) -> float:
    spec = np.abs(np.fft.rfft(y)) ** 2
    f = np.fft.rfftfreq(len(y), 1.0 / sr)
    return float(spec[(f >= lo) & (f < hi)].sum())


# ------------------------------------------------------------------------------------------------ specs and seeding
@pytest.mark.parametrize("kind", list(A.AUGMENTATIONS))
@pytest.mark.parametrize("sr", [8000, 16000, 44100])
def test_every_kind_keeps_length_and_is_reproduced_by_its_spec(kind: str, sr: int) -> None:
    y = speechlike(sr, 0.7, seed=3)
    spec = spec_of(kind, f"utt-{sr}")
    assert spec.startswith(f"{kind}:") and A.format_spec(A.parse_spec(spec)) == spec
    a, b = A.apply_spec(y, sr, spec), A.apply_spec(y.copy(), sr, spec)
    assert a.dtype == np.float64 and len(a) == len(y) and np.isfinite(a).all()
    assert a.tobytes() == b.tobytes()  # bit for bit from the spec alone
    assert not np.array_equal(a, y)  # it did something


def test_copies_depend_on_seed_utt_id_and_copy_only() -> None:
    utts = [Utterance(f"u{i:02d}", f"/x/u{i:02d}.wav", label=i % 2, speaker=f"s{i}") for i in range(12)]
    cfg = A.resolve_config(3, seed=7)
    shuffled = utts[:]
    random.Random(1).shuffle(shuffled)
    a = {u.utt_id: u.augment for u in A.with_copies(utts, cfg)}
    b = {u.utt_id: u.augment for u in A.with_copies(shuffled, cfg)}
    c = {u.utt_id: u.augment for u in A.with_copies(utts[5:6], cfg)}
    assert a == b and len(a) == 48 and all(a[k] == v for k, v in c.items())
    specs = [v for k, v in a.items() if "@aug" in k]
    assert len(set(specs)) >= 30  # copies draw their own chains (a one-step chain of a discrete kind may repeat)
    other = {u.utt_id: u.augment for u in A.with_copies(utts, A.resolve_config(3, seed=8))}
    assert sum(a[k] != other[k] for k in a if "@aug" in k) == 36
    copy = next(u for u in A.with_copies(utts, cfg) if u.utt_id == "u03@aug2")
    assert (copy.path, copy.label, copy.speaker) == ("/x/u03.wav", 1, "s3")
    chains = [[name for name, _ in A.parse_spec(s)] for s in specs]
    assert {len(ch) for ch in chains} == {1, 2}  # max_ops 2
    order = list(A.AUGMENTATIONS)
    assert all([order.index(n) for n in ch] == sorted(order.index(n) for n in ch) for ch in chains)


def test_kinds_are_checked_and_put_in_pipeline_order() -> None:
    cfg = A.resolve_config(1, 0, "mp3, noise,gain")
    assert cfg.kinds == ("noise", "gain", "mp3")
    assert cfg.record() == {
        "schema": A.SCHEMA,
        "copies": 1,
        "seed": 0,
        "kinds": ["noise", "gain", "mp3"],
        "max_ops": 2,
        "skipped": {},
    }
    with pytest.raises(UsageError, match="unknown augmentation.*reverb"):
        A.resolve_config(1, 0, "noise,reverb")
    with pytest.raises(UsageError, match="--augment must be >= 1"):
        A.resolve_config(0)
    with pytest.raises(UsageError, match="seed must be >= 0"):
        A.resolve_config(1, -1)


@pytest.mark.parametrize(
    "spec,match",
    [
        ("noise:snr=3", "lacks kind, seed"),
        ("echo:x=1", "unknown augmentation 'echo'"),
        ("gain:db=loud", "db='loud' is not a float"),
        ("gain:db=1,foo=2", "bad parameter 'foo=2'"),
    ],
)
def test_malformed_specs_are_usage_errors(spec: str, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        A.apply_spec(np.zeros(100), SR, spec)


def test_a_failing_step_names_the_spec() -> None:
    with pytest.raises(DfdetError, match=r"augmentation 'noise:kind=brown,seed=1,snr=3.0' failed in noise: ValueError"):
        A.apply_spec(speechlike(SR, 0.2), SR, "noise:kind=brown,seed=1,snr=3.0")


# ------------------------------------------------------------------------------------------------ signal properties
@pytest.mark.parametrize("kind", A.NOISE_KINDS)
@pytest.mark.parametrize("snr", [5.0, 17.5, 30.0])
def test_noise_hits_the_spec_snr(kind: str, snr: float) -> None:
    y = speechlike(SR, 1.0, seed=2)
    out = A.apply_spec(y, SR, f"noise:kind={kind},seed=11,snr={snr}")
    assert abs(snr_db(y, out) - snr) < 0.05


def test_babble_noise_sits_in_the_speech_band_and_fluctuates() -> None:
    y = speechlike(SR, 2.0, seed=2)
    n = A.apply_spec(y, SR, "noise:kind=babble,seed=5,snr=0.0") - y
    assert band_energy(n, SR, 4100, 8000) < 1e-6 * band_energy(n, SR, 200, 4000)
    frames = n[: len(n) // 400 * 400].reshape(-1, 400)
    rms = np.sqrt((frames**2).mean(axis=1))
    assert rms.std() / rms.mean() > 0.1  # level moves like several talkers, unlike stationary noise


@pytest.mark.parametrize("codec", list(A.TELEPHONE_CODECS))
def test_telephone_removes_energy_above_4khz(codec: str) -> None:
    y = 0.1 * np.random.default_rng(0).standard_normal(SR)
    out = A.apply_spec(y, SR, f"telephone:codec={codec}")
    assert len(out) == len(y)
    assert high_band_energy(out, SR) < 1e-3 * high_band_energy(y, SR)
    assert band_energy(out, SR, 300, 3400) > 0.5 * band_energy(y, SR, 300, 3400)  # the telephone band survives


def test_codecs_add_their_own_loss_on_top_of_the_band_limit() -> None:
    y = speechlike(SR, 1.0, seed=4)
    plain = A.apply_spec(y, SR, "telephone:codec=none")
    gsm = A.apply_spec(y, SR, "telephone:codec=gsm")
    ulaw = A.apply_spec(y, SR, "telephone:codec=ulaw")
    assert snr_db(plain, gsm) < 25 and snr_db(plain, gsm) < snr_db(plain, ulaw) - 10  # GSM 6.10: far from transparent


@pytest.mark.parametrize("db", [-20.0, -6.5, 0.5])
def test_gain_scales_by_the_spec_db(db: float) -> None:
    y = speechlike(SR, 0.5, seed=1)  # peak 0.5: +0.5 dB does not clip
    out = A.apply_spec(y, SR, f"gain:db={db}")
    assert 20 * np.log10(np.linalg.norm(out) / np.linalg.norm(y)) == pytest.approx(db, abs=1e-9)


def test_gain_clips_to_full_scale() -> None:
    out = A.apply_spec(1.5 * speechlike(SR, 0.5, seed=1), SR, "gain:db=6.0")  # peak 0.75 -> 1.5
    assert np.max(np.abs(out)) == 1.0


@pytest.mark.parametrize("rate", [8000, 11025, 15000])
def test_resample_round_trip_removes_the_band_above_half_the_rate(rate: int) -> None:
    y = 0.1 * np.random.default_rng(1).standard_normal(SR)
    out = A.apply_spec(y, SR, f"resample:rate={rate}")
    lo = 0.45 * rate
    assert band_energy(out, SR, 0.52 * rate, SR / 2) < 1e-3 * band_energy(y, SR, 0.52 * rate, SR / 2)
    assert band_energy(out, SR, 100, lo) == pytest.approx(band_energy(y, SR, 100, lo), rel=0.02)


@pytest.mark.parametrize("sr,kbps", [(16000, 32), (16000, 64), (44100, 64), (44100, 128), (8000, 24)])
def test_mp3_level_gives_the_requested_bitrate(sr: int, kbps: int) -> None:
    y = 0.1 * np.random.default_rng(0).standard_normal(sr * 4)  # noise: the encoder spends every bit it may
    buf = io.BytesIO()
    sf.write(buf, y, sr, format="MP3", compression_level=A.mp3_level(kbps, sr), bitrate_mode="CONSTANT")
    assert len(buf.getvalue()) * 8 / 4 / 1000 == pytest.approx(kbps, rel=0.07)  # frame headers at low rates


@pytest.mark.parametrize("sr,kbps", [(16000, 12), (16000, 32), (48000, 24), (8000, 16)])
def test_opus_level_gives_about_the_requested_bitrate(sr: int, kbps: int) -> None:
    y = 0.1 * np.random.default_rng(0).standard_normal(sr * 4)
    buf = io.BytesIO()
    sf.write(buf, y, sr, format="OGG", subtype="OPUS", compression_level=A.opus_level(kbps))
    assert len(buf.getvalue()) * 8 / 4 / 1000 == pytest.approx(kbps, rel=0.15)  # variable bitrate


@pytest.mark.parametrize("spec", ["mp3:kbps=16", "mp3:kbps=128", "opus:kbps=8", "ogg:level=1.0"])
@pytest.mark.parametrize("sr", [16000, 44100])
def test_codec_output_lines_up_with_the_input(spec: str, sr: int) -> None:
    y = speechlike(sr, 1.0, seed=3)
    assert snr_db(y, A.apply_spec(y, sr, spec)) > 10  # a codec delay left in would give ~0 dB


@pytest.mark.parametrize("sr", [6000, 12345, 96000])
def test_mp3_at_rates_mpeg_lacks_goes_through_the_nearest_mpeg_rate(sr: int) -> None:
    y = speechlike(sr, 0.5, seed=2)
    out = A.apply_spec(y, sr, "mp3:kbps=64")
    assert len(out) == len(y) and 5 < snr_db(y, out) < 60


def test_lower_mp3_and_ogg_bitrates_lose_more() -> None:
    y = speechlike(SR, 1.0, seed=6) + 0.01 * np.random.default_rng(0).standard_normal(SR)
    err = lambda spec: snr_db(y, A.apply_spec(y, SR, spec))  # noqa: E731
    assert err("mp3:kbps=16") < err("mp3:kbps=128")
    assert err("ogg:level=1.0") < err("ogg:level=0.0")
    assert err("opus:kbps=8") < err("opus:kbps=64")


def test_convolutive_noise_reshapes_the_spectrum_and_stays_in_range() -> None:
    y = 0.9 * np.random.default_rng(2).standard_normal(SR) / 4
    out = A.apply_spec(y, SR, "convolutive:seed=3")
    assert np.max(np.abs(out)) <= 1.0 and abs(out.mean()) < 1e-12
    bands = np.array([band_energy(z, SR, f, f + 500) for z in (y, out) for f in range(0, 8000, 500)]).reshape(2, -1)
    ratio_db = 10 * np.log10(bands[1] / bands[0])
    assert ratio_db.max() - ratio_db.min() > 6  # notches: some bands lose far more than others
    assert np.corrcoef(y, out)[0, 1] > 0.3  # still a filtered version of the input


@pytest.mark.parametrize("p", [1.0, 5.5, 10.0])
def test_impulsive_noise_touches_p_percent_of_samples(p: float) -> None:
    y = 0.1 * speechlike(SR, 1.0, seed=5)  # low level: no peak normalisation, untouched samples stay identical
    out = A.apply_spec(y, SR, f"impulsive:p={p},seed=4")
    changed = np.mean(out != y) * 100
    assert 0.95 * p <= changed <= p
    assert np.max(np.abs(out - y) / np.maximum(np.abs(y), 1e-12)) <= 2.0


# ------------------------------------------------------------------------------------------------ featurize --augment
def _store(runner, table, out, *extra: str):
    args = ["featurize", "--labels", str(table), "-o", str(out), "--augment", "2", "--augment-seed", "5", *extra]
    r = runner.invoke(cli, args)
    assert r.exit_code == 0, r.stderr
    return load_features(out)


def test_featurize_augment_writes_originals_and_copies_identically_for_any_j(runner, tmp_path) -> None:
    table = make_table_corpus(tmp_path / "corpus", n=4, seconds=0.6)
    a = _store(runner, table, tmp_path / "j1.h5", "-j", "1")
    b = _store(runner, table, tmp_path / "j2.h5", "-j", "2")
    ids = [
        f"audio/{d}/utt{i:03d}{s}" for i, d in enumerate(["lab", "lab", "wild", "wild"]) for s in ("", "@aug1", "@aug2")
    ]
    assert a.utt_id == sorted(ids)
    assert a.X.tobytes() == b.X.tobytes() and a.augment == b.augment and a.utt_id == b.utt_id
    assert a.attrs["augment"] == A.resolve_config(2, 5).record()
    for i, uid in enumerate(a.utt_id):
        base = a.utt_id.index(uid.split("@")[0])
        assert (a.path[i], a.y[i], a.speaker[i], a.system[i]) == (
            a.path[base],
            a.y[base],
            a.speaker[base],
            a.system[base],
        )
        if "@aug" in uid:
            assert a.augment[i] == A.draw_spec(A.resolve_config(2, 5), uid.split("@")[0], int(uid[-1]))
            assert not np.array_equal(a.X[i], a.X[base])
            # the stored row is the recipe applied to the audio the spec gives
            rec = get_recipe("seed154")
            y, sr = sf.read(a.path[i], dtype="float64")
            feats = rec.extract(rec.prepare(A.apply_spec(y, sr, a.augment[i]), sr))
            np.testing.assert_array_equal(a.X[i], np.asarray(feats, dtype=np.float32))
        else:
            assert a.augment[i] == ""


def test_featurize_augment_kinds_and_resume_mismatch(runner, tmp_path) -> None:
    table = make_table_corpus(tmp_path / "corpus", n=2, seconds=0.4)
    out = tmp_path / "k.h5"
    a = _store(runner, table, out, "--augment-kinds", "gain,noise", "--augment-max-ops", "1", "-j", "1")
    assert len(a.utt_id) == 6
    assert all(s.split(":")[0] in ("gain", "noise") and "|" not in s for s in a.augment if s)
    r = runner.invoke(
        cli,
        ["featurize", "--labels", str(table), "-o", str(out), "--augment", "2", "--augment-seed", "5", "--resume"]
        + ["--augment-kinds", "noise,gain", "--augment-max-ops", "1"],
    )
    assert r.exit_code == 0 and "resumed: 6 of 6" in r.stderr  # same options: nothing left to do
    assert load_features(out).X.tobytes() == a.X.tobytes()
    r = runner.invoke(cli, ["featurize", "--labels", str(table), "-o", str(out), "--augment", "2", "--resume"])
    assert r.exit_code == 1 and "holds augmented copies made with" in r.stderr and "--augment options" in r.stderr
    r = runner.invoke(
        cli, ["featurize", "--labels", str(table), "-o", str(out), "--augment", "2", "--augment-kinds", "echo"]
    )
    assert r.exit_code == 2 and "unknown augmentation(s): echo" in r.stderr


def test_a_bad_augmentation_names_file_and_spec(tmp_path) -> None:
    path = write_audio(tmp_path / "a.wav", speechlike(SR, 0.5), SR, subtype="PCM_16")
    bad = "noise:kind=brown,seed=1,snr=3.0"
    utts = [Utterance("a", str(path)), Utterance("a@aug1", str(path), augment=bad)]
    with pytest.raises(InputError, match=rf"{path}: augmentation '{bad}' failed in noise"):
        featurize(utts, tmp_path / "x.h5", recipe="seed154", show_progress=False)
    assert not (tmp_path / "x.h5").exists()
    r = featurize(utts, tmp_path / "y.h5", recipe="seed154", skip_bad=True, show_progress=False)
    assert r.done == 1 and r.skipped == 1
    assert r.failures[0]["utt_id"] == "a@aug1" and bad in r.failures[0]["reason"]


def test_a_model_trained_on_an_augmented_store_records_the_augmentation(runner, tmp_path) -> None:
    from dfdet.artifact import load_model

    table = make_table_corpus(tmp_path / "corpus", n=6, seconds=0.4)
    _store(runner, table, tmp_path / "aug.h5", "-j", "1")
    r = runner.invoke(
        cli,
        [
            "train",
            str(tmp_path / "aug.h5"),
            "-o",
            str(tmp_path / "m.pt"),
            "--model",
            "linear",
            "--epochs",
            "1",
            "--val-split",
            "0",
        ],
    )
    assert r.exit_code == 0, r.stderr
    dom = load_model(tmp_path / "m.pt").meta["data"]["training_domain"]
    assert dom["augment"] == {**A.resolve_config(2, 5).record(), "rows": 12}


def test_shards_of_an_augmented_run_merge_into_the_single_run(tmp_path) -> None:
    from dfdet.store import merge_stores

    paths = [write_audio(tmp_path / f"c{i}.wav", speechlike(SR, 0.4, seed=i), SR, subtype="PCM_16") for i in range(3)]
    cfg = A.resolve_config(2, seed=3, kinds="noise,gain,resample")
    utts = A.with_copies([Utterance(f"c{i}", str(p), label=i % 2) for i, p in enumerate(paths)], cfg)
    attrs = {"augment": cfg.record()}
    featurize(utts, tmp_path / "all.h5", recipe="seed154", attrs=attrs, show_progress=False)
    for k in (1, 2):
        featurize(utts[::-1], tmp_path / f"s{k}.h5", recipe="seed154", shard=(k, 2), attrs=attrs, show_progress=False)
    merge_stores([tmp_path / "s1.h5", tmp_path / "s2.h5"], tmp_path / "merged.h5")
    a, b = load_features(tmp_path / "all.h5"), load_features(tmp_path / "merged.h5")
    assert a.utt_id == b.utt_id and len(a.utt_id) == 9
    assert a.X.tobytes() == b.X.tobytes() and a.augment == b.augment and b.attrs["augment"] == cfg.record()
    featurize(utts[:3], tmp_path / "plain.h5", recipe="seed154", show_progress=False)
    with pytest.raises(DfdetError, match="augmented differently"):
        merge_stores([tmp_path / "s1.h5", tmp_path / "plain.h5"], tmp_path / "bad.h5")


def test_the_doc_describes_every_kind() -> None:
    from tests.conftest import ROOT

    doc = (ROOT / "docs" / "AUGMENT.md").read_text(encoding="utf-8")
    for name, a in A.AUGMENTATIONS.items():
        row = next((line for line in doc.splitlines() if line.startswith(f"| `{name}` |")), "")
        assert row and all(f"`{k}`" in row for k in a.params), name
