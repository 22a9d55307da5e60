"""dfdet.scoring: any detector file -> scores of feature stores and audio (real audio, HDF5, torch models)."""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dfdet.errors import DfdetError, InputError
from dfdet.scores import format_score, scores_agree
from tests.fixtures import make_table_corpus, write_audio

_CACHE: dict[str, object] = {}


@dataclass
class Trained:
    """A tiny labelled corpus, its feature store and two trained linear models (shared by the scoring tests)."""

    root: Path
    table: Path
    audio: Path
    store: Path
    model: Path
    model2: Path


def featurize_and_train(labels: Path, store: Path, models: dict[Path, str], epochs: int) -> None:
    """Featurize a labelled corpus into `store` and train one linear model per {path: optimizer} on it."""
    from dfdet.artifact import save_result
    from dfdet.featurize import featurize
    from dfdet.protocols import read_labels
    from dfdet.store import load_features
    from dfdet.training import make_config, train_model

    featurize(read_labels(labels), store, jobs=1, show_progress=False)
    fs = load_features(store)
    for path, opt in models.items():
        cfg = make_config(model="linear", optimizer=opt, epochs=epochs, batch_size=8, val_split=0.0, patience=None)
        save_result(path, train_model(fs, config=cfg))


def build_trained(tmp_path_factory) -> Trained:
    """Generate, featurize and train once per session (test_cli_score reuses it)."""
    if "trained" not in _CACHE:
        root = tmp_path_factory.mktemp("scoring")
        table = make_table_corpus(root / "corpus", n=12, seconds=0.5)
        paths = [root / "models" / "adamw.pt", root / "models" / "sgd.pt"]
        featurize_and_train(table, root / "feats.h5", {paths[0]: "adamw", paths[1]: "sgd"}, epochs=2)
        _CACHE["trained"] = Trained(root, table, root / "corpus" / "audio", root / "feats.h5", paths[0], paths[1])
    return _CACHE["trained"]  # type: ignore[return-value]


@dataclass
class DemoTrained:
    """A linear model trained on a tiny demo corpus (synthetic audio), and that corpus's feature store."""

    corpus: Path
    store: Path
    model: Path


def build_demo_trained(tmp_path_factory) -> DemoTrained:
    """demo-corpus -> featurize -> train, once per session (a few seconds): a model that must say it is synthetic."""
    if "demo" not in _CACHE:
        from dfdet.democorpus import make_demo_corpus

        root = tmp_path_factory.mktemp("democorpus")
        kw = {"n_per_class": 4, "n_wild_per_class": 0, "n_lab_speakers": 2, "seconds": (1.0, 1.2), "seed": 1}
        corpus = Path(make_demo_corpus(root / "corpus", **kw)["outdir"])
        model = root / "models" / "demo.pt"
        featurize_and_train(corpus / "lab.csv", root / "lab.h5", {model: "adamw"}, epochs=1)
        _CACHE["demo"] = DemoTrained(corpus, root / "lab.h5", model)
    return _CACHE["demo"]  # type: ignore[return-value]


@pytest.fixture(scope="session")
def demo_trained(tmp_path_factory) -> DemoTrained:
    return build_demo_trained(tmp_path_factory)


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> Trained:
    return build_trained(tmp_path_factory)


def linear_scores(model: Path, X: np.ndarray) -> np.ndarray:
    """Bona-fide-positive score of a linear model written out by hand: -(w . standardised x + b)."""
    import torch

    obj = torch.load(model, weights_only=True)
    mean, scale = obj["scaler"]["mean"].numpy(), obj["scaler"]["scale"].numpy()
    w = obj["state_dict"]["fc.weight"].double().numpy().ravel()
    b = float(obj["state_dict"]["fc.bias"].double().numpy()[0])
    Z = ((X.astype(np.float64) - mean) / scale).astype(np.float32).astype(np.float64)
    return -(Z @ w + b)


def make_calibration(trained: Trained, out: Path, detector: Path | None) -> Path:
    from dfdet.artifact import load_model
    from dfdet.calibration import fit_calibration, save_calibration
    from dfdet.store import load_features

    fs = load_features(trained.store)
    raw = load_model(trained.model).scores(fs.X)
    save_calibration(out, fit_calibration(raw, fs.y, "logistic", "eer"), detector=detector)
    return out


def make_ensemble(trained: Trained, out: Path) -> Path:
    from dfdet.artifact import load_model
    from dfdet.fusion import build_ensemble_document, model_member
    from dfdet.jsonio import write_json
    from dfdet.store import load_features

    fs = load_features(trained.store)
    S = np.column_stack([load_model(p).scores(fs.X) for p in (trained.model, trained.model2)])
    members = [model_member("adamw", trained.model, out), model_member("sgd", trained.model2, out)]
    doc, _, _ = build_ensemble_document(S, fs.y, members, "auc2", cv=None)
    write_json(out, doc)
    return out


# --------------------------------------------------------------------------------------------------- stores
def test_model_scores_a_store_from_logits(trained):
    from dfdet.scoring import load_detector, score_store
    from dfdet.store import load_features

    fs = load_features(trained.store)
    det = load_detector(trained.model)
    assert det.kind == "model" and det.recipe.name == "seed154" and det.recipe.hash == fs.recipe_hash
    table, skipped = score_store(det, fs)
    assert skipped == [] and table.utt_id == sorted(fs.utt_id)
    order = [fs.utt_id.index(u) for u in table.utt_id]
    expected = linear_scores(trained.model, fs.X[order])
    np.testing.assert_allclose(table.score, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(table.p_spoof, 1.0 / (1.0 + np.exp(table.score)), rtol=1e-12)
    np.testing.assert_array_equal(table.decision, np.where(table.score >= det.threshold, 0, 1))
    np.testing.assert_array_equal(table.label, fs.y[order])
    assert table.path == [fs.path[i] for i in order]
    assert table.extra["system"] == [fs.system[i] for i in order] and "domain" in table.extra


def test_members_columns_and_describe(trained):
    from dfdet.scoring import load_detector, score_store
    from dfdet.store import load_features

    det = load_detector(trained.model)
    table, _ = score_store(det, load_features(trained.store), members=True)
    assert table.extra["score_adamw"] == [format_score(v) for v in table.score]  # as the score column is written
    d = det.describe()
    assert d["members"][0]["name"] == "adamw" and d["recipe"]["name"] == "seed154"
    assert d["decision_rule"] == "bonafide if score >= threshold else spoof"


def test_wrong_recipe_refused_naming_both_hashes(trained, tmp_path):
    from dfdet.scoring import load_detector, score_store
    from dfdet.store import load_features, write_features

    fs = load_features(trained.store)
    fs.recipe_hash, fs.recipe = "0123456789abcdef", "other"
    other = tmp_path / "other.h5"
    write_features(other, fs)
    det = load_detector(trained.model)
    with pytest.raises(DfdetError) as e:
        score_store(det, load_features(other))
    msg = str(e.value)
    assert "0123456789abcdef" in msg and det.recipe.hash in msg and "--recipe seed154" in msg


def test_calibrated_detector_matches_calibration_module(trained, tmp_path):
    from dfdet.artifact import load_model
    from dfdet.calibration import apply_calibration, load_calibration
    from dfdet.scoring import load_detector, score_store
    from dfdet.store import load_features

    cal = make_calibration(trained, tmp_path / "cal" / "cal.json", detector=trained.model)
    doc = load_calibration(cal)
    fs = load_features(trained.store)
    det = load_detector(cal)
    assert det.kind == "calibrated detector" and det.scale == "calibrated natural-log LLR"
    assert det.threshold == doc["threshold"]["value"]
    out = det.score_features(fs.X)
    # the model artifact's own scores through the calibration module's own apply function
    expected, dec = apply_calibration(doc, load_model(trained.model).scores(fs.X))
    np.testing.assert_allclose(out["score"], expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(out["decision"], dec)
    # the raw member score is the uncalibrated model score, and the final score its logistic calibration, both by hand
    raw = linear_scores(trained.model, fs.X)
    np.testing.assert_allclose(out["members"]["adamw"], raw, atol=1e-5)
    assert doc["method"] == "logistic"
    a, b = doc["params"]["a"], doc["params"]["b"]
    np.testing.assert_allclose(out["score"], a * raw + b, atol=1e-5 * max(1.0, abs(a)))
    # a calibration without a detector applies on top of a model given separately (score --calibration)
    bare = make_calibration(trained, tmp_path / "bare.json", detector=None)
    with pytest.raises(InputError, match="names no detector"):
        load_detector(bare)
    both = load_detector(trained.model, calibration=bare)
    np.testing.assert_allclose(both.score_features(fs.X)["score"], expected, rtol=1e-12)
    table, _ = score_store(both, fs)
    assert table.score.shape == (len(fs),)


def test_ensemble_matches_fusion_module(trained, tmp_path):
    from dfdet.artifact import load_model
    from dfdet.fusion import apply_ensemble, load_ensemble
    from dfdet.scoring import load_detector
    from dfdet.store import load_features

    ens = make_ensemble(trained, tmp_path / "ens" / "e.json")
    doc = load_ensemble(ens)
    fs = load_features(trained.store)
    det = load_detector(ens)
    assert det.kind == "ensemble" and det.member_names == ["adamw", "sgd"]
    assert det.threshold == doc["threshold"]["value"] and det.scale == "calibrated natural-log LLR"
    out = det.score_features(fs)
    # the model artifacts' own scores, in the JSON's member order, through the fusion module's own apply function
    S = np.column_stack([load_model(p).scores(fs.X) for p in (trained.model, trained.model2)])
    expected, dec = apply_ensemble(doc, S)
    np.testing.assert_allclose(out["score"], expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(out["decision"], dec)
    # by hand from the JSON: members' hand-computed scores, z-normalised, weighted, then the logistic calibration
    raw = np.column_stack([linear_scores(trained.model, fs.X), linear_scores(trained.model2, fs.X)])
    np.testing.assert_allclose(out["members"]["adamw"], raw[:, 0], atol=1e-5)
    np.testing.assert_allclose(out["members"]["sgd"], raw[:, 1], atol=1e-5)
    f, c = doc["fuser"], doc["calibration"]
    assert c["method"] == "logistic"
    fused = ((raw - np.asarray(f["z_mean"])) / np.asarray(f["z_std"])) @ np.asarray(f["weights"]) + f["intercept"]
    gain = abs(c["params"]["a"]) * float(np.sum(np.abs(f["weights"]) / np.asarray(f["z_std"])))
    np.testing.assert_allclose(out["score"], c["params"]["a"] * fused + c["params"]["b"], atol=1e-5 * max(1.0, gain))


def test_ensemble_members_must_share_the_recipe(trained, tmp_path):
    import torch

    from dfdet.scoring import load_detector

    obj = torch.load(trained.model2, weights_only=True)
    obj["recipe"]["hash"] = "ffffffffffffffff"
    odd = tmp_path / "odd.pt"
    torch.save(obj, odd)
    out = tmp_path / "e.json"
    make_ensemble(trained, out)
    text = out.read_text().replace(os.path.relpath(trained.model2, tmp_path), "odd.pt")
    out.write_text(text)
    with pytest.raises(DfdetError, match="different feature recipes") as e:
        load_detector(out)
    assert "ffffffffffffffff" in str(e.value) and load_detector(trained.model).recipe.hash in str(e.value)


def test_score_file_members_cannot_score(trained, tmp_path):
    from dfdet.fusion import build_ensemble_document, score_member
    from dfdet.jsonio import write_json
    from dfdet.scoring import load_detector

    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(10), np.ones(10)].astype(int)
    S = np.c_[-y + rng.standard_normal(20), -y + rng.standard_normal(20)]
    out = tmp_path / "e.json"
    doc, _, _ = build_ensemble_document(
        S, y, [score_member("a", "a.tsv", out), score_member("b", "b.tsv", out)], cv=None
    )
    write_json(out, doc)
    with pytest.raises(DfdetError, match="score files"):
        load_detector(out)


def test_not_a_detector(tmp_path):
    from dfdet.scoring import load_detector

    bogus = tmp_path / "x.json"
    bogus.write_text('{"kind": "something"}')
    with pytest.raises(InputError, match="not a detector"):
        load_detector(bogus)
    with pytest.raises(InputError, match="no such detector"):
        load_detector(tmp_path / "missing.pt")


# --------------------------------------------------------------------------------------------------- audio
def store_scores_by_path(trained) -> dict[str, float]:
    from dfdet.scoring import load_detector, score_store
    from dfdet.store import load_features

    table, _ = score_store(load_detector(trained.model), load_features(trained.store))
    return dict(zip(table.path, table.score, strict=True))


@pytest.mark.parametrize("jobs", [1, 2])
def test_audio_list_and_lazy_stream_match_the_store(trained, jobs):
    from dfdet.inputs import list_audio_paths, utterances_from_paths
    from dfdet.scoring import load_detector, score_audio_stream, stdin_utterances

    want = store_scores_by_path(trained)
    det = load_detector(trained.model)
    utts = utterances_from_paths(list_audio_paths([trained.audio]))
    rows = list(score_audio_stream(det, utts, jobs=jobs))
    assert [r.utt_id for r in rows] == [u.utt_id for u in utts]
    assert len(rows) == len(want)
    for r in rows:
        assert scores_agree(r.score, want[r.path])  # audio vs store: the contract's tolerance
        assert r.p_spoof == pytest.approx(1 / (1 + np.exp(r.score)))
    # lazily read "stdin": rows in input order (here reversed), same scores
    paths = [u.path for u in utts][::-1]
    lazy = list(score_audio_stream(det, stdin_utterances(io.StringIO("\n".join(paths) + "\n")), jobs=jobs))
    assert [r.path for r in lazy] == paths
    for r in lazy:
        assert scores_agree(r.score, want[r.path])  # audio vs store: the contract's tolerance


def test_lazy_stream_with_bad_inputs(trained, tmp_path):
    from dfdet.scoring import load_detector, score_audio_stream, stdin_utterances

    det = load_detector(trained.model)
    good = sorted(str(p) for p in trained.audio.rglob("*.wav"))[:3]
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF not really audio")
    text = f"{good[0]}\n\n# comment\n{corrupt}\n{tmp_path / 'notes.txt'}\n{good[1]}\n{good[0]}\n{good[2]}\n"
    for jobs in (1, 2):
        failures: list[dict[str, str]] = []
        rows = list(
            score_audio_stream(det, stdin_utterances(io.StringIO(text)), jobs=jobs, skip_bad=True, failures=failures)
        )
        assert [r.path for r in rows] == good  # the repeated file is scored once
        assert [f["path"] for f in failures] == [str(corrupt), str(tmp_path / "notes.txt")]
        assert "not decodable" in failures[0]["reason"] and "not a supported audio" in failures[1]["reason"]
        with pytest.raises(InputError, match="corrupt.wav"):
            list(score_audio_stream(det, stdin_utterances(io.StringIO(text)), jobs=jobs))


def test_stdin_utterances_ids_dirs_and_labels(trained, tmp_path, monkeypatch):
    from dfdet.protocols import read_labels
    from dfdet.scoring import BadInput, stdin_utterances, stream_utt_id

    monkeypatch.chdir(trained.root)
    assert stream_utt_id("corpus/audio/lab/utt000.wav") == "corpus/audio/lab/utt000"
    assert stream_utt_id("./x/y.flac", cwd="/data") == "x/y"
    assert stream_utt_id("/elsewhere/z.wav", cwd="/data") == "/elsewhere/z"
    items = list(stdin_utterances(io.StringIO("corpus/audio/wild\n")))
    assert [u.utt_id for u in items] == sorted(u.utt_id for u in items) and len(items) == 6
    assert all(u.utt_id.startswith("corpus/audio/wild/") for u in items)
    # with a label file: ids, labels and metadata come from it; unlisted audio is a BadInput
    stray = write_audio(tmp_path / "stray.wav", np.zeros(8000), 16000)
    labelled = read_labels(trained.table)
    items = list(stdin_utterances(io.StringIO(f"corpus/audio/lab/utt001.wav\n{stray}\n"), labelled))
    assert items[0].utt_id == "audio/lab/utt001" and items[0].label == 1 and items[0].system == "voc1"
    assert isinstance(items[1], BadInput) and "not in label file" in items[1].reason


def test_audio_needs_the_model_recipe(trained, tmp_path):
    import torch

    from dfdet.scoring import load_detector

    obj = torch.load(trained.model, weights_only=True)
    obj["recipe"]["hash"] = "ffffffffffffffff"
    odd = tmp_path / "odd.pt"
    torch.save(obj, odd)
    with pytest.raises(DfdetError, match="its definition changed"):
        load_detector(odd).feature_recipe()
    obj["recipe"] = {"name": None, "hash": None, "feature_names": [], "groups": []}
    torch.save(obj, odd)
    with pytest.raises(DfdetError, match="records no feature recipe"):
        load_detector(odd).feature_recipe()


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(-3, 3))
def test_outputs_are_consistent(trained_session_detector, seed, shift):
    """p_spoof = sigmoid(-score) in [0, 1], decreasing in score; decision is exactly score < threshold."""
    det = trained_session_detector
    X = np.random.default_rng(seed).standard_normal((16, det.input_dim)).astype(np.float32) + shift
    out = det.score_features(X)
    s, p = out["score"], out["p_spoof"]
    assert np.all((p >= 0) & (p <= 1)) and np.all(np.isfinite(s))
    order = np.argsort(s)
    assert np.all(np.diff(p[order]) <= 1e-15)
    np.testing.assert_array_equal(out["decision"], (s < det.threshold).astype(np.int8))
    np.testing.assert_allclose(out["members"]["adamw"], s)


@pytest.fixture(scope="module")
def trained_session_detector(tmp_path_factory):
    from dfdet.scoring import load_detector

    return load_detector(build_trained(tmp_path_factory).model)


def test_strict_error_while_stdin_stays_open(trained, monkeypatch):
    """A bad file on a still-open stdin pipe (-j 2): rows before it come out, then the error, without waiting for
    the producer to close stdin (the pool is not blocked by the input, workers do not deadlock on stdin's lock)."""
    import threading

    from dfdet.scoring import load_detector, score_audio_stream, stdin_utterances

    good = sorted(str(p) for p in trained.audio.rglob("*.wav"))[0]
    r, w = os.pipe()
    reader = os.fdopen(r, "r")
    monkeypatch.setattr("sys.stdin", reader)
    det = load_detector(trained.model)
    got: list = []

    def consume() -> None:
        try:
            for row in score_audio_stream(det, stdin_utterances(reader), jobs=2):
                got.append(row.path)
        except InputError as e:
            got.append(e)

    os.write(w, f"{good}\n{good[:-4]}_missing.wav\n".encode())
    t = threading.Thread(target=consume, daemon=True)
    t.start()
    t.join(60)
    try:
        assert not t.is_alive(), "scoring waited for stdin to close"
        assert got[0] == good and isinstance(got[1], InputError) and "_missing.wav: no such file" in str(got[1])
    finally:
        os.close(w)


def test_non_finite_rows_of_a_store(trained):
    from dfdet.scoring import load_detector, score_store
    from dfdet.store import load_features

    fs = load_features(trained.store)
    fs.X[2, 5] = np.nan
    det = load_detector(trained.model)
    with pytest.raises(DfdetError, match="1 row\\(s\\) score NaN") as e:
        score_store(det, fs)
    assert fs.utt_id[2] in str(e.value)
    failures: list[dict[str, str]] = []
    table, skipped = score_store(det, fs, skip_bad=True, failures=failures)
    assert len(table) == len(fs) - 1 and fs.utt_id[2] not in table.utt_id
    assert skipped == failures and [f["utt_id"] for f in failures] == [fs.utt_id[2]]


# --------------------------------------------------------------------------------------------------- honest verdicts
def test_store_rows_of_too_short_clips_are_refused_or_skipped(trained):
    from dfdet.scoring import load_detector, score_store
    from dfdet.store import load_features

    fs = load_features(trained.store)
    fs.duration[4] = 0.05  # as featurize records a 0.05-s clip
    det = load_detector(trained.model)
    with pytest.raises(DfdetError) as e:
        score_store(det, fs)
    assert str(e.value) == (
        f"{fs.source}: 1 row(s) come from clips shorter than 0.25 s (e.g. {fs.utt_id[4]!r}, 0.05 s) "
        "(use clips of at least 0.25 s, or pass --skip-bad to score the rest)"
    )
    failures: list[dict[str, str]] = []
    table, skipped = score_store(det, fs, skip_bad=True, failures=failures)
    assert fs.utt_id[4] not in table.utt_id and len(table) == len(fs) - 1 and skipped == failures
    assert failures[0]["reason"] == "too short to judge (0.05 s of audio; a verdict needs at least 0.25 s)"
    assert len(score_store(det, fs, min_seconds=0.0)[0]) == len(fs)  # --min-seconds 0: judged anyway


def test_store_rows_say_what_was_scored(trained):
    """duration_s / scored_s from the store's durations and the recipe's 2-s window: a crop is visible per row."""
    from dfdet.scoring import cropped_rows, load_detector, score_store
    from dfdet.store import load_features

    fs = load_features(trained.store)
    det = load_detector(trained.model)
    table, _ = score_store(det, fs)
    assert set(table.extra["duration_s"]) == {"0.500"} and table.extra["scored_s"] == table.extra["duration_s"]
    assert cropped_rows(table) == 0
    fs.duration[0] = 600.0  # a 10-minute file
    table, _ = score_store(det, fs)
    i = table.utt_id.index(fs.utt_id[0])
    assert (table.extra["duration_s"][i], table.extra["scored_s"][i]) == ("600.000", "2.000")
    assert cropped_rows(table) == 1


def test_crop_and_minimum_helpers():
    from dfdet.caveats import crop_note, is_cropped, scored_seconds, too_short, window_seconds

    assert window_seconds({"n_samples": 32000, "sample_rate": 16000}) == 2.0 and window_seconds({}) is None
    assert scored_seconds(5.0, 2.0) == 2.0 and scored_seconds(1.5, 2.0) == 1.5 and not is_cropped(2.0004, 2.0)
    assert np.isnan(scored_seconds(float("nan"), 2.0)) and too_short(float("nan")) is None
    assert too_short(0.2499) is None and too_short(0.2) is not None  # 0.25 s at 22.05 kHz is 5512 samples
    assert crop_note(0, 5, 2.0) is None
    assert crop_note(3, 5, 2.0).startswith("3 of 5 files were longer than 2 s; only their first 2 s were scored")


def test_demo_corpus_model_records_a_synthetic_training_domain(demo_trained, trained):
    from dfdet.artifact import load_model
    from dfdet.caveats import domain_lines
    from dfdet.scoring import load_detector
    from dfdet.store import load_features

    assert json.loads((demo_trained.corpus / "corpus.json").read_text())["synthetic"] is True
    corpus = load_features(demo_trained.store).attrs["corpus"]  # featurize found the marker above the audio
    assert corpus["name"] == "dfdet demo corpus" and corpus["synthetic"] is True
    dom = load_model(demo_trained.model).meta["data"]["training_domain"]
    assert dom["synthetic"] is True and dom["domains"] == ["lab"] and dom["recipe"] == "seed154"
    assert domain_lines(load_detector(demo_trained.model), "demo.pt") == [
        (
            True,
            "detector demo.pt was trained on the synthetic demo corpus (lab; store lab.h5); its verdicts on real "
            "speech mean nothing",
        )
    ]
    # a corpus without the marker: its store and domains are named, nothing is called synthetic
    dom = load_model(trained.model).meta["data"]["training_domain"]
    assert dom["synthetic"] is False and dom["corpus"] is None and dom["domains"] == ["lab", "wild"]
    assert domain_lines(load_detector(trained.model), "adamw.pt") == [
        (False, "detector adamw.pt was trained on feats.h5 (domain lab, wild)")
    ]


def test_ensembles_and_calibrations_name_their_members_domains(demo_trained, trained, tmp_path):
    from dfdet.artifact import load_model
    from dfdet.caveats import domain_lines
    from dfdet.fusion import build_ensemble_document, model_member
    from dfdet.jsonio import write_json
    from dfdet.scoring import load_detector
    from dfdet.store import load_features

    cal = make_calibration(trained, tmp_path / "cal.json", detector=trained.model)
    assert domain_lines(load_detector(cal), "cal.json") == [
        (False, "detector cal.json was trained on feats.h5 (domain lab, wild)")
    ]
    out = tmp_path / "mixed.json"
    fs = load_features(trained.store)
    models = (demo_trained.model, trained.model)
    S = np.column_stack([load_model(p).scores(fs.X) for p in models])
    members = [model_member("demo", models[0], out), model_member("adamw", models[1], out)]
    write_json(out, build_ensemble_document(S, fs.y, members, "mean", cv=None)[0])
    lines = domain_lines(load_detector(out), "mixed.json")
    assert lines == [
        (
            True,
            "member demo of mixed.json was trained on the synthetic demo corpus (lab; store lab.h5); its verdicts "
            "on real speech mean nothing",
        ),
        (False, "member adamw of mixed.json was trained on feats.h5 (domain lab, wild)"),
    ]


def test_old_models_without_a_training_domain(trained):
    from dfdet.caveats import describe_domain

    assert describe_domain({"data": {"train": {"source": "/x/train.h5"}}}) == (
        False,
        "train.h5 (no training domain recorded)",
    )
    assert describe_domain({}) == (False, "data it does not record")
