"""dfdet.app.backend: artifact discovery, cached loading keys, scoring uploaded bytes like `dfdet score`, inspect data.

The demo-like models dir is built once per process through dfdet's library (generated corpus -> featurize -> two
tiny trained models with histories -> lab/wild calibrations, a model-member ensemble, a score-file ensemble and an
evaluation JSON); test_app.py reuses it.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from dfdet.scores import format_p, format_score
from tests.conftest import speechlike
from tests.fixtures import bona_signal, make_table_corpus, spoof_signal

_CACHE: dict[str, object] = {}


@dataclass
class AppModels:
    """A demo-like models directory and the files in it."""

    root: Path  # the models dir served by the app
    corpus: Path
    store: Path
    models: list[Path]
    cal_lab: Path
    cal_wild: Path
    ensemble: Path
    scores_ensemble: Path
    evaluation: Path


def build_app_models(base: Path) -> AppModels:
    """Generate, featurize, train and fit once per process (a few seconds)."""
    if "models" in _CACHE:
        return _CACHE["models"]  # type: ignore[return-value]
    from dfdet.artifact import load_model, save_result
    from dfdet.calibration import fit_calibration, save_calibration
    from dfdet.featurize import featurize
    from dfdet.fusion import build_ensemble_document, model_member, score_member
    from dfdet.jsonio import write_json
    from dfdet.metrics import evaluate_table
    from dfdet.protocols import read_labels
    from dfdet.scores import ScoreTable
    from dfdet.store import load_features
    from dfdet.training import history_path_for, make_config, train_model, write_history

    corpus = make_table_corpus(base / "corpus", n=12, seconds=0.5)
    store = base / "feats.h5"
    featurize(read_labels(corpus), store, jobs=1, show_progress=False)
    fs = load_features(store)
    root = base / "demo"
    models = []
    for name, arch, opt in (("adamw", "linear", "adamw"), ("sgd", "mlp", "sgd")):
        cfg = make_config(model=arch, optimizer=opt, epochs=3, batch_size=4, val_split=0.0, patience=None)
        res = train_model(fs, config=cfg)
        p = root / "models" / f"{name}.pt"
        save_result(p, res)
        write_history(history_path_for(p), res.history)
        models.append(p)
    raw = load_model(models[0]).scores(fs.X)
    wild = np.array([d == "wild" for d in fs.domain])
    cal_lab = root / "cal" / "lab.json"
    save_calibration(cal_lab, fit_calibration(raw, fs.y, "logistic", "eer", source="lab"), detector=models[0])
    cal_wild = root / "cal" / "wild.json"
    doc = fit_calibration(raw[wild], fs.y[wild], "logistic", "youden", source="wild")
    save_calibration(cal_wild, doc, detector=models[0])
    S = np.column_stack([load_model(p).scores(fs.X) for p in models])
    ens = root / "ens" / "lab.json"
    members = [model_member("adamw", models[0], ens), model_member("sgd", models[1], ens)]
    write_json(ens, build_ensemble_document(S, fs.y, members, "auc2", cv=None)[0])
    ens_scores = root / "ens" / "from_scores.json"
    smembers = [score_member(n, root / "scores" / f"{n}.tsv", ens_scores) for n in ("adamw", "sgd")]
    write_json(ens_scores, build_ensemble_document(S, fs.y, smembers, "mean", cv=None)[0])
    table = ScoreTable(fs.utt_id, raw, label=fs.y)
    ev = root / "eval" / "in_domain.json"
    rows = evaluate_table(table, name="adamw")
    write_json(ev, {"schema": "dfdet.evaluate/1", "settings": {}, "results": rows})
    (root / "notes.json").write_text('{"hello": 1}', encoding="utf-8")  # a JSON that is no artifact: ignored
    out = AppModels(root, corpus, store, models, cal_lab, cal_wild, ens, ens_scores, ev)
    _CACHE["models"] = out
    return out


@pytest.fixture(scope="module")
def app_models(tmp_path_factory) -> AppModels:
    return build_app_models(tmp_path_factory.mktemp("app"))


def wav_bytes(y: np.ndarray, sr: int = 16000, fmt: str = "WAV", subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, y, sr, format=fmt, subtype=subtype)
    return buf.getvalue()


def write_clip(path: Path, y: np.ndarray, sr: int = 16000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), y, sr, subtype="PCM_16")
    return path


def cli_tsv(runner, detector: Path, files: list[Path], tmp: Path) -> str:
    """`dfdet score DETECTOR FILES -o out.tsv` through the real CLI."""
    from dfdet.cli import cli

    out = tmp / "cli_scores.tsv"
    r = runner.invoke(cli, ["-q", "score", str(detector), *map(str, files), "-o", str(out), "-j", "1"])
    assert r.exit_code == 0, r.stderr
    return out.read_text(encoding="utf-8")


def paths_to_names(tsv: str) -> str:
    """`dfdet score` writes absolute paths; the app writes the uploaded names: compare with the path column reduced to
    its base name (every other byte must be equal)."""
    lines = tsv.split("\n")
    header = lines[0].split("\t")
    k = header.index("path")
    out = [lines[0]]
    for line in lines[1:]:
        if line:
            cells = line.split("\t")
            cells[k] = os.path.basename(cells[k])
            line = "\t".join(cells)
        out.append(line)
    return "\n".join(out)


# --------------------------------------------------------------------------------------------------- arguments
def test_page_args_from_argv_and_environment(app_models, tmp_path):
    from dfdet.app.backend import parse_page_args
    from dfdet.errors import InputError, UsageError

    cfg = parse_page_args(["--models", str(app_models.root), "--max-upload-mb", "7", "--min-seconds", "0.5"], {})
    assert cfg.models_dir == app_models.root and cfg.detector is None
    assert cfg.max_upload_mb == 7 and cfg.max_bytes == 7 << 20 and cfg.min_seconds == 0.5
    env = {"DFDET_APP_DETECTOR": str(app_models.ensemble), "DFDET_APP_MAX_UPLOAD_MB": "3"}
    cfg = parse_page_args([], env)
    assert cfg.detector == app_models.ensemble and cfg.models_dir is None and cfg.max_upload_mb == 3
    # argv wins over the environment
    assert parse_page_args(["--models", str(app_models.root)], env).detector is None
    with pytest.raises(UsageError, match="no models to serve"):
        parse_page_args([], {})
    with pytest.raises(UsageError, match="both"):
        parse_page_args(["--models", str(app_models.root), "--detector", str(app_models.ensemble)], {})
    with pytest.raises(UsageError, match="page arguments"):
        parse_page_args(["--bogus"], {})
    with pytest.raises(InputError, match="no such directory"):
        parse_page_args(["--models", str(tmp_path / "absent")], {})
    with pytest.raises(UsageError, match=">= 1 MB"):
        parse_page_args(["--models", str(app_models.root), "--max-upload-mb", "0"], {})


# --------------------------------------------------------------------------------------------------- discovery
def test_find_artifacts_lists_operating_points_with_thresholds_from_files(app_models):
    from dfdet.app.backend import find_artifacts

    cat = find_artifacts(app_models.root)
    labels = [o.label for o in cat.options]
    # usable ones first: ensembles, then calibrations, then models; the score-file ensemble last (not usable)
    assert labels == [
        "ens/lab.json",
        "cal/lab.json",
        "cal/wild.json",
        "models/adamw.pt",
        "models/sgd.pt",
        "ens/from_scores.json",
    ]
    by = {o.label: o for o in cat.options}
    assert not by["ens/from_scores.json"].usable and "--model" in by["ens/from_scores.json"].note
    assert all(o.usable for o in cat.usable) and len(cat.usable) == 5
    for o, f in ((by["cal/lab.json"], app_models.cal_lab), (by["cal/wild.json"], app_models.cal_wild)):
        assert o.threshold == json.loads(f.read_text())["threshold"]["value"]
    assert by["cal/lab.json"].policy == "eer" and by["cal/wild.json"].policy == "youden"
    assert by["cal/lab.json"].threshold != by["cal/wild.json"].threshold
    assert by["ens/lab.json"].members == ["adamw", "sgd"]
    import torch

    assert by["models/sgd.pt"].threshold == torch.load(app_models.models[1], weights_only=True)["threshold"]
    assert [m.label for m in cat.models] == ["models/adamw.pt", "models/sgd.pt"]
    assert all(m.history for m in cat.models)
    assert [d.label for d in cat.evaluations] == ["eval/in_domain.json"]
    assert len(cat.ensembles) == 2 and len(cat.calibrations) == 2 and cat.problems == []


def test_find_artifacts_reports_broken_files_and_missing_members(app_models, tmp_path):
    import shutil

    from dfdet.app.backend import find_artifacts

    d = tmp_path / "m"
    shutil.copytree(app_models.root, d)
    (d / "models" / "broken.pt").write_bytes(b"not a model")
    (d / "models" / "sgd.pt").unlink()
    cat = find_artifacts(d)
    assert any("broken.pt" in p and "not a dfdet model" in p for p in cat.problems)
    by = {o.label: o for o in cat.options}
    assert not by["ens/lab.json"].usable and "sgd" in by["ens/lab.json"].note
    assert by["cal/lab.json"].usable


def test_walk_skips_audio_and_hidden_dirs_and_is_bounded(tmp_path):
    from dfdet.app.backend import _walk

    (tmp_path / "corpus").mkdir()
    for i in range(30):
        (tmp_path / "corpus" / f"u{i:02d}.wav").write_bytes(b"")
    for rel in ("models/m.pt", "cal/c.json", ".venv/x.json", "a/b/c/d/e/f/deep.json", "z/last.pth"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("{}")
    files, cut = _walk(tmp_path)
    rel = [f.relative_to(tmp_path).as_posix() for f in files]
    assert not cut and rel == ["cal/c.json", "models/m.pt", "z/last.pth"]
    files, cut = _walk(tmp_path, max_files=2)
    assert cut and len(files) == 2
    files, cut = _walk(tmp_path, max_files=1000, max_depth=10)
    assert "a/b/c/d/e/f/deep.json" in [f.relative_to(tmp_path).as_posix() for f in files]


def test_single_detector_catalog(app_models):
    from dfdet.app.backend import find_artifacts

    cat = find_artifacts(detector=app_models.ensemble)
    assert [o.kind for o in cat.options] == ["ensemble"] and cat.options[0].usable
    assert sorted(m.path.name for m in cat.models) == ["adamw.pt", "sgd.pt"]
    cat = find_artifacts(detector=app_models.models[1])
    assert [o.kind for o in cat.options] == ["model"] and cat.models[0].history


def test_fingerprint_follows_the_files_a_detector_loads(app_models, tmp_path):
    import shutil

    from dfdet.app.backend import fingerprint

    d = tmp_path / "m"
    shutil.copytree(app_models.root, d)
    ens = d / "ens" / "lab.json"
    fp = fingerprint(ens)
    assert [Path(f[0]).name for f in fp] == ["lab.json", "adamw.pt", "sgd.pt"]
    st_ = (d / "models" / "sgd.pt").stat()
    os.utime(d / "models" / "sgd.pt", ns=(st_.st_atime_ns, st_.st_mtime_ns + 10**9))
    assert fingerprint(ens) != fp  # a member rewritten -> a new cache key
    assert [Path(f[0]).name for f in fingerprint(d / "cal" / "wild.json")] == ["wild.json", "adamw.pt"]


# --------------------------------------------------------------------------------------------------- scoring
@pytest.mark.parametrize("which", ["ensemble", "cal_lab", "model"])
def test_scoring_uploads_matches_dfdet_score_byte_for_byte(app_models, runner, tmp_path, which):
    from dfdet.app.backend import load_for_app, score_uploads

    det = {"ensemble": app_models.ensemble, "cal_lab": app_models.cal_lab, "model": app_models.models[1]}[which]
    clips = {
        "b_spoof.wav": spoof_signal(16000, 1.0, seed=5),
        "a_bona.wav": bona_signal(16000, 1.0, seed=3),
        "c 44k.wav": speechlike(44100, 0.8, seed=9),
    }
    files = [write_clip(tmp_path / "in" / n, y, 44100 if "44k" in n else 16000) for n, y in clips.items()]
    loaded = load_for_app(det)
    batch = score_uploads(loaded, [(p.name, p.read_bytes()) for p in files])
    assert [f.name for f in batch.files] == list(clips) and all(f.ok for f in batch.files)
    want = cli_tsv(runner, det, files, tmp_path)
    assert batch.tsv.decode("utf-8") == paths_to_names(want)
    assert want.splitlines()[0] == "utt_id\tscore\tpath\tp_spoof\tdecision\tduration_s\tscored_s"
    # per-file verdicts agree with the CLI rows; thresholds come from the detector file
    cli_rows = {r.split("\t")[0]: r.split("\t") for r in want.splitlines()[1:]}
    for f in batch.files:
        row = cli_rows[f.utt_id]
        assert f.decision == row[4] and format_score(f.score) == row[1] and format_p(f.p_spoof) == row[3]
        assert f"{f.duration:.3f}" == row[5] and f"{f.scored:.3f}" == row[6]
        assert f.threshold == loaded.scorer.threshold
        assert f.decision == ("bonafide" if f.score >= f.threshold else "spoof")
        assert (f.p_spoof > f.p_threshold) == (f.decision == "spoof") or f.score == f.threshold
    n_members = {"ensemble": 2, "cal_lab": 1, "model": 1}[which]
    assert all(len(f.members) == n_members for f in batch.files)


def test_member_probabilities_use_each_models_own_threshold(app_models, tmp_path):
    import torch

    from dfdet.app.backend import load_for_app, score_uploads

    loaded = load_for_app(app_models.ensemble)
    y = bona_signal(16000, 1.0, seed=1)
    f = score_uploads(loaded, [("x.wav", wav_bytes(y))]).files[0]
    assert [m.name for m in f.members] == ["adamw", "sgd"]
    for m, p in zip(f.members, app_models.models, strict=True):
        thr = float(torch.load(p, weights_only=True)["threshold"])
        assert m.threshold == thr and np.isclose(m.p_threshold, 1 / (1 + np.exp(thr)))
        assert np.isclose(m.p_spoof, 1 / (1 + np.exp(m.score)))
        assert m.decision == ("bonafide" if m.score >= thr else "spoof")
    # the fused final score is the ensemble file's fuser + calibration applied to the member scores
    from dfdet.fusion import apply_ensemble, load_ensemble

    final, _ = apply_ensemble(load_ensemble(app_models.ensemble), np.array([[m.score for m in f.members]]))
    assert np.isclose(final[0], f.score, rtol=1e-9, atol=1e-9)


def test_bad_uploads_get_reasons_and_good_ones_still_score(app_models):
    from dfdet.app.backend import load_for_app, score_uploads

    loaded = load_for_app(app_models.cal_lab)
    good = wav_bytes(bona_signal(16000, 1.0, seed=2))
    uploads = [
        ("empty.wav", b""),
        ("corrupt.wav", b"RIFF\x00\x00\x00\x00WAVEjunk" * 10),
        ("notes.mp3", b"just text, not audio"),
        ("zero.wav", wav_bytes(np.zeros(0))),
        ("short.wav", wav_bytes(bona_signal(16000, 0.1, seed=4))),
        ("nan.wav", wav_bytes(np.full(8000, np.nan), subtype="FLOAT")),
        ("good.wav", good),
    ]
    batch = score_uploads(loaded, uploads, min_seconds=0.25)
    by = {f.name: f for f in batch.files}
    assert [f.name for f in batch.ok] == ["good.wav"]
    assert "empty file" in by["empty.wav"].error
    assert "not decodable" in by["corrupt.wav"].error and "not decodable" in by["notes.mp3"].error
    assert "zero-length" in by["zero.wav"].error
    assert by["short.wav"].error == (
        "too short to judge (0.10 s of audio; a verdict needs at least 0.25 s): upload a longer clip"
    )  # the rule and words of dfdet score
    assert "NaN" in by["nan.wav"].error
    for f in batch.failed:
        assert "dfdet-app-" not in f.error and "/tmp" not in f.error  # no server path in messages
    assert batch.tsv.decode().splitlines()[1].startswith("good\t")
    assert len(batch.tsv.decode().splitlines()) == 2


def test_training_domain_for_the_banner(app_models, tmp_path_factory):
    """What the page says about the data behind a detector: the same words as `dfdet score`, synthetic first."""
    from dfdet.app.backend import load_for_app, training_domain
    from tests.test_scoring import build_demo_trained

    assert training_domain(load_for_app(app_models.ensemble), "ens/lab.json") == [
        (False, "Detector ens/lab.json was trained on feats.h5 (domain lab, wild).")
    ]
    demo = build_demo_trained(tmp_path_factory)
    assert training_domain(load_for_app(demo.model)) == [
        (
            True,
            "Detector demo.pt was trained on the synthetic demo corpus (lab; store lab.h5); its verdicts on real "
            "speech mean nothing.",
        )
    ]


def test_upload_limit_and_unsafe_names(app_models):
    from dfdet.app.backend import load_for_app, safe_name, score_uploads, unique_names

    loaded = load_for_app(app_models.models[0])
    data = wav_bytes(bona_signal(16000, 1.0, seed=2))
    batch = score_uploads(loaded, [("../../etc/passwd.wav", data), ("big.wav", data)], max_bytes=len(data) - 1)
    assert [f.name for f in batch.files] == ["passwd.wav", "big.wav"]
    assert all("upload limit" in f.error for f in batch.files) and batch.tsv == b""
    assert safe_name("..\\..\\x.wav") == "x.wav" and safe_name("/") == "upload.wav" and safe_name(".hidden") == "hidden"
    assert unique_names(["a.wav", "a.wav", "A.flac", "b.wav"]) == ["a.wav", "a (2).wav", "A (3).flac", "b.wav"]
    batch = score_uploads(loaded, [("a.wav", data), ("a.wav", data), ("scores.tsv", data)])
    assert [f.utt_id for f in batch.files] == ["a", "a (2)", "scores"] and all(f.ok for f in batch.files)
    assert [r.split("\t")[2] for r in batch.tsv.decode().splitlines()[1:]] == ["a.wav", "a (2).wav", "scores.tsv"]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(min_size=0, max_size=30), min_size=1, max_size=8))
def test_unique_names_are_safe_and_distinct(names):
    from dfdet.app.backend import unique_names

    out = unique_names(names)
    assert len(out) == len(names)
    stems = [os.path.splitext(n)[0].casefold() for n in out]
    assert len(set(stems)) == len(stems)
    for n in out:
        assert n and "/" not in n and "\\" not in n and "\x00" not in n and not n.startswith(".")
        assert os.path.basename(n) == n


def test_nothing_is_left_in_the_temp_dir(app_models, tmp_path, monkeypatch):
    import tempfile

    from dfdet.app.backend import inspect_upload, load_for_app, score_uploads

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    loaded = load_for_app(app_models.models[0])
    data = wav_bytes(bona_signal(16000, 1.0, seed=2))
    score_uploads(loaded, [("x.wav", data), ("bad.wav", b"junk")])
    inspect_upload(loaded, "x.wav", data)
    assert list(tmp_path.iterdir()) == []


def test_frames_for_the_page(app_models):
    pytest.importorskip("pandas")
    from dfdet.app.backend import load_for_app, probability_frame, results_frame, score_uploads

    loaded = load_for_app(app_models.ensemble)
    ups = [("z.wav", wav_bytes(spoof_signal(16000, 1.0, seed=7))), ("y.wav", wav_bytes(bona_signal(16000, 1.0)))]
    batch = score_uploads(loaded, ups)
    df = results_frame(batch)
    assert list(df["utt_id"]) == ["y", "z"] and list(df.columns[:4]) == ["utt_id", "file", "decision", "p_spoof"]
    assert {"p_spoof[adamw]", "p_spoof[sgd]"} <= set(df.columns)
    pf = probability_frame(batch.files[0], "ensemble")
    assert list(pf["detector"]) == ["adamw", "sgd", "ensemble"]
    assert pf["threshold"].iloc[-1] == batch.files[0].p_threshold


# --------------------------------------------------------------------------------------------------- inspect
def test_inspect_data_matches_the_scored_features(app_models):
    pytest.importorskip("pandas")
    from dfdet.app.backend import explain_available, inspect_upload, load_explainer, load_for_app
    from dfdet.featurize import extract_one

    loaded = load_for_app(app_models.ensemble)
    y = speechlike(22050, 1.5, seed=11)
    data = wav_bytes(y, 22050)
    d = inspect_upload(loaded, "clip.wav", data, explainer=load_explainer(app_models.ensemble))
    assert d.sr == 22050 and np.isclose(d.duration, 1.5) and d.features.shape == (154,)
    assert [g[0] for g in d.groups] == ["LPS", "LFCC", "Contrast", "MPE", "MFCC"]
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "clip.wav"
        p.write_bytes(data)
        status, vec, _ = extract_one(loaded.recipe, str(p))
    assert status == "ok"
    # decoding from bytes vs from a path: the same extractor, another code path -> float32 rounding may differ
    np.testing.assert_allclose(d.features, vec.astype(np.float32), rtol=1e-6, atol=1e-6)
    m = loaded.scorer.members[0].detector
    np.testing.assert_allclose(d.z, (vec.astype(np.float32) - m.scaler_mean) / m.scaler_scale, rtol=1e-6)
    assert d.mel_db.shape[0] == 80 and d.mel_db.max() == 0.0 and d.mel_db.min() >= -80.0 - 1e-6
    assert len(d.wave_t) == len(d.wave_min) == len(d.wave_max) <= 2000
    assert np.all(d.wave_min <= d.wave_max) and np.isclose(d.wave_max.max(), y.max(), atol=1e-3)
    f = d.feature_frame()
    assert list(f["group"].iloc[[0, 40, 80, 94, 114]]) == ["LPS", "LFCC", "Contrast", "MPE", "MFCC"]
    if not explain_available():
        assert d.saliency is None and "omitted" in d.saliency_note
        return
    assert d.saliency is not None
    share = d.saliency["saliency share (|grad|)"]
    assert set(share) == {"LPS", "LFCC", "Contrast", "MPE", "MFCC"} and np.isclose(sum(share.values()), 1.0)
    ig = d.saliency["integrated gradients (toward spoof)"]
    assert set(ig) == set(share) and all(np.isfinite(v) for v in ig.values())
    # completeness: the IG group sums add up to f(clip) - f(training mean), f = -(the detector's final score)
    sc = loaded.scorer
    f_x = -sc.score_features(d.features[None, :])["score"][0]
    f_base = -sc.score_features(m.scaler_mean[None, :].astype(np.float32))["score"][0]
    assert np.isclose(sum(ig.values()), f_x - f_base, rtol=0.02, atol=1e-3)


def test_inspect_without_explainer_omits_saliency_with_a_note(app_models):
    from dfdet.app.backend import inspect_upload, load_for_app
    from dfdet.errors import InputError

    loaded = load_for_app(app_models.models[0])
    d = inspect_upload(loaded, "x.wav", wav_bytes(bona_signal(16000, 1.0)), explainer=None)
    assert d.saliency is None and "omitted" in d.saliency_note
    with pytest.raises(InputError, match="not decodable") as e:
        inspect_upload(loaded, "bad.wav", b"junk")
    assert "dfdet-app-" not in str(e.value)


# --------------------------------------------------------------------------------------------------- models tab
def test_models_tab_data(app_models):
    pytest.importorskip("pandas")
    from dfdet.app.backend import (
        calibration_facts,
        ensemble_rows,
        evaluation_rows,
        find_artifacts,
        history_frames,
        model_facts,
        provenance_lines,
    )

    cat = find_artifacts(app_models.root)
    card = cat.models[0]
    epochs, steps = history_frames(card.history)
    n_epochs = sum(1 for r in card.history if r["type"] == "epoch")
    n_steps = sum(1 for r in card.history if r["type"] == "step")
    assert len(epochs) == n_epochs == 3 and len(steps) == n_steps > 0
    assert "train_loss" in epochs and "grad_norm" in steps and any(c.startswith("grad_norm[") for c in steps)
    facts = model_facts(card)
    assert facts["arch"] == "linear" and facts["optimizer"] == "adamw" and facts["epochs_run"] == 3
    assert facts["threshold"] == card.meta["threshold"]
    ens = {d.label: d for d in cat.ensembles}["ens/lab.json"]
    rows = ensemble_rows(ens.doc)
    assert [r["member"] for r in rows] == ["adamw", "sgd"]
    assert [r["weight"] for r in rows] == ens.doc["fuser"]["weights"]
    assert [r["flipped"] for r in rows] == ens.doc["fuser"]["flips"]
    cal = calibration_facts(cat.calibrations[0])
    assert cal["method"] == "logistic" and cal["policy"] == "eer" and cal["fitted_on"] == "lab"
    ev = evaluation_rows(cat.evaluations[0].doc)
    assert ev[0]["name"] == "adamw" and 0 <= ev[0]["eer"] <= 1 and "roc_auc" in ev[0]
    assert provenance_lines(card.meta)["dfdet_version"]
    # trained without validation or test data: the metrics say why they are missing instead of None
    assert facts["val_eer"] == facts["val_auc"] == "not measured: no validation data"
    assert facts["test_eer"] == "not measured: trained without --test"


def test_display_frame_has_no_none_cells():
    from dfdet.app.backend import MISSING, display_frame

    df = display_frame(
        [{"a": 1, "b": 0.25, "c": None, "d": "x", "e": 0.5}, {"a": 2, "b": 0.5, "c": None, "d": None, "e": "why"}]
    )
    assert list(df["a"]) == [1, 2] and list(df["b"]) == [0.25, 0.5]  # complete numeric columns stay numbers
    assert list(df["c"]) == [MISSING, MISSING] and list(df["d"]) == ["x", MISSING] and list(df["e"]) == ["0.5", "why"]
    assert "None" not in df.to_string() and "nan" not in df.to_string().lower()


def test_provenance_facts_of_a_model(app_models):
    from dfdet.app.backend import ModelCard, find_artifacts, provenance_facts, provenance_table

    card = find_artifacts(app_models.root).models[0]
    facts = provenance_facts(card)
    meta = card.meta
    assert list(facts) == [
        "dfdet version",
        "feature recipe",
        "training data",
        "created (UTC)",
        "command",
        "python / torch",
    ]
    assert facts["feature recipe"] == f"{meta['recipe']['name']} (hash {meta['recipe']['hash']})"
    train = meta["data"]["train"]
    assert (
        facts["training data"].startswith(f"feats.h5: {train['rows']} rows") and train["hash"] in facts["training data"]
    )
    assert facts["created (UTC)"] == meta["provenance"]["time"]
    # the command as typed, whatever path ran dfdet; a synthetic training corpus is named
    meta = {**meta, "provenance": {**meta["provenance"], "argv": ["/x/dfdet/__main__.py", "train", "a b.h5"]}}
    meta["data"] = {**meta["data"], "training_domain": {"synthetic": True, "corpus": {"name": "dfdet demo corpus"}}}
    facts = provenance_facts(ModelCard(card.path, card.label, meta))
    assert facts["command"] == "dfdet train 'a b.h5'"
    assert facts["training data"].endswith("; synthetic corpus (dfdet demo corpus)")
    table = provenance_table([card])
    assert list(table.columns) == [card.label] and "None" not in table.to_string()


def test_probabilities_are_displayed_without_false_certainty():
    from dfdet.app.backend import fmt_prob

    assert fmt_prob(0.5) == "0.5000" and fmt_prob(0.00012) == "0.0001"
    assert fmt_prob(3.2e-6) == "3.2e-06" and fmt_prob(0.0) == "0.0e+00"
    assert fmt_prob(1 - 2e-7) == "1 - 2.0e-07" and fmt_prob(float("nan")) == "n/a"
