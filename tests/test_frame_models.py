"""Frame models (lcnn): chunk sampler, training on a frame store, artifacts, recipe refusal, store/audio scoring."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dfdet.chunks import chunk_at, random_starts, tile, utterance_chunk_starts, utterance_chunks
from dfdet.cli import cli
from dfdet.errors import DfdetError, InputError, UsageError
from dfdet.features import get_recipe, recipe_hash
from dfdet.store import FrameStoreWriter, h5open
from tests.contract import assert_scores_agree
from tests.fixtures import bona_signal, spoof_signal, write_audio

TINY = {"width": 0.25, "hidden": 8, "dropout": 0.0}
CHUNK = 32  # frames (0.32 s): tiny chunks keep the tests fast


# --------------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny batches: a second intra-op thread only adds synchronisation (and is slow on a loaded machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _corpus(root, n=24, seconds=(0.25, 0.6, 1.1)):
    """Generated audio: alternating bona fide / spoof clips of varied length, one speaker per 4 clips."""
    paths = []
    for i in range(n):
        spoof = i % 2
        y = (spoof_signal if spoof else bona_signal)(16000, seconds[i % len(seconds)], i)
        paths.append(write_audio(root / f"c{i:02d}.wav", y, 16000, subtype="FLOAT"))
    return paths


def _frame_store(path, audio, recipe_hash_override=None):
    """A frame store of `audio`, featurized per file by the featurize engine's own extraction (as `score` does)."""
    from dfdet.featurize import extract_one

    rec = get_recipe("lfcc")
    with FrameStoreWriter(
        path,
        rec.feature_names,
        rec.groups,
        recipe="lfcc",
        recipe_config=rec.config(),
        recipe_hash=recipe_hash_override or recipe_hash(rec),
    ) as w:
        for i, p in enumerate(audio):
            status, v, dur = extract_one(rec, str(p))
            assert status == "ok", v
            w.append_frames(
                np.asarray(v).reshape(-1, 60), p.stem, path=str(p), label=i % 2, speaker=f"s{i // 4}", duration=dur
            )
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("frames")
    audio = _corpus(root / "audio")
    return root, audio, _frame_store(root / "f.h5", audio)


def _cfg(**kw):
    from dfdet.training import make_config

    base = dict(model="lcnn", epochs=3, batch_size=8, chunk_frames=CHUNK, model_config=dict(TINY), val_split=0.0)
    return make_config("default", **{**base, **kw})


def trained_lcnn(root):
    """(audio, store, model): a tiny LCNN trained 2 epochs on a generated lfcc frame store under `root`
    (utterances of 23, 58 and 108 frames; chunks of 32), for the tests of the gradient tools."""
    from dfdet.artifact import save_result
    from dfdet.frametraining import fit_frames

    audio = _corpus(root / "audio")
    store = _frame_store(root / "f.h5", audio)
    model = root / "lcnn.pt"
    save_result(model, fit_frames(store, np.arange(len(audio)), _cfg(epochs=2), seed=0))
    return audio, store, model


# --------------------------------------------------------------------------------------------------- chunks
def test_tile_repeats_short_clips_and_chunks_have_fixed_length():
    m = np.arange(5 * 2, dtype=np.float32).reshape(5, 2)
    t = tile(m, 12)
    assert t.shape == (12, 2)
    np.testing.assert_array_equal(t[:5], m)
    np.testing.assert_array_equal(t[5:10], m)
    np.testing.assert_array_equal(t[10:], m[:2])
    assert chunk_at(m, 0, 12).shape == (12, 2)
    long = np.arange(100, dtype=np.float32)[:, None]
    np.testing.assert_array_equal(chunk_at(long, 30, 10)[:, 0], np.arange(30, 40))


def test_random_starts_are_seeded_and_in_range():
    n = np.array([5, 40, 400, 401, 1000])
    a = random_starts(n, 400, np.random.default_rng(3))
    b = random_starts(n, 400, np.random.default_rng(3))
    c = random_starts(n, 400, np.random.default_rng(4))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a[-1:], c[-1:])
    assert (a[:3] == 0).all() and 0 <= a[3] <= 1 and 0 <= a[4] <= 600
    many = random_starts(np.full(2000, 410), 400, np.random.default_rng(0))
    assert set(np.unique(many)) == set(range(11))  # every start, the last one included


def test_utterance_chunks_cover_the_whole_utterance():
    assert list(utterance_chunk_starts(50, 100)) == [0]
    assert list(utterance_chunk_starts(300, 100)) == [0, 100, 200]
    assert list(utterance_chunk_starts(350, 100)) == [0, 100, 200, 250]  # last chunk ends at the last frame
    m = np.arange(350, dtype=np.float32)[:, None]
    ch = utterance_chunks(m, 100)
    assert ch.shape == (4, 100, 1) and ch[-1, -1, 0] == 349


# --------------------------------------------------------------------------------------------------- model
def test_lcnn_is_registered_as_a_frame_model_small_and_returns_one_logit():
    from dfdet.cli.train import FRAME_MODELS, MODEL_CHOICES
    from dfdet.models import MaxFeatureMap, build_model, model_input, model_names

    assert sorted(MODEL_CHOICES) == model_names()
    assert FRAME_MODELS == [n for n in model_names() if model_input(n) == "frames"] == ["gmm", "lcnn"]
    assert model_input("cnn") == "vector"
    m = build_model("lcnn", 60).eval()
    assert sum(p.numel() for p in m.parameters()) < 300_000
    assert sum(isinstance(x, MaxFeatureMap) for x in m.modules()) == 10  # 9 conv layers + the hidden layer
    with torch.no_grad():
        out = m(torch.randn(3, 400, 60))
        assert out.shape == (3,) and torch.isfinite(out).all()
        assert m(torch.randn(2, 37, 60)).shape == (2,)  # any length >= 16


# --------------------------------------------------------------------------------------------------- training
def test_training_loss_falls_and_is_seeded(corpus):
    from dfdet.frametraining import fit_frames

    _, _, store = corpus
    rows = np.arange(24)
    cfg = _cfg(epochs=6, optimizer="adam", optimizer_overrides={"lr": 0.01})
    a = fit_frames(store, rows, cfg, seed=1)
    losses = [h["train_loss"] for h in a.history if h["type"] == "epoch"]
    assert np.mean(losses[-2:]) < 0.8 * losses[0], losses
    b = fit_frames(store, rows, cfg, seed=1)
    for k, v in a.module.state_dict().items():
        assert torch.equal(v, b.module.state_dict()[k]), k
    c = fit_frames(store, rows, cfg, seed=2)
    assert any(not torch.equal(v, c.module.state_dict()[k]) for k, v in a.module.state_dict().items())
    assert a.frames["chunk_frames"] == CHUNK and a.recipe["name"] == "lfcc" and a.recipe["hash"]


def test_scaler_is_fitted_on_training_frames_only(corpus):
    from dfdet.frametraining import fit_frames
    from dfdet.store import FrameReader

    _, _, store = corpus
    rows = np.arange(0, 24, 2)  # bona fide rows only ... plus one spoof so both classes are there
    rows = np.append(rows, 1)
    r = fit_frames(store, rows, _cfg(epochs=1), seed=0)
    with FrameReader(store) as fr:
        frames = np.concatenate([fr.read(int(i)) for i in rows]).astype(np.float64)
    np.testing.assert_allclose(r.scaler_mean, frames.mean(axis=0), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(r.scaler_scale, frames.std(axis=0), rtol=1e-6)


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw", "rmsprop", "sam"])
def test_every_optimizer_trains_with_gradient_history(corpus, optimizer):
    from dfdet.frametraining import fit_frames

    _, _, store = corpus
    r = fit_frames(store, np.arange(16), _cfg(epochs=1, optimizer=optimizer), seed=0)
    steps = [h for h in r.history if h["type"] == "step"]
    assert len(steps) == 2  # 16 rows, batches of 8
    assert all(np.isfinite(h["loss"]) and h["grad_norm"] > 0 for h in steps)
    assert set(steps[0]["layer_grad_norms"]) >= {"features.0", "fc1", "fc2"}
    assert r.summary["grad_norm"]["mean"] > 0 and r.optimizer_hparams


def test_validation_split_picks_threshold_and_epoch(corpus):
    from dfdet.frametraining import open_frame_rows, train_frames

    _, _, store = corpus
    fr = open_frame_rows(store)
    try:
        r = train_frames(fr, None, _cfg(epochs=2, val_split=0.25))
    finally:
        fr.close()
    assert r.data["split"].startswith("speaker") and r.data["val"]["rows"] > 0
    assert r.threshold_source == "validation EER operating point" and "val" in r.summary
    assert all("val_eer" in h for h in r.history if h["type"] == "epoch")


def test_vector_training_refuses_frame_models_and_frame_training_needs_frames(tmp_path, corpus):
    from dfdet.frametraining import open_frame_rows
    from dfdet.store import load_features, write_features
    from dfdet.training import TrainConfig, train_model

    _, _, store = corpus
    fs = load_features(store)
    with pytest.raises(UsageError, match="reads frame chunks"):
        train_model(fs, None, TrainConfig(model="lcnn", epochs=1, val_split=0.0))
    fs.frames = None  # its frame statistics alone: a vector store
    write_features(tmp_path / "vec.h5", fs)
    with pytest.raises(InputError, match="vector store"):
        open_frame_rows(tmp_path / "vec.h5")


# --------------------------------------------------------------------------------------------------- artifacts
def test_artifact_round_trip_weights_only(tmp_path, corpus):
    from dfdet.artifact import FrameDetector, detector_of, load_model, save_result
    from dfdet.frametraining import fit_frames, score_frame_rows

    _, _, store = corpus
    r = fit_frames(store, np.arange(24), _cfg(epochs=1), seed=0)
    save_result(tmp_path / "m.pt", r)
    raw = torch.load(tmp_path / "m.pt", weights_only=True)
    assert raw["frames"]["chunk_frames"] == CHUNK and raw["arch"]["name"] == "lcnn"
    assert raw["recipe"]["name"] == "lfcc" and raw["recipe"]["hash"] == r.recipe["hash"]
    assert raw["scaler"]["mean"].shape == (60,)
    det = load_model(tmp_path / "m.pt")
    assert isinstance(det, FrameDetector) and det.chunk_frames == CHUNK
    rows = np.arange(24)
    np.testing.assert_array_equal(score_frame_rows(det, store, rows), score_frame_rows(detector_of(r), store, rows))
    np.testing.assert_array_equal(score_frame_rows(det, store, rows), score_frame_rows(r, store, rows))


def test_long_utterance_score_is_the_mean_of_its_chunk_logits(tmp_path, corpus):
    from dfdet.artifact import detector_of
    from dfdet.chunks import standardize_frames
    from dfdet.frametraining import fit_frames

    _, _, store = corpus
    det = detector_of(fit_frames(store, np.arange(24), _cfg(epochs=1), seed=0))
    long = np.random.default_rng(0).standard_normal((5 * CHUNK + 7, 60)).astype(np.float32)
    chunks = utterance_chunks(long, CHUNK)
    assert len(chunks) == 6
    with torch.no_grad():
        each = det.module(torch.from_numpy(standardize_frames(chunks, det.scaler_mean, det.scaler_scale)))
    assert det.logits([long])[0] == pytest.approx(float(each.double().mean()), abs=1e-6)
    short = long[:5]
    assert det.logits([short])[0] == pytest.approx(det.logits([tile(short, CHUNK)])[0], abs=1e-6)


def test_recipe_mismatch_is_refused_naming_both(tmp_path, corpus):
    from dfdet.frametraining import fit_frames, score_frame_rows

    root, audio, store = corpus
    other = _frame_store(tmp_path / "other.h5", audio[:4], recipe_hash_override="0123456789abcdef")
    r = fit_frames(store, np.arange(24), _cfg(epochs=1), seed=0)
    with pytest.raises(DfdetError) as e:
        score_frame_rows(r, other, np.arange(4))
    assert "0123456789abcdef" in str(e.value) and r.recipe["hash"] in str(e.value)


# --------------------------------------------------------------------------------------------------- CLI
def test_cli_train_lcnn_scores_store_and_audio_alike(tmp_path, runner, corpus):
    from dfdet.scores import read_scores

    root, audio, store = corpus
    model = tmp_path / "m.pt"
    args = ["train", str(store), "-o", str(model), "--model", "lcnn", "--epochs", "2", "--batch-size", "8"]
    r = runner.invoke(cli, [*args, "--chunk-frames", str(CHUNK), "--val-split", "0.25", "--device", "auto"])
    assert r.exit_code == 0, r.stderr
    assert "trained lcnn/adamw" in r.stderr and r.stdout == ""
    raw = torch.load(model, weights_only=True)
    assert raw["training"]["chunk_frames"] == CHUNK and raw["provenance"]
    assert (tmp_path / "m.history.jsonl").is_file()
    a = runner.invoke(cli, ["score", str(model), str(store), "-o", str(tmp_path / "store.tsv")])
    assert a.exit_code == 0, a.stderr
    b = runner.invoke(cli, ["score", str(model), *map(str, audio), "-o", str(tmp_path / "audio.tsv")])
    assert b.exit_code == 0, b.stderr
    ta, tb = read_scores(tmp_path / "store.tsv"), read_scores(tmp_path / "audio.tsv")
    assert ta.utt_id == tb.utt_id and len(ta.utt_id) == len(audio)
    assert_scores_agree(tb.score, ta.score)


def test_cli_frame_and_vector_models_on_the_other_store(tmp_path, runner, corpus):
    from dfdet.store import load_features, write_features

    _, audio, store = corpus
    vec = load_features(store)
    vec.frames = None  # its frame statistics alone: a vector store
    write_features(tmp_path / "vec.h5", vec)
    r = runner.invoke(cli, ["train", str(tmp_path / "vec.h5"), "-o", str(tmp_path / "m.pt"), "--model", "lcnn"])
    assert r.exit_code == 1
    assert "vector store (no /frames)" in r.stderr and "--recipe lfcc" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    # a vector model on a frame store reads its per-utterance frame statistics (/features) ...
    lin = tmp_path / "lin.pt"
    r = runner.invoke(cli, ["train", str(store), "-o", str(lin), "--model", "linear", "--epochs", "3"])
    assert r.exit_code == 0, r.stderr
    # ... and scores audio through the same statistics
    a = runner.invoke(cli, ["score", str(lin), str(store), "-o", str(tmp_path / "s.tsv")])
    b = runner.invoke(cli, ["score", str(lin), *map(str, audio), "-o", str(tmp_path / "a.tsv")])
    assert a.exit_code == 0 and b.exit_code == 0, a.stderr + b.stderr
    from dfdet.scores import read_scores

    assert_scores_agree(read_scores(tmp_path / "a.tsv").score, read_scores(tmp_path / "s.tsv").score)
    # a frame model refuses a vector store at scoring time too
    model = tmp_path / "lcnn.pt"
    args = ["train", str(store), "-o", str(model), "--model", "lcnn", "--epochs", "1", "--chunk-frames", str(CHUNK)]
    assert runner.invoke(cli, args).exit_code == 0
    r = runner.invoke(cli, ["score", str(model), str(tmp_path / "vec.h5"), "-o", str(tmp_path / "x.tsv")])
    assert r.exit_code == 1 and "vector store" in r.stderr


def test_h5_frames_are_read_per_row_not_copied(corpus):
    from dfdet.frametraining import open_frame_rows

    _, _, store = corpus
    fr = open_frame_rows(store, np.array([3, 5]), max_resident_bytes=0)  # lazily read: nothing resident
    try:
        assert fr.frames is None
        with h5open(store) as f:
            n = f["n_frames"][...]
            off = np.concatenate([[0], np.cumsum(n)])
            np.testing.assert_array_equal(fr.get(1), f["frames"][off[5] : off[6]])
    finally:
        fr.close()


def test_fit_frames_with_explicit_validation_rows(corpus):
    from dfdet.frametraining import fit_frames

    _, _, store = corpus
    r = fit_frames(store, np.arange(16), _cfg(epochs=1, val_split=0.5), seed=0, val_rows=np.arange(16, 24))
    assert r.data["split"] == "file" and r.data["train"]["rows"] == 16 and r.data["val"]["rows"] == 8
    none = fit_frames(store, np.arange(16), _cfg(epochs=1, val_split=0.5), seed=0, val_rows=np.zeros(0, int))
    assert "val" not in none.data and none.threshold == 0.0


def test_calibrate_and_ensemble_accept_a_frame_model(tmp_path, runner, corpus, monkeypatch):
    _, _, store = corpus
    monkeypatch.chdir(tmp_path)
    model = tmp_path / "m.pt"
    args = ["train", str(store), "-o", str(model), "--model", "lcnn", "--epochs", "1", "--chunk-frames", str(CHUNK)]
    assert runner.invoke(cli, [*args, "--val-split", "0"]).exit_code == 0
    r = runner.invoke(
        cli, ["calibrate", "--detector", str(model), "--on", str(store), "-o", str(tmp_path / "cal.json")]
    )
    assert r.exit_code == 0, r.stderr
    r = runner.invoke(cli, ["score", str(tmp_path / "cal.json"), str(store), "-o", str(tmp_path / "s.tsv")])
    assert r.exit_code == 0, r.stderr
    m2 = tmp_path / "m2.pt"
    assert runner.invoke(cli, ["--seed", "7", *args[:3], str(m2), *args[4:], "--val-split", "0"]).exit_code == 0
    r = runner.invoke(cli, ["ensemble", "--model", str(model), "--model", str(m2), "--on", str(store), "-o", "e.json"])
    assert r.exit_code == 0, r.stderr
    r = runner.invoke(cli, ["score", "e.json", str(store), "-o", str(tmp_path / "e.tsv")])
    assert r.exit_code == 0, r.stderr
