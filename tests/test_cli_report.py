"""`dfdet report` command: CliRunner over real artifacts (two tiny trained models, score files, a calibration)."""

from __future__ import annotations

import json

import pytest

from dfdet.cli import cli
from tests.test_report import build_study


@pytest.fixture(scope="module")
def small_study(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_study")
    paths = build_study(root, full=False)
    return root, paths


def test_report_writes_three_files_and_prints_the_page(runner, small_study, tmp_path):
    root, _ = small_study
    out = tmp_path / "rep"
    r = runner.invoke(cli, ["report", str(root), "-o", str(out), "--title", "CLI study", "--bootstrap", "100"])
    assert r.exit_code == 0, r.stderr
    assert r.stdout.strip() == str(out / "index.html")
    assert sorted(p.name for p in out.iterdir()) == ["index.html", "summary.json", "summary.md"]
    assert "report:" in r.stderr and "done" in r.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["title"] == "CLI study"
    secs = summary["sections"]
    for sid in ("optimizers", "evaluation", "calibration", "domain", "provenance"):
        assert secs[sid]["status"] == "ok", sid
    for sid in ("ensemble", "explainability", "robustness"):
        assert secs[sid]["status"] == "skipped"
    assert "skipped ensemble, explainability, robustness" in r.stderr
    page = (out / "index.html").read_text()
    assert "<title>CLI study</title>" in page


def test_domain_option(runner, small_study, tmp_path):
    root, paths = small_study
    out = tmp_path / "rep"
    args = ["report", str(paths["sgd.lab_test"]), str(paths["adam.lab_test"]), "-o", str(out), "--bootstrap", "0"]
    r = runner.invoke(cli, [*args, "--domain", "studio=*sgd*", "--domain", "field=*adam*"])
    assert r.exit_code == 0, r.stderr
    summary = json.loads((out / "summary.json").read_text())
    doms = {x["name"]: x["domain"] for x in summary["sections"]["evaluation"]["results"]}
    assert doms == {"sgd.lab_test": "studio", "adam.lab_test": "field"}
    r = runner.invoke(cli, [*args, "--domain", "no-equals-sign"])
    assert r.exit_code == 2
    assert "NAME=GLOB" in r.stderr


def test_not_an_artifact_is_an_error(runner, small_study, tmp_path):
    root, paths = small_study
    junk = tmp_path / "notes.json"
    junk.write_text('{"hello": "world"}')
    out = tmp_path / "rep"
    r = runner.invoke(cli, ["report", str(junk), str(paths["sgd.lab_test"]), "-o", str(out), "--bootstrap", "0"])
    assert r.exit_code == 1
    assert r.stderr.startswith("dfdet report: error:") and "notes.json" in r.stderr
    assert not (out / "index.html").exists()


def test_skip_bad_writes_report_and_exits_3(runner, small_study, tmp_path):
    root, paths = small_study
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"\x80\x02 truncated pickle")
    out = tmp_path / "rep"
    args = ["report", str(broken), str(paths["sgd.lab_test"]), "-o", str(out), "--bootstrap", "0", "--skip-bad"]
    r = runner.invoke(cli, args)
    assert r.exit_code == 3, r.stderr
    assert "warning:" in r.stderr and "broken.pt" in r.stderr
    assert (out / "index.html").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sections"]["provenance"]["bad"][0]["path"] == str(broken)


def test_missing_input_and_help(runner, tmp_path):
    r = runner.invoke(cli, ["report", str(tmp_path / "nope"), "-o", str(tmp_path / "o")])
    assert r.exit_code == 2
    r = runner.invoke(cli, ["report", "--help"])
    assert r.exit_code == 0
    assert "bona-fide-positive" in r.stdout and "--domain" in r.stdout
    r = runner.invoke(cli, ["--help"])
    assert "report" in r.stdout


def test_evaluate_json_is_read(runner, small_study, tmp_path):
    from dfdet.report import detect_artifact

    _, paths = small_study
    ev = tmp_path / "in_domain.json"
    r = runner.invoke(cli, ["evaluate", str(paths["sgd.lab_test"]), "--json", "-o", str(ev)])
    assert r.exit_code == 0, r.stderr
    assert detect_artifact(ev) == "evaluation"
    out = tmp_path / "rep"
    r = runner.invoke(cli, ["report", str(ev), "-o", str(out), "--bootstrap", "0"])
    assert r.exit_code == 0, r.stderr
    page = (out / "index.html").read_text()
    assert "As computed by dfdet evaluate (in_domain.json)" in page
