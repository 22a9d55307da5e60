"""`dfdet evaluate` through click's CliRunner: table, --json, --by system, several files, warnings, exit codes."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from dfdet.cli import cli
from tests.conftest import DATA

REF = DATA / "metric-vectors" / "scores_a.tsv"
EXPECTED = json.loads((DATA / "metric-vectors" / "scores_a.expected.json").read_text())


def _score_file(path, n_bona=200, n_spoof=300, shift=2.0, seed=0, systems=("A01", "A02"), invert=False):
    """A labelled dfdet score file: A01 spoofs are easy (far from bona fide), A02 hard (close)."""
    rng = np.random.default_rng(seed)
    lines = ["utt_id\tscore\tlabel\tsystem"]
    for i in range(n_bona):
        s = rng.normal(shift, 1.0)
        lines.append(f"b{i:04d}\t{-s if invert else s!r}\tbonafide\t-")
    for i in range(n_spoof):
        system = systems[i % len(systems)]
        s = rng.normal(-3.0 if system == "A01" else 1.5, 1.0)
        lines.append(f"s{i:04d}\t{-s if invert else s!r}\tspoof\t{system}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_table_for_reference_file(runner):
    r = runner.invoke(cli, ["evaluate", str(REF)])
    assert r.exit_code == 0, r.stderr
    header, row = r.stdout.splitlines()
    assert header.split()[:6] == ["name", "n_bona", "n_spoof", "eer%", "auc", "minDCF"]
    cells = row.split()
    assert cells[:4] == ["scores_a", "1200", "9000", f"{100 * EXPECTED['eer']:.2f}"]
    assert cells[5] == f"{EXPECTED['min_dcf']:.4f}"
    assert r.stderr == ""  # no warnings for a sane file


def test_json_matches_reference_values(runner):
    r = runner.invoke(cli, ["evaluate", "--json", str(REF)])
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["schema"] == "dfdet.evaluate/1" and "provenance" in doc
    (res,) = doc["results"]
    for key in ("eer", "eer_threshold", "min_dcf", "act_dcf", "cllr", "min_tdcf_2019"):
        assert res[key] == pytest.approx(EXPECTED[key], abs=1e-6), key
    assert res["decision"]["threshold"] == 0.0 and res["threshold_source"].startswith("default")


def test_by_system_gives_per_attack_rows_with_pooled_bona_fide(runner, tmp_path):
    f = _score_file(tmp_path / "dev.tsv")
    r = runner.invoke(cli, ["evaluate", "--json", "--by", "system", str(f)])
    assert r.exit_code == 0, r.stderr
    rows = json.loads(r.stdout)["results"]
    assert [x["group"] for x in rows] == [None, "A01", "A02"]
    assert [x["n_bonafide"] for x in rows] == [200, 200, 200]
    assert [x["n_spoof"] for x in rows] == [300, 150, 150]
    assert rows[1]["eer"] < rows[0]["eer"] < rows[2]["eer"]  # easy attack < pooled < hard attack
    table = runner.invoke(cli, ["evaluate", "--by", "system", str(f)])
    assert [ln.split()[1] for ln in table.stdout.splitlines()] == ["group", "(pooled)", "A01", "A02"]


def test_several_files_side_by_side_with_names(runner, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    ind = _score_file(tmp_path / "a" / "scores.tsv", seed=1)
    ood = _score_file(tmp_path / "b" / "scores.tsv", shift=0.3, seed=2)
    r = runner.invoke(cli, ["evaluate", str(ind), str(ood)])
    assert r.exit_code == 0, r.stderr
    names = [ln.split()[0] for ln in r.stdout.splitlines()[1:]]
    assert names == [str(ind), str(ood)]  # equal stems: the paths tell them apart
    r = runner.invoke(cli, ["evaluate", "--json", "--name", "in-domain", "--name", "itw", str(ind), str(ood)])
    rows = json.loads(r.stdout)["results"]
    assert [x["name"] for x in rows] == ["in-domain", "itw"]
    assert rows[0]["eer"] < rows[1]["eer"]
    r = runner.invoke(cli, ["evaluate", "--name", "only-one", str(ind), str(ood)])
    assert r.exit_code == 2 and "one --name per file" in r.stderr


def test_inverted_scores_warn_on_stderr(runner, tmp_path):
    f = _score_file(tmp_path / "inv.tsv", invert=True)
    r = runner.invoke(cli, ["evaluate", str(f)])
    assert r.exit_code == 0
    assert "warning: inv: scores look inverted: AUC 0." in r.stderr and "inverted learning" in r.stderr
    assert "warning" not in r.stdout


def test_threshold_options(runner, tmp_path):
    dev = _score_file(tmp_path / "dev.tsv", seed=3)
    ev = _score_file(tmp_path / "eval.tsv", seed=4)
    r = runner.invoke(cli, ["evaluate", "--json", "--threshold-from", str(dev), str(ev)])
    assert r.exit_code == 0, r.stderr
    res = json.loads(r.stdout)["results"][0]
    dev_eer_thr = json.loads(runner.invoke(cli, ["evaluate", "--json", str(dev)]).stdout)["results"][0]["eer_threshold"]
    assert res["decision"]["threshold"] == pytest.approx(dev_eer_thr)
    assert "EER threshold" in res["threshold_source"]
    r = runner.invoke(cli, ["evaluate", "--json", "--threshold", "100", str(ev)])
    assert json.loads(r.stdout)["results"][0]["decision"]["fpr"] == 1.0  # every bona fide below 100 -> called spoof
    r = runner.invoke(cli, ["evaluate", "--threshold", "0", "--threshold-from", str(dev), str(ev)])
    assert r.exit_code == 2 and "only one" in r.stderr


def test_ci_is_seeded_and_reproducible(runner, tmp_path):
    f = _score_file(tmp_path / "s.tsv")
    args = ["evaluate", "--json", "--ci", "0.9", "--bootstrap", "50", str(f)]
    a = json.loads(runner.invoke(cli, args).stdout)["results"][0]["ci"]
    b = json.loads(runner.invoke(cli, args).stdout)["results"][0]["ci"]
    c = json.loads(runner.invoke(cli, ["--seed", "7", *args]).stdout)["results"][0]["ci"]
    assert a == b and a["eer"] != c["eer"]
    assert a["level"] == 0.9 and a["n_boot"] == 50 and a["eer"][0] <= a["eer"][1]
    table = runner.invoke(cli, ["evaluate", "--ci", "0.9", "--bootstrap", "20", str(f)])
    assert "eer%_ci" in table.stdout.splitlines()[0]


def test_labels_joined_from_key_file_and_stdin(runner, tmp_path):
    keyed = tmp_path / "cm.tsv"
    lines = ["filename\tcm-score"]
    keys = ["filename\tcm-label"]
    rng = np.random.default_rng(0)
    for i in range(40):
        lab = "bonafide" if i % 2 == 0 else "spoof"
        lines.append(f"E_{i:03d}\t{rng.normal(1 if lab == 'bonafide' else -1)!r}")
        keys.append(f"E_{i:03d}\t{lab}")
    keyed.write_text("\n".join(lines) + "\n")
    (tmp_path / "key.tsv").write_text("\n".join(keys) + "\n")
    r = runner.invoke(cli, ["evaluate", str(keyed)])
    assert r.exit_code == 1 and "no utterance has a label" in r.stderr and "--labels" in r.stderr
    r = runner.invoke(cli, ["evaluate", "--json", "--labels", str(tmp_path / "key.tsv"), str(keyed)])
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["results"][0]["n_bonafide"] == 20
    # `dfdet score ... | dfdet evaluate -`
    r = runner.invoke(cli, ["evaluate", "-"], input=REF.read_text())
    assert r.exit_code == 0 and r.stdout.splitlines()[1].split()[0] == "stdin"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("utt_id\tscore\tlabel\na\t0.1\tspoof\nb\tnan\tbonafide\n", "bad.tsv:3: score is NaN"),
        ("utt_id\tscore\tlabel\na\t0.1\tspoof\na\t0.2\tbonafide\n", "duplicate utt_id 'a'"),
        ("utt_id\tscore\tlabel\na\t0.1\tspoof\nb\t0.2\tmaybe\n", "unknown label 'maybe'"),
        ("utt_id\tscore\tlabel\na\t0.1\tspoof\nb\t0.2\tspoof\n", "only spoof trials"),
        ("", "score file is empty"),
    ],
)
def test_bad_files_exit_1_with_one_line_error(runner, tmp_path, content, message):
    bad = tmp_path / "bad.tsv"
    bad.write_text(content)
    r = runner.invoke(cli, ["evaluate", str(bad)])
    assert r.exit_code == 1
    assert r.stderr.startswith("dfdet evaluate: error: ") and message in r.stderr
    assert r.stdout == ""


def test_usage_errors_exit_2(runner, tmp_path):
    r = runner.invoke(cli, ["evaluate"])
    assert r.exit_code == 2
    r = runner.invoke(cli, ["evaluate", "--asv-rates", "0.1,0.2", str(REF)])
    assert r.exit_code == 2 and "PFA,PMISS,PMISS_SPOOF" in r.stderr
    r = runner.invoke(cli, ["evaluate", "--by", "nosuchcolumn", str(REF)])
    assert r.exit_code == 1 and "no column 'nosuchcolumn'" in r.stderr
    r = runner.invoke(cli, ["evaluate", str(tmp_path / "missing.tsv")])
    assert r.exit_code == 1 and "score file not found" in r.stderr


def test_output_file_is_written_atomically(runner, tmp_path):
    out = tmp_path / "res" / "metrics.json"
    copy = shutil.copy(REF, tmp_path / "ref.tsv")
    r = runner.invoke(cli, ["evaluate", "--json", "-o", str(out), "--asv-rates", "0.05,0.05,0.3", str(copy)])
    assert r.exit_code == 0 and r.stdout == ""
    doc = json.loads(out.read_text())
    assert doc["settings"]["asv_rates"] == {"pfa_asv": 0.05, "pmiss_asv": 0.05, "pmiss_spoof_asv": 0.3}
    assert doc["results"][0]["min_tdcf_2019"] != pytest.approx(EXPECTED["min_tdcf_2019"])


def test_by_speaker_with_one_class_groups_and_decision_column(runner, tmp_path):
    f = tmp_path / "sp.tsv"
    f.write_text(
        "utt_id\tscore\tdecision\tlabel\tspeaker\n"
        "a\t1.5\tbonafide\tbonafide\tS1\nb\t-1\tspoof\tspoof\tS1\nc\t0.5\tspoof\tbonafide\tS2\n"
        "d\t0.2\tbonafide\tbonafide\tS3\ne\t-0.3\tspoof\tspoof\tS3\nf\t0.1\tspoof\tspoof\tS3\n"
    )
    r = runner.invoke(cli, ["evaluate", "--json", "--by", "speaker", str(f)])
    assert r.exit_code == 0, r.stderr
    rows = {x["group"]: x for x in json.loads(r.stdout)["results"]}
    assert rows[None]["threshold_source"] == "decision column"
    assert rows[None]["decision"]["accuracy"] == pytest.approx(5 / 6)  # c is bona fide but was decided spoof
    assert "eer" not in rows["S2"] and rows["S2"]["decision"]["fpr"] == 1.0
    assert "warning: sp [speaker=S2]: only bona fide trials" in r.stderr
    table = runner.invoke(cli, ["evaluate", "--by", "speaker", str(f)]).stdout.splitlines()
    s2 = next(ln for ln in table if ln.split()[1] == "S2").split()
    assert s2[4:6] == ["-", "-"]  # EER and AUC undefined for one class


def test_hard_decisions_warn(runner, tmp_path):
    f = tmp_path / "hard.tsv"
    f.write_text("utt_id\tscore\tlabel\na\t1\tbonafide\nb\t0\tspoof\nc\t1\tbonafide\nd\t0\tbonafide\n")
    r = runner.invoke(cli, ["evaluate", str(f)])
    assert r.exit_code == 0 and "look like hard decisions" in r.stderr


# ----------------------------------------------------------------------------------------------- track 2 (SASV)
SASV_SCORES = DATA / "metric-vectors" / "sasv_b.scores.tsv"
SASV_KEYS = DATA / "metric-vectors" / "sasv_b.keys.tsv"
SASV_EXPECTED = json.loads((DATA / "metric-vectors" / "sasv_b.expected.json").read_text())


def test_sasv_json_reproduces_official_values_with_seeded_ci(runner):
    args = ["--seed", "5", "evaluate", "--json", "--sasv", str(SASV_SCORES), "--keys", str(SASV_KEYS)]
    r = runner.invoke(cli, [*args, "--bootstrap", "30"])
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    res = doc["results"]
    assert doc["schema"] == "dfdet.evaluate.sasv/1"
    assert res["a_dcf"] == pytest.approx(SASV_EXPECTED["a_dcf"], abs=1e-6)
    assert res["min_tdcf"] == pytest.approx(SASV_EXPECTED["min_tdcf_asvspoof5"], abs=1e-6)
    assert 100 * res["t_eer"] == pytest.approx(SASV_EXPECTED["t_eer_percent"], rel=1e-6)
    assert res["ci"]["level"] == 0.95 and res["ci"]["n_boot"] == 30 and res["ci"]["seed"] == 5
    for key in ("a_dcf", "min_tdcf", "t_eer"):
        assert res["ci"][key][0] <= res[key] <= res["ci"][key][1]
    again = runner.invoke(cli, [*args, "--bootstrap", "30"])
    assert json.loads(again.stdout)["results"]["ci"] == res["ci"]  # seeded


def test_sasv_table_and_usage_errors(runner):
    r = runner.invoke(cli, ["evaluate", "--sasv", str(SASV_SCORES), "--keys", str(SASV_KEYS), "--bootstrap", "5"])
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["metric", "value", "ci95%"]
    assert lines[1].split()[:2] == ["a-DCF", f"{SASV_EXPECTED['a_dcf']:.6f}"]
    assert lines[3].split()[:2] == ["t-EER%", f"{SASV_EXPECTED['t_eer_percent']:.6f}"]
    assert "2000 target, 3000 non-target, 4000 spoof" in r.stderr
    r = runner.invoke(cli, ["evaluate", "--sasv", str(SASV_SCORES)])
    assert r.exit_code == 2 and "--keys" in r.stderr
    r = runner.invoke(cli, ["evaluate"])
    assert r.exit_code == 2 and "no score file" in r.stderr


# ----------------------------------------------------------------------------------------------- ASVspoof 5 (track 1)
def test_asvspoof5_tree_featurize_score_evaluate_by_condition_and_report(runner, tmp_path):
    """Generated ASVspoof 5 eval tree -> featurize --labels -> train -> score -> evaluate --by codec/attack/gender,
    the official track-1 score and key files both ways, and the report's breakdown tables."""
    from dfdet.scores import read_scores
    from tests.fixtures import make_asvspoof5

    proto = make_asvspoof5(tmp_path / "ASVspoof5", n_per_class=12, partition="eval", seconds=0.4)
    store, model, tsv = tmp_path / "eval.h5", tmp_path / "m.pt", tmp_path / "scores" / "m.tsv"
    r = runner.invoke(cli, ["featurize", "--labels", str(proto), "-o", str(store), "-j", "1"])
    assert r.exit_code == 0, r.stderr
    args = ["train", str(store), "-o", str(model), "--model", "linear", "--epochs", "2", "--val-split", "0"]
    r = runner.invoke(cli, args)
    assert r.exit_code == 0, r.stderr
    r = runner.invoke(cli, ["score", str(model), str(store), "-o", str(tsv)])
    assert r.exit_code == 0, r.stderr
    header = tsv.read_text().splitlines()[0].split("\t")
    assert header[-8:] == ["speaker", "system", "codec", "codec_q", "attack", "gender", "duration_s", "scored_s"]
    table = read_scores(tsv)
    assert set(table.column("codec")) == {"", "C01", "C05", "C08"} and set(table.column("gender")) == {"M", "F"}

    def groups(by: str, *extra: str, scores=tsv) -> dict:
        res = runner.invoke(cli, ["evaluate", "--json", "--by", by, str(scores), *extra])
        assert res.exit_code == 0, res.stderr
        return {row["group"]: (row["n_bonafide"], row["n_spoof"]) for row in json.loads(res.stdout)["results"]}

    assert groups("codec") == {None: (12, 12), "(none)": (3, 3), "C01": (3, 3), "C05": (3, 3), "C08": (3, 3)}
    assert groups("attack") == {None: (12, 12), "AC1": (12, 4), "AC2": (12, 4), "AC3": (12, 4)}  # pooled bona fide
    assert groups("gender") == {None: (12, 12), "F": (6, 6), "M": (6, 6)}
    assert groups("system")["A17"] == (12, 3)
    # a score file without the columns gets them from the protocol (--keys), like speaker/system
    bare = tmp_path / "bare.tsv"
    bare.write_text(
        "utt_id\tscore\n" + "".join(f"{u}\t{float(s)!r}\n" for u, s in zip(table.utt_id, table.score, strict=True))
    )
    for by in ("codec", "attack", "gender"):
        assert groups(by, "--keys", str(proto), scores=bare) == groups(by), by

    # the official track-1 files: score --format asvspoof5 and a filename<TAB>cm-label key file
    official = tmp_path / "cm_scores.tsv"
    r = runner.invoke(cli, ["score", str(model), str(store), "--format", "asvspoof5", "-o", str(official)])
    assert r.exit_code == 0, r.stderr
    lines = official.read_text().splitlines()
    assert lines[0] == "filename\tcm-score" and len(lines) == 25
    assert lines[1].split("\t")[0] == table.utt_id[0] and float(lines[1].split("\t")[1]) == table.score[0]
    key = tmp_path / "key.tsv"
    key.write_text(
        "filename\tcm-label\n"
        + "".join(f"{u}\t{w}\n" for u, w in zip(table.utt_id, table.column("label"), strict=True))
    )
    r1 = runner.invoke(cli, ["evaluate", "--json", str(official), "--keys", str(key)])
    r2 = runner.invoke(cli, ["evaluate", "--json", str(tsv)])
    assert r1.exit_code == 0, r1.stderr
    (a,), (b,) = json.loads(r1.stdout)["results"], json.loads(r2.stdout)["results"]
    assert (a["n_bonafide"], a["n_spoof"], a["eer"], a["min_dcf"]) == (
        b["n_bonafide"],
        b["n_spoof"],
        b["eer"],
        b["min_dcf"],
    )

    # the report renders one breakdown table per condition column
    out = tmp_path / "report"
    r = runner.invoke(cli, ["report", str(tsv.parent), "-o", str(out), "--bootstrap", "0"])
    assert r.exit_code in (0, 3), r.stderr
    summary = json.loads((out / "summary.json").read_text())
    text = json.dumps(summary)
    for col in ("codec", "codec_q", "attack", "gender"):
        assert f'"by": "{col}"' in text, col
    html = (out / "index.html").read_text()
    assert "Per codec condition" in html and "Per attack tag" in html and "Per speaker gender" in html
    assert ">C05<" in html and ">AC2<" in html


def test_cli_choices_match_the_library_registries():
    """--format and --label-kind list what dfdet.scores.FORMATS and dfdet.protocols.LABEL_KINDS hold."""
    from dfdet.cli.options import LABEL_KINDS, SCORE_FORMATS
    from dfdet.protocols import LABEL_KINDS as KINDS
    from dfdet.scores import FORMATS

    assert set(SCORE_FORMATS) == set(FORMATS) - {"asvspoof-keys"}
    assert tuple(LABEL_KINDS) == KINDS
