"""`dfdet explain` and `dfdet attack` through click: outputs, provenance, and the error cases."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dfdet.cli import cli
from dfdet.features import FeatureGroup
from dfdet.store import FeatureSet, write_features
from tests.test_attacks import blobs, linear_model_file

D = 12
GROUPS = [FeatureGroup("A", 0, 6), FeatureGroup("B", 6, 12)]
TOY = {
    "name": "toy",
    "hash": "toyhash0",
    "feature_names": [f"t{i}" for i in range(D)],
    "groups": [["A", 0, 6], ["B", 6, 12]],
}


def store(path: Path, X: np.ndarray, y: np.ndarray, recipe_hash: str | None = "toyhash0", systems=None) -> Path:
    n, d = X.shape
    fs = FeatureSet(
        X=np.asarray(X, np.float32),
        y=np.asarray(y, np.int8),
        utt_id=[f"u{i:04d}" for i in range(n)],
        feature_names=[f"t{i}" for i in range(d)],
        groups=GROUPS if d == D else [FeatureGroup("all", 0, d)],
        system=systems or [],
        recipe="toy" if recipe_hash else None,
        recipe_hash=recipe_hash,
    )
    write_features(path, fs)
    return path


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Path]:
    X, y = blobs(60, D, shift=1.5, seed=0)
    X[:, 2] = 4.0 * y + 0.1 * np.random.default_rng(0).normal(size=len(y))  # a planted shortcut
    w = np.random.default_rng(1).normal(size=D)
    systems = ["-" if v == 0 else ("A01" if i % 2 else "A02") for i, v in enumerate(y)]
    return {
        "model": linear_model_file(tmp_path / "lin.pt", w, recipe=TOY),
        "feats": store(tmp_path / "f.h5", X, y, systems=systems),
        "dir": tmp_path,
    }


def read(p: Path) -> dict:
    return json.loads(p.read_text())


def test_explain_writes_summary_and_per_sample(runner, setup) -> None:
    out, jl = setup["dir"] / "attr.json", setup["dir"] / "attr.jsonl"
    r = runner.invoke(
        cli,
        ["explain", str(setup["model"]), str(setup["feats"]), "-o", str(out), "--per-sample", str(jl),
         "--methods", "saliency,ig", "--max-rows", "20", "--top", "5"],
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    assert r.stdout == ""
    doc = read(out)
    assert set(doc["methods"]) == {"saliency", "ig"} and doc["rows"] == 20 and doc["rows_total"] == 60
    assert doc["methods"]["ig"]["completeness"]["fraction_within_tolerance"] == 1.0
    agg = doc["methods"]["saliency"]["splits"]["all"]
    assert set(agg["group_mean_abs"]) == {"A", "B"} and len(agg["top_features"]) == 5
    assert doc["provenance"]["inputs"]["detector"]["hash"]
    lines = [json.loads(s) for s in jl.read_text().splitlines()]
    assert len(lines) == 20 and {"utt_id", "label", "score", "correct", "ig", "saliency"} <= set(lines[0])
    assert "top features" in r.stderr


def test_shortcut_scan_to_stdout(runner, setup) -> None:
    r = runner.invoke(cli, ["explain", "--shortcuts", str(setup["feats"]), "-o", "-", "--by-system", "--group-cv"])
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [f["index"] for f in doc["flagged"]] == [2]
    assert set(doc["by_system"]) == {"A01", "A02"}
    assert set(doc["group_classifiers"]["groups"]) == {"A", "B"}
    assert "1 of 12 feature(s) flagged" in r.stderr


@pytest.mark.parametrize(
    "extra",
    [
        ["--method", "fgsm"],
        ["--method", "pgd", "--norm", "l2", "--steps", "3", "--random-start"],
        ["--method", "pgd", "--steps", "2", "--clamp", "-2,2"],
        ["--method", "fgsm", "--target", "label"],
    ],
)
def test_attack_sweeps(runner, setup, extra) -> None:
    out = setup["dir"] / "atk.json"
    r = runner.invoke(
        cli, ["attack", str(setup["model"]), str(setup["feats"]), "--eps", "0,0.1,0.3", "-o", str(out), *extra]
    )
    assert r.exit_code == 0, r.stderr
    doc = read(out)
    assert [row["eps"] for row in doc["rows"]] == [0.0, 0.1, 0.3]
    assert doc["rows"][0]["flip_rate"] == 0.0 and doc["rows"][0]["accuracy"] == doc["clean"]["accuracy"]
    assert doc["curve"]["flip_rate"] == [row["flip_rate"] for row in doc["rows"]]
    assert doc["provenance"]["command"].startswith("attack")
    assert "eps" in r.stderr


def test_attack_clamp_from_store(runner, setup) -> None:
    out = setup["dir"] / "atk.json"
    args = ["attack", str(setup["model"]), str(setup["feats"]), "--eps", "0.5", "--clamp-from", str(setup["feats"])]
    r = runner.invoke(cli, [*args, "-o", str(out)])
    assert r.exit_code == 0, r.stderr
    assert read(out)["clamp"]["per_feature"] is True


@pytest.mark.parametrize(
    ("eps", "message"),
    [
        ("0,abc", "--eps: 'abc' is not a number (use a comma-separated list like 0,0.05,0.1)"),
        ("0,-0.1", "negative"),
        ("", "--eps is empty"),
    ],
)
def test_bad_eps(runner, setup, eps, message) -> None:
    out = setup["dir"] / "x.json"
    r = runner.invoke(cli, ["attack", str(setup["model"]), str(setup["feats"]), "--eps", eps, "-o", str(out)])
    assert r.exit_code == 2
    assert message in r.stderr and "Traceback" not in r.stderr
    assert not out.exists()


def test_model_feature_mismatch(runner, setup) -> None:
    X, y = blobs(20, D, seed=3)
    other = store(setup["dir"] / "other.h5", X, y, recipe_hash="otherhash")
    wide = store(setup["dir"] / "wide.h5", np.zeros((20, D + 1)), y, recipe_hash=None)
    for feats, needle in ((other, "hash otherhash"), (wide, "13 features per row")):
        for cmd in (["explain"], ["attack"]):
            out = setup["dir"] / "x.json"
            r = runner.invoke(cli, [*cmd, str(setup["model"]), str(feats), "-o", str(out)])
            assert r.exit_code == 1, r.stderr
            assert needle in r.stderr and r.stderr.startswith(f"dfdet {cmd[0]}: error:")
            assert not out.exists()


def test_empty_input(runner, setup) -> None:
    empty = store(setup["dir"] / "empty.h5", np.zeros((0, D)), np.zeros(0))
    for args in (
        ["explain", str(setup["model"]), str(empty)],
        ["attack", str(setup["model"]), str(empty)],
        ["explain", "--shortcuts", str(empty)],
    ):
        r = runner.invoke(cli, [*args, "-o", str(setup["dir"] / "x.json")])
        assert r.exit_code == 1, r.stderr
        assert "no rows" in r.stderr


def test_usage_errors(runner, setup) -> None:
    m, f, o = str(setup["model"]), str(setup["feats"]), str(setup["dir"] / "x.json")
    cases = [
        (["explain", "--shortcuts", m, f, "-o", o], "takes one feature file"),
        (["explain", f, "-o", o], "expected MODEL FEATS"),
        (["explain", m, f, "-o", o, "--methods", "shap"], "unknown method"),
        (["attack", m, f, "--norm", "l2", "-o", o], "FGSM is an L-infinity attack"),
        (["attack", m, f, f, "-o", o], "takes one feature file"),
        (["attack", m, f, "--clamp", "3,1", "-o", o], "--clamp"),
    ]
    for args, needle in cases:
        r = runner.invoke(cli, args)
        assert r.exit_code == 2, (args, r.stderr)
        assert needle in r.stderr


def test_missing_model_file(runner, setup) -> None:
    r = runner.invoke(cli, ["attack", str(setup["dir"] / "nope.pt"), str(setup["feats"]), "-o", "-"])
    assert r.exit_code == 1 and "no such detector file" in r.stderr


def test_degrade_command(runner, tmp_path: Path) -> None:
    from tests.test_degrade import labelled_clips, seed154_model

    model = seed154_model(tmp_path / "m.pt")
    utts = labelled_clips(tmp_path / "audio")
    table = tmp_path / "labels.csv"
    table.write_text(
        "path,label\n" + "".join(f"{Path(u.path).name},{'spoof' if u.label else 'bonafide'}\n" for u in utts)
    )
    # the table's paths are relative to the table: move it into the audio dir
    (tmp_path / "audio" / "labels.csv").write_text(table.read_text())
    out = tmp_path / "deg.json"
    r = runner.invoke(
        cli,
        ["attack", str(model), str(tmp_path / "audio"), "--method", "degrade", "--labels",
         str(tmp_path / "audio" / "labels.csv"), "--conditions", "white_snr10,bandlimit_8k,ogg_vorbis", "-o", str(out)],
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    doc = read(out)
    assert [c["condition"] for c in doc["conditions"]] == ["clean", "white_snr10", "bandlimit_8k", "ogg_vorbis"]
    assert doc["n_bonafide"] == 2 and doc["n_spoof"] == 2
    assert all(c["n_scored"] == 4 and "eer" in c for c in doc["conditions"])
    assert "bandlimit_8k" in r.stderr


def test_degrade_skip_bad_partial_success(runner, tmp_path: Path) -> None:
    from tests.test_degrade import labelled_clips, seed154_model

    model = seed154_model(tmp_path / "m.pt")
    labelled_clips(tmp_path / "audio", n=1)
    (tmp_path / "audio" / "broken.wav").write_bytes(b"not audio at all")
    out = tmp_path / "deg.json"
    args = ["attack", str(model), str(tmp_path / "audio"), "--method", "degrade", "--conditions", "gain_-20db"]
    r = runner.invoke(cli, [*args, "-o", str(out)])
    assert r.exit_code == 1 and "broken.wav" in r.stderr and not out.exists()
    r = runner.invoke(cli, [*args, "--skip-bad", "-o", str(out)])
    assert r.exit_code == 3, r.stderr
    doc = read(out)
    assert doc["inputs"] == 3 and doc["inputs_scored"] == 2
    assert doc["failures"][0]["path"].endswith("broken.wav")


def test_degrade_jobs_same_json_and_skip_bad(runner, tmp_path: Path) -> None:
    from tests.test_degrade import labelled_clips, seed154_model

    model = seed154_model(tmp_path / "m.pt")
    labelled_clips(tmp_path / "audio")
    (tmp_path / "audio" / "broken.wav").write_bytes(b"not audio at all")
    args = ["attack", str(model), str(tmp_path / "audio"), "--method", "degrade", "--skip-bad"]
    docs, errs = [], []
    for j in (1, 2):
        out = tmp_path / f"deg{j}.json"
        r = runner.invoke(cli, [*args, "--conditions", "white_snr5,pink_snr10", "-j", str(j), "-o", str(out)])
        assert r.exit_code == 3, r.stderr
        doc = read(out)
        doc.pop("provenance")  # argv and time
        docs.append(json.dumps(doc, sort_keys=True))
        errs.append([line for line in r.stderr.splitlines() if "broken.wav" in line])
    assert docs[0] == docs[1] and errs[0] == errs[1] and errs[0]
    doc = json.loads(docs[1])
    assert doc["inputs"] == 5 and doc["inputs_scored"] == 4 and doc["failures"][0]["path"].endswith("broken.wav")
    assert any(c["mean_score_shift"] != 0 for c in doc["conditions"][1:])  # noise was added in the workers
    r = runner.invoke(cli, [*args[:-1], "-j", "2", "-o", str(tmp_path / "strict.json")])
    assert r.exit_code == 1 and "broken.wav" in r.stderr and not (tmp_path / "strict.json").exists()


def test_jobs_is_refused_for_feature_attacks(runner, setup) -> None:
    r = runner.invoke(cli, ["attack", str(setup["model"]), str(setup["feats"]), "-j", "2", "-o", "-"])
    assert r.exit_code == 2 and "--jobs" in r.stderr


def test_same_seed_same_output(runner, setup) -> None:
    outs = []
    for k in range(2):
        out = setup["dir"] / f"r{k}.json"
        args = ["--seed", "5", "attack", str(setup["model"]), str(setup["feats"]), "--method", "pgd", "--steps", "3"]
        r = runner.invoke(cli, [*args, "--random-start", "--eps", "0.2", "--max-rows", "30", "-o", str(out)])
        assert r.exit_code == 0, r.stderr
        outs.append(read(out))
    assert outs[0]["rows"] == outs[1]["rows"] and outs[0]["row_selection"] == outs[1]["row_selection"]


def test_degrade_takes_a_feature_store_as_its_audio_list(runner, tmp_path: Path) -> None:
    from dfdet.featurize import featurize
    from tests.test_degrade import labelled_clips, seed154_model

    model = seed154_model(tmp_path / "m.pt")
    utts = labelled_clips(tmp_path / "audio")
    featurize(utts, tmp_path / "split.h5", show_progress=False)
    out = tmp_path / "deg.json"
    r = runner.invoke(
        cli, ["attack", str(model), str(tmp_path / "split.h5"), "--method", "degrade", "--conditions", "gain_-20db",
              "-o", str(out)],
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    doc = read(out)
    assert doc["n_bonafide"] == 2 and doc["n_spoof"] == 2
    assert all(c["n_scored"] == 4 for c in doc["conditions"])
