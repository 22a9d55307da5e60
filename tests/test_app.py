"""`dfdet app`: the real page script driven browser-free by streamlit.testing.v1.AppTest, and the `app` command.

The page is configured through DFDET_APP_MODELS / DFDET_APP_DETECTOR (AppTest has no argv of its own) and fed with
st.file_uploader / st.audio_input values as a browser would send them. Verdicts are compared with `dfdet score` run
through the real CLI on the same files.
"""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest

from dfdet.scores import format_p, format_score
from tests.conftest import speechlike
from tests.contract import assert_scores_agree
from tests.fixtures import bona_signal, spoof_signal
from tests.test_app_backend import AppModels, build_app_models, cli_tsv, paths_to_names, wav_bytes, write_clip

streamlit = pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

PAGE = Path(__file__).resolve().parents[1] / "dfdet" / "app" / "streamlit_app.py"


@pytest.fixture(scope="module")
def app_models(tmp_path_factory) -> AppModels:
    return build_app_models(tmp_path_factory.mktemp("app"))


@pytest.fixture
def page(app_models, monkeypatch):
    """A fresh AppTest of the real page serving the demo-like models dir."""
    monkeypatch.setenv("DFDET_APP_MODELS", str(app_models.root))
    monkeypatch.delenv("DFDET_APP_DETECTOR", raising=False)
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def errors(at) -> list[str]:
    return [e.value for e in at.error]


def decisions(at) -> list[str]:
    return [m.value for m in at.metric if m.label == "Decision"]


def batch_table(at):
    tables = [d.value for d in at.dataframe if list(d.value.columns[:3]) == ["utt_id", "file", "decision"]]
    assert len(tables) == 1
    return tables[0]


def upload(at, files: list[tuple[str, bytes]]):
    at.file_uploader(key="uploads").set_value([(n, b, "audio/wav") for n, b in files])
    at.run()
    assert not at.exception, at.exception
    return at


def cli_rows(tsv: str) -> dict[str, list[str]]:
    return {line.split("\t")[0]: line.split("\t") for line in tsv.splitlines()[1:]}


# --------------------------------------------------------------------------------------------------- the page
def test_page_loads_with_demo_models(page, app_models):
    assert errors(page) == []
    sb = page.selectbox(key="operating_point")
    # operating points found in the dir; thresholds come from the files (shown in the sidebar)
    assert sb.options == ["ens/lab.json", "cal/lab.json", "cal/wild.json", "models/adamw.pt", "models/sgd.pt"]
    assert sb.value == "ens/lab.json"
    assert [t.label for t in page.tabs] == ["Detect", "Inspect", "Models", "About"]
    assert page.file_uploader(key="uploads").accept_multiple_files
    assert sorted(page.file_uploader(key="uploads").allowed_type) == [".flac", ".mp3", ".ogg", ".wav"]
    assert len(page.audio_input) == 1
    assert any("Upload audio" in i.value for i in page.info)
    # Models tab: operating points, model facts, ensemble weights/flips, calibrations, evaluation rows
    frames = [d.value for d in page.dataframe]
    ops = next(f for f in frames if "usable" in f.columns)
    assert list(ops["file"]) == [*sb.options, "ens/from_scores.json"] and not ops["usable"].iloc[-1]
    assert any("optimizer" in f.columns and list(f["model"]) == ["models/adamw.pt", "models/sgd.pt"] for f in frames)
    assert any("weight" in f.columns and "flipped" in f.columns for f in frames)
    assert any("eer" in f.columns and "roc_auc" in f.columns for f in frames)
    assert any(s.value == "Ensembles: weights and flips" for s in page.subheader)
    sidebar = " ".join(m.value for m in page.sidebar.markdown)
    import json

    thr = json.loads(app_models.ensemble.read_text())["threshold"]["value"]
    assert f"{thr:.4g}" in sidebar


def test_synthetic_training_data_gets_a_banner(app_models, monkeypatch, tmp_path_factory):
    """A model trained on the demo corpus: a warning banner above everything, before any upload; a model trained
    on an unmarked corpus: a caption naming its store, no banner."""
    from tests.test_scoring import build_demo_trained

    demo = build_demo_trained(tmp_path_factory)
    monkeypatch.delenv("DFDET_APP_MODELS", raising=False)
    monkeypatch.setenv("DFDET_APP_DETECTOR", str(demo.model))
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    assert [w.value for w in at.warning] == [
        "Detector demo.pt was trained on the synthetic demo corpus (lab; store lab.h5); its verdicts on real speech "
        "mean nothing."
    ]
    upload(at, [("x.wav", wav_bytes(bona_signal(16000, 1.0, seed=71)))])
    assert len(at.warning) == 1 and len(decisions(at)) == 1  # still there next to the verdict
    monkeypatch.setenv("DFDET_APP_DETECTOR", str(app_models.models[0]))
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    at.run()
    assert not at.exception and [w.value for w in at.warning] == []
    assert "Detector adamw.pt was trained on feats.h5 (domain lab, wild)." in [c.value for c in at.caption]


def test_models_tab_shows_no_none_and_about_shows_a_provenance_table(page):
    models, about = page.tabs[2], page.tabs[3]
    frames = [d.value for d in models.dataframe]
    assert len(frames) >= 5
    for f in frames:
        assert "None" not in f.astype(str).to_string() and not f.isna().any().any(), f
    facts = next(f for f in frames if "test_eer" in f.columns)
    assert set(facts["test_eer"]) == {"not measured: trained without --test"}
    assert any("not measured" in c.value for c in models.caption)
    (table,) = about.table
    assert list(table.value.index) == [
        "dfdet version", "feature recipe", "training data", "created (UTC)", "command", "python / torch",
    ]  # fmt: skip
    assert list(table.value.columns) == ["models/adamw.pt", "models/sgd.pt"]  # the ensemble's models
    assert [e.label for e in about.expander] == ["Full provenance records (JSON)"] and len(about.json) == 1


def test_probability_chart_keeps_labels_clear_of_the_legend():
    from dfdet.app import backend as be

    spec = _chart_spec()
    layers = spec["layer"]
    assert layers[0]["encoding"]["color"]["legend"]["orient"] == "bottom"
    texts = [x for x in layers if x["mark"]["type"] == "text"]
    # a label near P = 1 sits inside its bar (right-aligned), a short bar's label right of it
    assert [(x["mark"]["align"], x["transform"][0]["filter"]) for x in texts] == [
        ("right", "(datum.p_spoof >= 0.6)"),
        ("left", "(datum.p_spoof < 0.6)"),
    ]
    assert be.fmt_prob(1 - 3e-9) in {r["label"] for r in spec["datasets"][next(iter(spec["datasets"]))]}


def _chart_spec() -> dict:
    from dfdet.app import backend as be
    from dfdet.app.streamlit_app import _probability_chart

    m = [
        be.MemberVerdict("a", -20.0, 1 - 2e-9, 0.0, 0.5, "spoof"),
        be.MemberVerdict("b", 1.5, 0.18, 0.0, 0.5, "bonafide"),
    ]
    v = be.FileVerdict("x.wav", ok=True, score=-19.6, p_spoof=1 - 3e-9, decision="spoof", members=m)
    return _probability_chart(v, "ensemble").to_dict()


def test_generated_wav_decision_matches_dfdet_score(page, app_models, runner, tmp_path):
    clip = write_clip(tmp_path / "clip.wav", spoof_signal(16000, 1.2, seed=21))
    upload(page, [("clip.wav", clip.read_bytes())])
    assert errors(page) == []
    want = cli_rows(cli_tsv(runner, app_models.ensemble, [clip], tmp_path))["clip"]
    assert decisions(page) == [want[4]]
    from dfdet.app.backend import fmt_prob

    p = [m.value for m in page.metric if m.label == "P(spoof)"]
    assert p == [fmt_prob(float(want[3]))]
    # another operating point (the wild calibration): its own threshold and decision, again as dfdet score says
    page.selectbox(key="operating_point").select("cal/wild.json").run()
    assert not page.exception and errors(page) == []
    want = cli_rows(cli_tsv(runner, app_models.cal_wild, [clip], tmp_path))["clip"]
    assert decisions(page) == [want[4]]
    assert page.session_state["dfdet_batch_tsv"].decode().splitlines()[1].split("\t")[1] == want[1]


def test_corrupt_file_gives_an_error_and_the_app_keeps_working(page, app_models, runner, tmp_path):
    upload(page, [("broken.wav", b"RIFF....WAVEfmt garbage" * 20)])
    assert len(errors(page)) == 1 and "broken.wav" in errors(page)[0] and "not decodable" in errors(page)[0]
    assert decisions(page) == []
    upload(page, [("empty.wav", b"")])
    assert "empty file" in errors(page)[0]
    upload(page, [("short.wav", wav_bytes(bona_signal(16000, 0.1)))])
    assert "too short" in errors(page)[0]
    good = write_clip(tmp_path / "good.wav", bona_signal(16000, 1.0, seed=8))
    upload(page, [("good.wav", good.read_bytes())])
    assert errors(page) == []
    want = cli_rows(cli_tsv(runner, app_models.ensemble, [good], tmp_path))["good"]
    assert decisions(page) == [want[4]]


def test_batch_table_and_tsv_equal_dfdet_score(page, app_models, runner, tmp_path):
    clips = [
        write_clip(tmp_path / "in" / "b_spoof.wav", spoof_signal(16000, 1.0, seed=31)),
        write_clip(tmp_path / "in" / "a_bona.wav", bona_signal(16000, 1.0, seed=32)),
        write_clip(tmp_path / "in" / "c_48k.wav", speechlike(48000, 1.0, seed=33), 48000),
    ]
    upload(page, [(p.name, p.read_bytes()) for p in clips] + [("junk.wav", b"junk")])
    assert len(errors(page)) == 1 and "junk.wav" in errors(page)[0]
    want = cli_tsv(runner, app_models.ensemble, clips, tmp_path)
    tsv = page.session_state["dfdet_batch_tsv"].decode("utf-8")
    assert tsv == paths_to_names(want)
    assert [b.label for b in page.get("download_button")] == ["Download scores (TSV, as dfdet score)"]
    table = batch_table(page)
    rows = cli_rows(want)
    assert list(table["utt_id"]) == sorted(rows) == ["a_bona", "b_spoof", "c_48k"]
    for _, r in table.iterrows():
        w = rows[r["utt_id"]]
        assert r["decision"] == w[4] and format_score(r["score"]) == w[1] and format_p(r["p_spoof"]) == w[3]
        assert f"{r['duration_s']:.3f}" == w[5] and f"{r['scored_s']:.3f}" == w[6]
        assert r["file"] == Path(w[2]).name
    assert {"p_spoof[adamw]", "p_spoof[sgd]"} <= set(table.columns)
    assert sorted(decisions(page)) == sorted(w[4] for w in rows.values())


def test_microphone_recording_is_scored(page, app_models, runner, tmp_path):
    rec = write_clip(tmp_path / "recording.wav", bona_signal(16000, 1.5, seed=41))
    page.audio_input(key="recording").upload("recording.wav", rec.read_bytes())
    page.run()
    assert not page.exception and errors(page) == []
    want = cli_rows(cli_tsv(runner, app_models.ensemble, [rec], tmp_path))["recording"]
    assert decisions(page) == [want[4]]


def test_detector_is_loaded_once_and_reloaded_when_a_file_changes(app_models, monkeypatch, tmp_path):
    import os
    import shutil

    import dfdet.app.backend as be

    root = tmp_path / "copy"
    shutil.copytree(app_models.root, root)  # a new path: not in the process-wide cache yet
    calls = []
    real = be.load_for_app
    monkeypatch.setattr(be, "load_for_app", lambda path: calls.append(Path(path).name) or real(path))
    monkeypatch.setenv("DFDET_APP_MODELS", str(root))
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    at.run()
    upload(at, [("a.wav", wav_bytes(bona_signal(16000, 1.0, seed=61)))])
    upload(at, [("b.wav", wav_bytes(bona_signal(16000, 1.0, seed=62)))])
    assert calls == ["lab.json"]  # three runs, two uploads: one load
    member = root / "models" / "sgd.pt"
    st_ = member.stat()
    os.utime(member, ns=(st_.st_atime_ns, st_.st_mtime_ns + 10**9))  # a member model rewritten in place
    at.run()
    assert not at.exception and calls == ["lab.json", "lab.json"]


def test_inspect_tab_draws_waveform_spectrogram_features_and_saliency(page):
    pytest.importorskip("captum")
    upload(page, [("x.wav", wav_bytes(speechlike(22050, 1.5, seed=51), 22050))])
    assert page.selectbox(key="inspect_file").value == "x.wav"
    md = " ".join(m.value for m in page.markdown)
    for part in ("Waveform", "Log-mel spectrogram", "154-D feature vector", "Saliency of this clip per feature group"):
        assert part in md
    assert len(page.get("image")) == 2  # waveform + spectrogram figures
    sal = next(d.value for d in page.dataframe if "saliency share (|grad|)" in d.value.columns)
    assert list(sal.index) == ["LPS", "LFCC", "Contrast", "MPE", "MFCC"]
    assert np.isclose(sal["saliency share (|grad|)"].sum(), 1.0)
    page.radio(key="feature_scale").set_value("raw value").run()
    assert not page.exception


def test_single_detector_and_upload_limit(app_models, monkeypatch):
    monkeypatch.delenv("DFDET_APP_MODELS", raising=False)
    monkeypatch.setenv("DFDET_APP_DETECTOR", str(app_models.models[1]))
    monkeypatch.setenv("DFDET_APP_MAX_UPLOAD_MB", "1")
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    at.run()
    assert not at.exception and at.selectbox(key="operating_point").options == ["sgd.pt"]
    big = wav_bytes(np.tile(bona_signal(16000, 1.0), 40))  # 40 s of PCM_16: 1.28 MB
    upload(at, [("big.wav", big), ("ok.wav", wav_bytes(bona_signal(16000, 1.0)))])
    assert len(errors(at)) == 1 and "upload limit" in errors(at)[0] and decisions(at) != []


def test_page_without_configuration_says_how_to_start(monkeypatch, tmp_path):
    monkeypatch.delenv("DFDET_APP_MODELS", raising=False)
    monkeypatch.delenv("DFDET_APP_DETECTOR", raising=False)
    at = AppTest.from_file(str(PAGE), default_timeout=30)
    at.run()
    assert not at.exception and "no models to serve" in errors(at)[0] and "--models" in errors(at)[0]
    monkeypatch.setenv("DFDET_APP_MODELS", str(tmp_path))  # a dir without any model
    at = AppTest.from_file(str(PAGE), default_timeout=30)
    at.run()
    assert not at.exception and "No usable detector" in errors(at)[0]


def chart_data(at, field: str) -> list:
    """The data frames of the page's Altair chart whose spec uses `field` (decoded from the chart's Arrow datasets,
    as the browser receives them)."""
    import json

    import pyarrow as pa

    charts = [c for c in at.get("vega_lite_chart") if f'"field": "{field}"' in c.proto.spec]
    assert len(charts) == 1, [c.proto.spec[:80] for c in charts]
    spec = json.loads(charts[0].proto.spec)
    return spec, [pa.ipc.open_stream(d.data.data).read_all().to_pandas() for d in charts[0].proto.datasets]


def test_inspect_tab_plots_the_score_over_time_of_a_partial_fake(monkeypatch, runner, tmp_path, tmp_path_factory):
    """An lfcc detector: under the waveform and spectrogram, one point per 1-s window, the same rows as `dfdet score
    --segments 1`, the threshold as a rule, and the most spoof-like window on the spliced fake segment."""
    from tests.test_segments import SR, build_detectors, resynthesised, syllables, tsv_rows

    dets = build_detectors(tmp_path_factory.mktemp("segments"))
    monkeypatch.delenv("DFDET_APP_MODELS", raising=False)
    monkeypatch.setenv("DFDET_APP_DETECTOR", str(dets.calibrated))
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    at.run()
    y = syllables(6.0, seed=9)
    y[int(2.0 * SR) : int(3.5 * SR)] = resynthesised(y[int(2.0 * SR) : int(3.5 * SR)])
    clip = write_clip(tmp_path / "partial.wav", y)
    upload(at, [("partial.wav", clip.read_bytes())])
    assert errors(at) == []
    md = [m.value for m in at.markdown]
    assert md.index("**Score over time**") == md.index("**Log-mel spectrogram**") + 1
    spec, (windows, threshold) = chart_data(at, "mid")
    assert [x["mark"]["type"] for x in spec["layer"]] == ["line", "circle", "rule"]
    from dfdet.cli import cli

    r = runner.invoke(cli, ["score", str(dets.calibrated), str(clip), "--segments", "1"])
    assert r.exit_code == 0, r.stderr
    want = tsv_rows(r.stdout)
    assert list(windows["start"]) == [float(x["start"]) for x in want] == [0.5 * k for k in range(11)]
    assert list(windows["end"]) == [float(x["end"]) for x in want]
    assert_scores_agree(windows["score"], [float(x["score"]) for x in want])
    assert list(windows["decision"]) == [x["decision"] for x in want]
    import json

    thr = json.loads(dets.calibrated.read_text())["threshold"]["value"]
    assert list(threshold["threshold"]) == [thr]
    lowest = windows.loc[windows["score"].idxmin()]
    assert lowest["start"] < 3.5 and lowest["end"] > 2.0
    assert any("window(s) of 1 s every 0.5 s" in c.value for c in at.caption)


def test_inspect_tab_says_why_a_fixed_window_detector_has_no_score_over_time(page):
    upload(page, [("x.wav", wav_bytes(speechlike(16000, 3.0, seed=52)))])
    assert not page.exception and errors(page) == []
    assert "**Score over time**" in [m.value for m in page.markdown]
    assert any("needs a detector on a frame recipe (lfcc)" in i.value and "seed154" in i.value for i in page.info)
    assert not [c for c in page.get("vega_lite_chart") if '"field": "mid"' in c.proto.spec]


# --------------------------------------------------------------------------------------------------- the command
def test_app_command_starts_streamlit_on_localhost(app_models, runner, monkeypatch):
    import dfdet.app
    from dfdet.cli import cli

    seen = {}

    def fake_serve(cmd, url, open_browser=True):
        seen.update(cmd=cmd, url=url, open_browser=open_browser)
        return 0

    monkeypatch.setattr(dfdet.app, "serve", fake_serve)
    port = _free_port()
    r = runner.invoke(
        cli, ["app", "--models", str(app_models.root), "--port", str(port), "--max-upload-mb", "20", "--no-browser"]
    )
    assert r.exit_code == 0, r.stderr
    cmd = seen["cmd"]
    assert cmd[1:5] == ["-m", "streamlit", "run", str(dfdet.app.PAGE)]
    opts = dict(zip(cmd[5:13:2], cmd[6:14:2], strict=True))
    assert opts == {
        "--server.address": "localhost",
        "--server.port": str(port),
        "--server.maxUploadSize": "20",
        "--server.headless": "true",
    }
    after = cmd[cmd.index("--") + 1 :]
    assert after[:2] == ["--models", str(app_models.root.resolve())] and "--max-upload-mb" in after
    assert seen["url"] == f"http://localhost:{port}/" and seen["open_browser"] is False
    assert f"http://localhost:{port}/" in r.stderr and r.stdout == ""
    # the page parses exactly what the command passes
    from dfdet.app.backend import parse_page_args

    cfg = parse_page_args(after, {})
    assert cfg.models_dir == app_models.root.resolve() and cfg.max_upload_mb == 20


def test_app_command_errors(app_models, runner, monkeypatch, tmp_path):
    import dfdet.app
    from dfdet.cli import cli

    monkeypatch.setenv("DFDET_MODELS", str(tmp_path / "none"))  # no shipped detectors to serve by default
    r = runner.invoke(cli, ["app"])
    assert r.exit_code == 2 and "no shipped detectors are installed" in r.stderr and "--models DIR" in r.stderr
    r = runner.invoke(cli, ["app", "--models", str(app_models.root), "--detector", str(app_models.ensemble)])
    assert r.exit_code == 2
    monkeypatch.setattr(dfdet.app, "streamlit_available", lambda: False)
    r = runner.invoke(cli, ["app", "--models", str(app_models.root)])
    assert r.exit_code == 1 and "streamlit is not installed" in r.stderr and "pip install 'dfdet[app]'" in r.stderr
    monkeypatch.undo()
    with socket.socket() as s:
        s.bind(("localhost", 0))
        s.listen(1)
        busy = s.getsockname()[1]
        r = runner.invoke(cli, ["app", "--models", str(app_models.root), "--port", str(busy)])
    assert r.exit_code == 1 and f"port {busy}" in r.stderr and "--port" in r.stderr
    r = runner.invoke(cli, ["app", "--help"])
    assert r.exit_code == 0 and "BONA-FIDE-POSITIVE" in r.stdout and "--max-upload-mb" in r.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]
