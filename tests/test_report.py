"""`dfdet report` library: a tiny real study built through the library APIs (training, scoring, calibration,
ensemble, landscape, explain, shortcut scan, attacks), then the report over it: every section, every image decodes,
no external URL, skip notes, summary keys, domain tagging, in-sample flags, atomic output."""

from __future__ import annotations

import base64
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from dfdet.features import FeatureGroup
from dfdet.store import FeatureSet

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SECTION_TITLES = {
    "optimizers": "Optimizer comparison",
    "evaluation": "Evaluation",
    "calibration": "Calibration",
    "domain": "Domain shift",
    "ensemble": "Ensemble",
    "explainability": "Explainability",
    "robustness": "Robustness",
    "provenance": "Provenance",
}
GROUPS = [FeatureGroup("A", 0, 4), FeatureGroup("B", 4, 8), FeatureGroup("C", 8, 12)]


def make_fs(n: int, seed: int, source: str, sign: float = 1.0, domain: str = "", systems: bool = False) -> FeatureSet:
    """Separable on the first columns; `sign=-1` inverts the class signal (a domain where models are inverted)."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 2).astype(np.int8)
    X = rng.standard_normal((n, 12)) * 2.0 + 5.0
    X[:, :3] += sign * 1.2 * y[:, None] * 2.0
    system = [("A01" if i % 4 == 1 else "A02") if y[i] == 1 else "-" for i in range(n)] if systems else []
    return FeatureSet(
        X=X.astype(np.float32),
        y=y,
        utt_id=[f"{source.split('.')[0]}_{i:04d}" for i in range(n)],
        feature_names=[f"{g.name.lower()}_{i:02d}" for g in GROUPS for i in range(g.stop - g.start)],
        groups=list(GROUPS),
        system=system,
        domain=[domain] * n if domain else [],
        source=source,
    )


def build_study(root: Path, full: bool = True) -> dict[str, Path]:
    """Real artifacts in `root` through the library APIs; returns named paths."""
    from dfdet.artifact import load_model, save_result
    from dfdet.calibration import apply_calibration, fit_calibration, p_spoof_from_llr, save_calibration
    from dfdet.scores import ScoreTable, write_scores
    from dfdet.scoring import load_detector, score_store
    from dfdet.training import history_path_for, make_config, train_model, write_history

    paths: dict[str, Path] = {}
    train = make_fs(200, 0, "lab_train.h5", systems=True)
    lab_test = make_fs(120, 1, "lab_test.h5", systems=True)
    wild_cal = make_fs(80, 2, "wild_cal.h5", sign=-1.0, domain="wild")
    wild_test = make_fs(80, 3, "wild_test.h5", sign=-1.0, domain="wild")
    (root / "models").mkdir(parents=True)
    (root / "scores").mkdir()
    runs = [("sgd", "default", "sgd"), ("adam", "default", "adam")]
    if full:
        runs += [("adam.seed", "seed", "adam"), ("sam", "default", "sam")]
    for name, protocol, opt in runs:
        over = {"epochs": 3, "batch_size": 64} if protocol == "default" else {"epochs": 4}
        cfg = make_config(protocol, model="mlp", optimizer=opt, **over)
        res = train_model(train, config=cfg, test_fs=lab_test)
        mp = root / "models" / f"{name}.pt"
        save_result(mp, res)
        write_history(history_path_for(mp), res.history)
        paths[name] = mp
        det = load_detector(mp)
        sets = ((lab_test, "lab_test"), (wild_test, "wild_test"), (wild_cal, "wild_cal"))
        for fs, tag in sets if name in ("sgd", "adam") else sets[:1]:
            table, _ = score_store(det, fs)
            sp = root / "scores" / f"{name}.{tag}.tsv"
            write_scores(sp, table)
            paths[f"{name}.{tag}"] = sp
    from dfdet.scores import read_scores

    # calibration on the wild calibration slice; applied to the disjoint wild test slice and (in-sample) to itself
    cal_table = read_scores(paths["adam.wild_cal"])
    doc = fit_calibration(cal_table.score, cal_table.label, "logistic", "bayes", source="adam.wild_cal.tsv")
    (root / "cal").mkdir()
    cp = root / "cal" / "adam.wild.cal.json"
    save_calibration(cp, doc, detector=paths["adam"])
    paths["cal"] = cp
    for tag in ("wild_test", "wild_cal"):
        t = read_scores(paths[f"adam.{tag}"])
        llr, dec = apply_calibration(doc, t.score)
        out = ScoreTable(
            t.utt_id,
            llr,
            p_spoof=p_spoof_from_llr(llr),
            decision=dec,
            label=t.label,
            extra={**t.extra, "raw_score": [repr(float(v)) for v in t.score]},
        )
        p = root / "scores" / f"adam.{tag}.calibrated.tsv"
        write_scores(p, out)
        paths[f"adam.{tag}.calibrated"] = p
    if not full:
        return paths
    # ensemble of sgd + adam fitted on the wild calibration slice (out-of-fold and in-sample), applied to wild test
    from dfdet import fusion
    from dfdet.jsonio import write_json

    ep = root / "ensemble.json"
    tabs = [read_scores(paths[f"{m}.wild_cal"]) for m in ("sgd", "adam")]
    ids, S, y = fusion.join_members(tabs, ["sgd", "adam"])
    members = [fusion.score_member(m, paths[f"{m}.wild_cal"], ep) for m in ("sgd", "adam")]
    edoc, _, _ = fusion.build_ensemble_document(
        S, y, members, "auc2", cv=3, in_sample=True, sources=["sgd.wild_cal.tsv", "adam.wild_cal.tsv"]
    )
    write_json(ep, edoc)
    paths["ensemble"] = ep
    tt = [read_scores(paths[f"{m}.wild_test"]) for m in ("sgd", "adam")]
    tids, St, yt = fusion.join_members(tt, ["sgd", "adam"])
    fused, fdec = fusion.apply_ensemble(edoc, St)
    fp = root / "scores" / "ensemble.wild_test.tsv"
    write_scores(fp, ScoreTable(tids, fused, decision=fdec, label=yt, extra={"domain": ["wild"] * len(tids)}))
    paths["ensemble.wild_test"] = fp
    # loss landscape, attribution, shortcut scan, attacks
    from dfdet.jsonio import plain as to_json_safe
    from dfdet.landscape import measure_landscape
    from dfdet.provenance import file_hash, provenance

    (root / "analysis").mkdir()
    for name in ("sgd", "adam"):
        land = measure_landscape(
            load_model(paths[name]), train, max_rows=80, n_directions=1, alphas=np.linspace(-1, 1, 5),
            power_iters=4, interpolation_points=4, show_progress=False,
        )  # fmt: skip
        land["provenance"] = provenance(model=str(paths[name]), model_hash=file_hash(paths[name]))
        lp = root / "analysis" / f"{name}.landscape.json"
        lp.write_text(json.dumps(to_json_safe(land)))
        paths[f"{name}.landscape"] = lp
    from dfdet.attacks import attack_sweep, load_diff_detector
    from dfdet.explain import ExplainOptions, explain
    from dfdet.shortcuts import shortcut_scan

    inputs = {"detector": {"path": str(paths["adam"])}, "features": {"path": "lab_test.h5"}}
    det = load_diff_detector(paths["adam"])
    opts = ExplainOptions(("saliency", "ig"), n_steps=4, feature_names=lab_test.feature_names, groups=lab_test.groups)
    summary, _ = explain(det, lab_test.X, lab_test.y, opts)
    summary["provenance"] = provenance(command="explain", inputs=inputs)
    xp = root / "analysis" / "adam.explain.json"
    xp.write_text(json.dumps(to_json_safe(summary)))
    scan = shortcut_scan(train)
    scan["provenance"] = provenance(command="explain --shortcuts", inputs={"features": {"path": "lab_train.h5"}})
    sp = root / "analysis" / "shortcuts.json"
    sp.write_text(json.dumps(to_json_safe(scan)))
    for name in ("adam", "sam"):
        d = load_diff_detector(paths[name])
        for method in ("fgsm", "pgd"):
            res = attack_sweep(d, lab_test.X, lab_test.y, [0.0, 0.1, 0.3], method=method, steps=3)
            res["detector"] = str(paths[name])
            res["schema"] = "dfdet.attack/1"
            res["detector_kind"] = d.kind
            res["provenance"] = provenance(command=f"attack --method {method}", inputs=inputs)
            ap = root / "analysis" / f"{name}.{method}.attack.json"
            ap.write_text(json.dumps(to_json_safe(res)))
    return paths


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("study")
    build_study(root)
    (root / "notes.log").write_text("not an artifact\n")
    return root


@pytest.fixture(scope="module")
def built(study, tmp_path_factory):
    from dfdet.report import build_report

    out = tmp_path_factory.mktemp("report") / "rep"
    res = build_report([study], out, title="Tiny study", n_boot=200)
    return res, out


SNAKE = re.compile(r"[a-z0-9]_[a-z0-9]")


class Outline(HTMLParser):
    """The page's top-level blocks in order (tag, id, text) and every table (caption, header, rows, cell classes,
    whether it sits inside <details>)."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.blocks: list[dict[str, str]] = []
        self.tables: list[dict] = []
        self._cell: dict | None = None

    @classmethod
    def of(cls, page: str) -> Outline:
        o = cls()
        o.feed(page)
        return o

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if self.stack == ["html", "body"]:
            self.blocks.append({"tag": tag, "id": a.get("id") or "", "text": ""})
        if tag == "table":
            self.tables.append(
                {"caption": "", "head": [], "rows": [], "classes": [], "folded": "details" in self.stack}
            )
        elif tag == "tr" and self.tables:
            self.tables[-1]["rows"].append([])
            self.tables[-1]["classes"].append([])
        elif tag in ("td", "th", "caption"):
            self._cell = {"tag": tag, "text": "", "class": a.get("class") or ""}
        if tag not in ("meta", "img", "br"):
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if self._cell is not None and tag == self._cell["tag"]:
            t, c = self.tables[-1], self._cell
            if tag == "caption":
                t["caption"] = c["text"]
            elif tag == "th":
                t["head"].append(c["text"])
            else:
                t["rows"][-1].append(c["text"])
                t["classes"][-1].append(c["class"])
            self._cell = None
        if tag == "table":  # drop the header row's empty body entry
            t = self.tables[-1]
            keep = [i for i, r in enumerate(t["rows"]) if r]
            t["rows"], t["classes"] = [t["rows"][i] for i in keep], [t["classes"][i] for i in keep]
        while self.stack and self.stack.pop() != tag:
            pass

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data
        if len(self.stack) > 2 and self.blocks and self.stack[:2] == ["html", "body"]:
            self.blocks[-1]["text"] += data


def _images(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


def test_every_section_present_with_content(built):
    res, out = built
    page = (out / "index.html").read_text(encoding="utf-8")
    summary = res["summary"]
    for sid, title in SECTION_TITLES.items():
        assert f'<section id="{sid}"><h2>{title}</h2>' in page
        assert summary["sections"][sid]["status"] == "ok", (sid, summary["sections"][sid].get("note"))
    assert "Skipped:" not in page
    assert "What was measured on what data" in page


def _pct(v: float) -> str:
    return f"{100 * v:.2f}\xa0%"


def test_summary_comes_first_with_the_headline_figures(built, study):
    res, out = built
    page = (out / "index.html").read_text(encoding="utf-8")
    o = Outline.of(page)
    order = [(b["tag"], b["id"]) for b in o.blocks]
    # title, then the summary; the data statement, the sections and the provenance only after it
    assert order[:3] == [("h1", ""), ("section", "summary"), ("details", "data-statement")]
    assert order.index(("section", "provenance")) > order.index(("section", "evaluation")) > 1
    text = o.blocks[1]["text"]
    assert "sha256" not in text and "argv" not in text and len(text) < 3000  # results and warnings, one screen
    # its headline figures: the lowest held-out EER in and out of domain, with the interval of the same file
    results = res["summary"]["sections"]["evaluation"]["results"]
    (table,) = [t for t in o.tables if t["caption"].startswith("Lowest EER among the held-out")]
    assert table["head"][:5] == ["headline", "EER", "EER 95\xa0% CI", "AUC", "system"]
    for what, ood in (("in-domain", False), ("out-of-domain", True)):
        held = [r for r in results if r["out_of_domain"] is ood and not r["role"].startswith("in-sample")]
        best = min(held, key=lambda r: (r["eer"], r["name"]))
        (row,) = [r for r in table["rows"] if r[0] == f"best {what} EER"]
        lo, hi = best["ci"]["eer"]
        assert row[1:3] == [_pct(best["eer"]), f"[{100 * lo:.2f}, {100 * hi:.2f}]\xa0%"]
        assert best["file"].endswith(row[5].split(" (")[0])
    head = res["summary"]["headline"]
    assert [h["what"] for h in head["headline"]] == ["in-domain", "out-of-domain"]
    # warnings: the models inverted on the wild domain; shortcut features exactly when the scan flagged some
    assert "Inverted: sgd ranks spoof above bona fide (AUC < 0.5) on wild" in text
    scan = json.loads((study / "analysis" / "shortcuts.json").read_text())
    assert ("Shortcut features (shortcuts.json)" in text) == bool(scan["n_flagged"])
    assert (out / "summary.md").read_text().split("\n## ")[1].startswith("Summary")


def test_provenance_and_data_statement_are_folded(built):
    _, out = built
    page = (out / "index.html").read_text(encoding="utf-8")
    o = Outline.of(page)
    prov = [t for t in o.tables if t["caption"].startswith(("Every input artifact", "Versions recorded"))]
    assert len(prov) == 2 and all(t["folded"] for t in prov)
    assert '<details class="statement" id="data-statement"><summary>What was measured on what data</summary>' in page
    assert not any(t["folded"] for t in o.tables if not t["caption"].startswith(("Every input", "Versions")))


def test_numbers_stay_on_one_line(built):
    from dfdet.report.html import is_numeric

    _, out = built
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "td.n{white-space:nowrap}" in page
    cells = [
        (c, k)
        for t in Outline.of(page).tables
        for row, cls in zip(t["rows"], t["classes"], strict=True)
        for c, k in zip(row, cls, strict=True)
    ]
    pcts = [k for c, k in cells if re.fullmatch(r"-?\d+\.\d+\xa0%", c)]
    cis = [k for c, k in cells if re.fullmatch(r"\[[-\d.]+, [-\d.]+\]\xa0%", c)]
    assert len(pcts) > 20 and len(cis) > 3 and set(pcts + cis) == {"n"}
    assert not any(re.search(r"[\d\]] %", c) for c, _ in cells)  # never a breakable space before a unit
    assert all(map(is_numeric, ["40.00 %", "[0.10, 0.20] %", "5/5", "-", "0.3 ± 0.1 (n=3)", "1e-05", "-inf"]))
    assert not any(map(is_numeric, ["adam.lab_test", "0.7266 (decision column)", "lab", "FGSM (linf)"]))


def test_summary_warns_about_synthetic_data_shortcuts_and_inverted_members(tmp_path):
    from dfdet.report.artifacts import Artifact, Inputs
    from dfdet.report.context import Options, prepare
    from dfdet.report.headline import headline_section

    synthetic = {"synthetic": True, "corpus": {"name": "dfdet demo corpus", "synthetic": True}}
    real = {"synthetic": False, "corpus": None}

    def model(name, domain):
        doc = {"training": {"optimizer": name}, "data": {"train": {"source": "x/lab_train.h5"}}}
        if domain is not None:
            doc["data"]["training_domain"] = domain
        return Artifact("model", tmp_path / f"{name}.pt", doc=doc, name=name)

    scan = {
        "features": [{}] * 10,
        "n_flagged": 1,
        "flagged": [{"index": 3, "name": "lps_mean_03", "auc": 0.02}],
        "by_system": {"A01": {"n_flagged": 2}, "A02": {"n_flagged": 0}},
    }
    ens = {"method": "auc2", "members": [{"name": "adam"}, {"name": "sgd"}], "inverted_members": ["adam"],
           "flipped_members": ["adam"]}  # fmt: skip
    items = [
        model("adam", synthetic),
        model("sgd", synthetic),
        model("rmsprop", real),
        model("sam", None),
        Artifact("shortcuts", tmp_path / "shortcuts.json", doc=scan),
        Artifact("ensemble", tmp_path / "ens.json", doc=ens),
    ]
    head = headline_section(prepare(Inputs(items=items), Options(n_boot=0)), [])
    w = head.data["warnings"]
    assert w[0].startswith("Synthetic training data: adam, sgd trained on dfdet demo corpus (synthetic audio)")
    assert sum("Synthetic" in x for x in w) == 1
    assert any("1 of 10 features" in x and "lps_mean_03, AUC 0.02" in x for x in w)
    assert any("A01: 2 flagged" in x and "A02" not in x for x in w)
    assert [x for x in w if x.startswith("Ensemble ens.json")] == [
        "Ensemble ens.json: member(s) adam inverted on its fitting data (AUC < 0.5), used with a negative weight."
    ]
    assert (
        head.data["headline"] == []
        and "Models: adam, sgd, rmsprop, sam (4; trained on lab_train.h5)." in (head.data["facts"])
    )


def test_every_embedded_image_decodes(built):
    from PIL import Image

    _, out = built
    page = (out / "index.html").read_text(encoding="utf-8")
    images = _images(page)
    assert len(images) >= 12
    assert page.count("<img ") == len(images)
    for png in images:
        assert png.startswith(PNG_SIGNATURE)
        with Image.open(io.BytesIO(png)) as im:
            im.verify()
        import matplotlib.image as mpimg

        arr = mpimg.imread(io.BytesIO(png), format="png")
        assert arr.ndim == 3 and arr.shape[0] > 100 and arr.shape[1] > 100


def test_no_external_references(built):
    _, out = built
    page = (out / "index.html").read_text(encoding="utf-8")
    for attr in re.findall(r'(?:src|href)="([^"]*)"', page):
        assert "http" not in attr and not attr.startswith("//")
        assert attr.startswith("data:image/png;base64,") or attr.startswith("#")
    assert "<script" not in page.lower()
    assert "<link" not in page.lower()
    assert "@import" not in page


def test_summary_json_keys_and_numbers(built, study):
    from dfdet.metrics import eer, roc_auc
    from dfdet.scores import read_scores

    res, out = built
    summary = json.loads((out / "summary.json").read_text())
    assert summary["schema"] == "dfdet.report/1"
    assert set(summary["sections"]) == set(SECTION_TITLES)
    assert {"title", "data_statement", "inputs", "provenance", "settings"} <= set(summary)
    kinds = {i["kind"] for i in summary["inputs"]}
    assert {"model", "scores", "calibration", "ensemble", "landscape", "explain", "shortcuts", "attack"} <= kinds
    # the reported EER/AUC of a score file equal the metrics recomputed from the file itself
    ev = {r["name"]: r for r in summary["sections"]["evaluation"]["results"]}
    t = read_scores(study / "scores" / "sgd.lab_test.tsv")
    row = ev["sgd.lab_test"]
    assert row["eer"] == pytest.approx(eer(t.score, t.label)[0])
    assert row["roc_auc"] == pytest.approx(roc_auc(t.score, t.label))
    lo, hi = row["ci"]["eer"]
    assert lo <= row["eer"] <= hi
    assert row["fitted_on"].startswith("model sgd trained on lab_train.h5")
    # optimizer table joins the landscape of the same model
    models = {m["model"]: m for m in summary["sections"]["optimizers"]["models"]}
    land = json.loads((study / "analysis" / "adam.landscape.json").read_text())
    assert models["adam"]["top_hessian_eigenvalue"] == pytest.approx(land["top_eigenvalue"])
    assert models["adam.seed"]["protocol"] == "seed"
    assert models["sam"]["variant"] == "sam"
    assert (out / "summary.md").read_text().startswith("# Tiny study")


def test_both_protocols_per_optimizer(built):
    res, _ = built
    agg = res["summary"]["sections"]["optimizers"]["by_optimizer_protocol"]
    keys = {(a["optimizer"], a["protocol"]) for a in agg}
    assert {("adam", "default"), ("adam", "seed"), ("sgd", "default")} <= keys


def test_domain_shift_flags_inverted_models(built):
    res, _ = built
    dom = res["summary"]["sections"]["domain"]
    assert dom["domains"][0] == "lab" and "wild" in dom["domains"]
    # the wild features invert the class signal: models trained on lab rank spoof above bona fide there
    assert "sgd" in dom["inverted"] and "adam" in dom["inverted"]
    for s in dom["systems"]:
        if s["system"] in dom["inverted"]:
            assert s["domains"]["wild"]["roc_auc"] < 0.5


def test_in_sample_numbers_are_labelled(built):
    res, out = built
    ev = {r["name"]: r for r in res["summary"]["sections"]["evaluation"]["results"]}
    assert ev["adam.wild_cal.calibrated"]["role"].startswith("in-sample (optimistic)")
    assert ev["adam.wild_test.calibrated"]["role"] == "evaluation"
    assert ev["adam.wild_test.calibrated"]["domain"] == "wild"
    dom = res["summary"]["sections"]["domain"]
    assert all("wild_cal.calibrated" not in d.get("file", "") for s in dom["systems"] for d in s["domains"].values())
    ens = res["summary"]["sections"]["ensemble"]["ensembles"][0]
    assert ens["out_of_fold"] is not None and ens["in_sample_optimistic"] is not None
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "in-sample (optimistic) [optimistic]" in page or "[optimistic]" in page


def test_missing_inputs_give_one_line_skip_notes(study, tmp_path):
    from dfdet.report import build_report

    res = build_report([study / "scores" / "sgd.lab_test.tsv"], tmp_path / "r", n_boot=0)
    secs = res["summary"]["sections"]
    assert secs["evaluation"]["status"] == "ok"
    for sid in ("optimizers", "calibration", "domain", "ensemble", "explainability", "robustness"):
        assert secs[sid]["status"] == "skipped"
        note = secs[sid]["note"]
        assert note and "\n" not in note
    page = (tmp_path / "r" / "index.html").read_text(encoding="utf-8")
    assert page.count('<p class="skip">Skipped: ') == 6
    assert "no model files (.pt written by dfdet train) among the inputs." in page


def test_detect_artifact_by_content(study, tmp_path):
    from dfdet.report import detect_artifact

    assert detect_artifact(study / "models" / "adam.pt") == "model"
    assert detect_artifact(study / "models" / "adam.history.jsonl") == "history"
    assert detect_artifact(study / "scores" / "adam.lab_test.tsv") == "scores"
    renamed = {
        "a.json": "cal/adam.wild.cal.json",
        "b.json": "ensemble.json",
        "c.json": "analysis/adam.landscape.json",
        "d.json": "analysis/adam.explain.json",
        "e.json": "analysis/shortcuts.json",
        "f.json": "analysis/adam.fgsm.attack.json",
    }
    expect = dict(zip(renamed, ["calibration", "ensemble", "landscape", "explain", "shortcuts", "attack"], strict=True))
    for new, old in renamed.items():
        (tmp_path / new).write_bytes((study / old).read_bytes())
        assert detect_artifact(tmp_path / new) == expect[new]
    (tmp_path / "x.json").write_text('{"hello": 1}')
    (tmp_path / "x.pt").write_bytes(b"garbage")
    (tmp_path / "x.tsv").write_text("a\tb\n1\t2\n")
    assert detect_artifact(tmp_path / "x.json") is None
    assert detect_artifact(tmp_path / "x.pt") is None
    assert detect_artifact(tmp_path / "x.tsv") is None


def test_domain_option_and_column(study, tmp_path):
    from dfdet.report.artifacts import collect

    found = collect([study / "scores"], domains=[("studio", "*lab_test*")])
    tags = {a.path.name: (a.domain, a.domain_source) for a in found.scores}
    assert tags["sgd.lab_test.tsv"] == ("studio", "--domain studio=*lab_test*")
    assert tags["sgd.wild_test.tsv"] == ("wild", "domain column")
    assert tags["ensemble.wild_test.tsv"][0] == "wild"


def test_bad_explicit_input_is_an_error_or_skipped(study, tmp_path):
    from dfdet.errors import InputError
    from dfdet.report import build_report

    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(InputError, match="broken.pt"):
        build_report([bad, study / "scores" / "sgd.lab_test.tsv"], tmp_path / "r", n_boot=0)
    assert not (tmp_path / "r" / "index.html").exists()
    warned = []
    res = build_report([bad, study / "scores" / "sgd.lab_test.tsv"], tmp_path / "r", n_boot=0, skip_bad=True,
                       warn=warned.append)  # fmt: skip
    assert len(warned) == 1 and "broken.pt" in warned[0]
    assert res["summary"]["sections"]["provenance"]["bad"][0]["path"].endswith("broken.pt")


def test_atomic_output_keeps_old_report_on_failure(study, tmp_path, monkeypatch):
    from dfdet.report import build_report, html

    out = tmp_path / "r"
    build_report([study / "scores" / "sgd.lab_test.tsv"], out, title="first", n_boot=0)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(html, "render_markdown", boom)
    with pytest.raises(RuntimeError):
        build_report([study / "scores" / "sgd.lab_test.tsv"], out, title="second", n_boot=0)
    after = {p.name: p.read_bytes() for p in out.iterdir()}
    assert after == before  # no temp files left, old report intact
    monkeypatch.undo()

    real = Path.write_text
    calls = []

    def fail_on_html(self, *a, **k):
        calls.append(self.name)
        if len(calls) == 3:
            raise OSError("disk full")
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "write_text", fail_on_html)
    with pytest.raises(OSError):
        build_report([study / "scores" / "sgd.lab_test.tsv"], out, title="third", n_boot=0)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_same_inputs_same_figures(study, tmp_path):
    from dfdet.report import build_report

    files = [study / "scores" / "sgd.lab_test.tsv"]
    a = build_report(files, tmp_path / "a", n_boot=20)
    b = build_report(files, tmp_path / "b", n_boot=20)
    pa = (tmp_path / "a" / "index.html").read_text()
    pb = (tmp_path / "b" / "index.html").read_text()
    assert _images(pa) == _images(pb)
    assert a["summary"]["sections"]["evaluation"] == b["summary"]["sections"]["evaluation"]


def test_palette_is_fixed_per_optimizer():
    from dfdet.report.figures import PALETTE, colour

    for name in ("sgd", "adam", "adamw", "rmsprop", "sam", "ensemble"):
        assert colour(name) == PALETTE[name]
    assert len({PALETTE[n] for n in ("sgd", "adam", "adamw", "rmsprop", "sam", "ensemble")}) == 6
    assert colour("something-else") == colour("something-else")


def test_calibration_applied_to_its_models_held_out_scores(built):
    res, _ = built
    cal = res["summary"]["sections"]["calibration"]
    applied = {e["scores"]: e for e in cal["evaluated"] if e.get("calibration")}
    # fitted on adam.wild_cal: applied to adam's other raw score files (not to its own fitting data, and not to
    # adam.wild_test, whose calibrated version is an input already)
    assert set(applied) == {"adam.lab_test"}
    files = {e["name"]: e for e in cal["evaluated"] if not e.get("calibration")}
    assert files["adam.wild_test.calibrated"]["role"] == "evaluation"
    assert files["adam.wild_cal.calibrated"]["role"].startswith("in-sample")
    assert all(e["role"] == "evaluation" for e in applied.values())
    assert cal["calibrations"][0]["measured_on"] == "fitting data (in-sample)"
    for e in applied.values():
        assert e["cllr"] >= e["min_cllr"] - 1e-9


def test_ensemble_output_identified_by_content(built, study, tmp_path):
    from dfdet.report.artifacts import collect
    from dfdet.report.context import identify_ensemble

    res, _ = built
    ev = {r["name"]: r for r in res["summary"]["sections"]["evaluation"]["results"]}
    assert ev["ensemble.wild_test"]["fitted_on"].startswith("ensemble ensemble.json fitted on sgd.wild_cal.tsv")
    # a renamed copy is still recognised: the fused scores are recomputed from the member files
    (tmp_path / "fused_output.tsv").write_bytes((study / "scores" / "ensemble.wild_test.tsv").read_bytes())
    found = collect([study / "scores", study / "ensemble.json", tmp_path / "fused_output.tsv"])
    arts = {a.path.name: a for a in found.scores}
    assert identify_ensemble(found, arts["fused_output.tsv"]).path.name == "ensemble.json"
    assert identify_ensemble(found, arts["sgd.wild_test.tsv"]) is None


def test_scores_on_a_models_own_validation_data_are_in_sample(study):
    from dfdet.report.artifacts import Artifact, model_info
    from dfdet.report.artifacts import load_artifact as load
    from dfdet.report.context import own_data_role

    m = model_info(load(study / "models" / "sgd.pt", "model"))
    assert own_data_role(Artifact("scores", Path("s/sgd.lab_train.tsv")), m) == "training data"
    m["data"]["val"]["source"] = "split/lab_val.h5"
    assert own_data_role(Artifact("scores", Path("s/sgd.lab_val.tsv")), m).startswith("validation data")
    assert own_data_role(Artifact("scores", Path("s/sgd.lab_test.tsv")), m) == ""


def test_degradation_table_from_a_degrade_document(tmp_path):
    """A document in the layout of dfdet.robustness.degradation_report (written by hand: two conditions)."""
    from dfdet.report import build_report, detect_artifact

    doc = {
        "detector": "models/adam.pt",
        "kind": "model",
        "threshold": 0.1,
        "seed": 42,
        "inputs": 4,
        "inputs_scored": 4,
        "n_bonafide": 2,
        "n_spoof": 2,
        "conditions": [
            {"condition": "clean", "description": "reference", "n_failed": 0, "accuracy": 1.0, "eer": 0.0, "auc": 1.0},
            {"condition": "white_snr0", "description": "noise", "n_failed": 0, "accuracy": 0.5, "eer": 0.5, "auc": 0.5},
        ],
        "provenance": {"inputs": {"labels": {"path": "corpus/lab.csv", "hash": "abc"}}},
    }
    p = tmp_path / "in" / "x.json"
    p.parent.mkdir()
    p.write_text(json.dumps(doc))
    assert detect_artifact(p) == "degrade"
    res = build_report([p.parent], tmp_path / "r", n_boot=0)
    rob = res["summary"]["sections"]["robustness"]
    assert rob["status"] == "ok"
    assert [c["condition"] for c in rob["degradation"][0]["conditions"]] == ["clean", "white_snr0"]
    assert rob["degradation"][0]["model"] == "adam"
    md = (tmp_path / "r" / "summary.md").read_text()
    assert "| white noise 0 dB SNR | 0 | 50.00 % | 50.00 % | 0.5 |" in md
    page = (tmp_path / "r" / "index.html").read_text()
    assert len(_images(page)) == 1
    # human headers and condition labels: no snake_case name anywhere in the table
    (table,) = [t for t in Outline.of(page).tables if t["caption"].startswith("Real-signal degradations")]
    assert table["head"] == ["condition", "failed files", "accuracy", "EER", "AUC"]
    assert [r[0] for r in table["rows"]] == ["clean (reference)", "white noise 0\xa0dB SNR"]
    assert not any(SNAKE.search(c) for c in table["head"] + [r[0] for r in table["rows"]])
    # the summary names the worst condition by its label
    assert "Worst real-signal degradation for adam: white noise 0 dB SNR, EER 50.00 % (clean: 0.00 %)." in md


def test_every_degradation_condition_has_a_human_label():
    from dfdet.degrade import CONDITIONS
    from dfdet.report.labels import column_label, condition_label

    labels = [condition_label(name) for name in CONDITIONS]
    assert not any(SNAKE.search(lab) for lab in labels) and len(set(labels)) == len(labels)
    assert condition_label("white_snr10") == "white noise 10 dB SNR"
    assert condition_label("noise_snr10") == "noise 10 dB SNR"
    assert condition_label("reverb_rt60", "room reverberation") == "room reverberation"  # unknown: its description
    assert column_label("flip_rate_vs_clean") == "decisions changed vs clean"
    assert column_label("new_eer_metric") == "new EER metric"


def test_training_variant_from_the_training_configuration(tmp_path):
    from dfdet.report.artifacts import Artifact, model_info

    def variant(training):
        return model_info(Artifact("model", tmp_path / "m.pt", doc={"training": training}))["variant"]

    assert variant({"optimizer": "adam"}) == "plain"
    assert variant({"optimizer": "sam"}) == "sam"
    assert variant({"optimizer": "adamw", "adversarial": {"method": "fgsm", "eps": 0.1}}) == "adversarial"
    assert variant({"optimizer": "adamw", "adversarial": None}) == "plain"


def test_score_file_matched_to_its_model_by_the_sidecar(runner, study, tmp_path):
    """`dfdet score -o` records the detector's content hash beside the score file; the report matches the file to
    that model even when the name mentions no model, or the wrong one, and falls back to the name otherwise."""
    import shutil

    from dfdet.cli import cli
    from dfdet.report.artifacts import SIDECAR_KIND, collect, detect_artifact, match_model
    from dfdet.scores import sidecar_path
    from dfdet.store import write_features

    store = tmp_path / "eval.h5"
    write_features(store, make_fs(40, 7, "eval.h5"))
    scores = tmp_path / "scores"
    for model, out in (("adam", "adam_run.tsv"), ("adam", "sgd.eval.tsv"), ("sgd", "sgd.stale.tsv")):
        r = runner.invoke(cli, ["score", str(study / "models" / f"{model}.pt"), str(store), "-o", str(scores / out)])
        assert r.exit_code == 0, r.stderr
    # renamed together with its sidecar: the name no longer says which model
    (scores / "adam_run.tsv").rename(scores / "eval_scores.tsv")
    sidecar_path(scores / "adam_run.tsv").rename(sidecar_path(scores / "eval_scores.tsv"))
    # a sidecar that describes other content (adam's, beside sgd's scores) is ignored: matched by name
    shutil.copy(sidecar_path(scores / "eval_scores.tsv"), sidecar_path(scores / "sgd.stale.tsv"))
    # the same scores without a sidecar: nothing in the name to match
    (tmp_path / "bare").mkdir()
    shutil.copy(scores / "eval_scores.tsv", tmp_path / "bare" / "eval_scores.tsv")

    assert detect_artifact(sidecar_path(scores / "eval_scores.tsv")) == SIDECAR_KIND
    found = collect([study / "models", scores, tmp_path / "bare"])
    assert len(found.models) == 4 and not any(a.path.name.endswith(".prov.json") for a in found.items)
    assert found.skipped == []  # every sidecar went with its score file
    arts = {(a.path.parent.name, a.path.name): a for a in found.scores}
    renamed = arts["scores", "eval_scores.tsv"]
    assert (renamed.model, renamed.model_source) == ("adam", "sidecar")
    assert renamed.doc["provenance"]["command"] == "score"  # attached: the provenance section shows how it was made
    assert match_model(arts["scores", "sgd.eval.tsv"], found.models) == "adam"  # content beats the name
    stale = arts["scores", "sgd.stale.tsv"]
    assert (stale.model, stale.model_source) == ("sgd", "name") and stale.doc == {}
    assert "does not describe this file" in stale.notes[0]
    assert match_model(arts["bare", "eval_scores.tsv"], found.models) == ""

    # a sidecar named without its score file is listed as ignored, not mistaken for a JSON artifact
    lone = collect([study / "models", sidecar_path(scores / "eval_scores.tsv")])
    assert lone.scores == [] and lone.skipped[0][0].endswith("eval_scores.tsv.prov.json")


def test_calibrated_and_fused_score_files_match_by_their_sidecars(runner, study, tmp_path):
    """`calibrate --apply` and `ensemble --apply` write sidecars too: scores calibrated over one model match that model
    by content; fused scores of several models match none by content (and fall back to the name)."""
    from dfdet.cli import cli
    from dfdet.report.artifacts import collect
    from dfdet.store import write_features

    store = tmp_path / "eval.h5"
    write_features(store, make_fs(40, 7, "eval.h5"))
    raw, fits, out = tmp_path / "raw", tmp_path / "fits", tmp_path / "out"
    for model in ("adam", "sgd"):
        r = runner.invoke(
            cli, ["score", str(study / "models" / f"{model}.pt"), str(store), "-o", str(raw / f"r_{model}.tsv")]
        )
        assert r.exit_code == 0, r.stderr
    steps = [
        ["calibrate", str(raw / "r_adam.tsv"), "-o", str(fits / "cal.json")],
        ["calibrate", "--apply", str(fits / "cal.json"), str(raw / "r_adam.tsv"), "-o", str(out / "calibrated.tsv")],
        ["ensemble", "--scores", str(raw / "r_adam.tsv"), "--scores", str(raw / "r_sgd.tsv"), "--cv", "2", "-o",
         str(fits / "ens.json")],
        ["ensemble", "--apply", str(fits / "ens.json"), "--scores", str(raw / "r_adam.tsv"), "--scores",
         str(raw / "r_sgd.tsv"), "-o", str(out / "fused.tsv")],
    ]  # fmt: skip
    for argv in steps:
        r = runner.invoke(cli, argv)
        assert r.exit_code == 0, r.stderr
    found = collect([study / "models", out])
    arts = {a.path.name: a for a in found.scores}
    assert found.skipped == []
    cal = arts["calibrated.tsv"]
    assert (cal.model, cal.model_source) == ("adam", "sidecar") and cal.doc["detector"]["kind"] == "calibration"
    fused = arts["fused.tsv"]
    assert (fused.model, fused.model_source) == ("", "") and fused.doc["detector"]["kind"] == "ensemble"


def test_scores_of_an_ensemble_name_that_ensemble_by_their_sidecar(runner, study, tmp_path):
    """Two model ensembles fitted on different data: `dfdet score ENS.json -o` output named after neither is
    attributed to the ensemble that made it (by the content hash in its sidecar), with that one's fitting data only."""
    from dfdet.cli import cli
    from dfdet.report import build_report
    from dfdet.store import write_features

    for name, seed in (("fit_a.h5", 11), ("fit_b.h5", 12), ("eval.h5", 13)):
        write_features(tmp_path / name, make_fs(40, seed, name))
    models = [a for m in ("sgd", "adam") for a in ("--model", str(study / "models" / f"{m}.pt"))]
    for ens, fit in (("ens_a.json", "fit_a.h5"), ("ens_b.json", "fit_b.h5")):
        r = runner.invoke(cli, ["ensemble", *models, "--on", str(tmp_path / fit), "-o", str(tmp_path / "ens" / ens)])
        assert r.exit_code == 0, r.stderr
    out = tmp_path / "scores" / "fused.tsv"
    r = runner.invoke(cli, ["score", str(tmp_path / "ens" / "ens_b.json"), str(tmp_path / "eval.h5"), "-o", str(out)])
    assert r.exit_code == 0, r.stderr

    res = build_report([study / "models", tmp_path / "ens", out], tmp_path / "rep", title="t", n_boot=50)
    rows = {row["name"]: row for row in res["summary"]["sections"]["evaluation"]["results"]}
    fitted_on = rows["fused"]["fitted_on"]
    assert fitted_on.startswith("ensemble ens_b.json fitted on") and "fit_b.h5" in fitted_on
    assert "fit_a.h5" not in fitted_on


def test_segments_file_gets_a_score_over_time_figure(runner, study, tmp_path, tmp_path_factory):
    """A `dfdet score --segments` TSV (a partial fake and a bona fide clip) is recognised by its header and drawn,
    one panel per file; the table names each file's lowest window, on the splice for the partial fake."""
    import soundfile as sf

    from dfdet.cli import cli
    from dfdet.report import build_report, detect_artifact
    from tests.test_segments import SR, build_detectors, resynthesised, syllables

    dets = build_detectors(tmp_path_factory.mktemp("segments"))
    y = syllables(6.0, seed=5)
    y[int(3.0 * SR) : int(4.5 * SR)] = resynthesised(y[int(3.0 * SR) : int(4.5 * SR)])
    (tmp_path / "audio").mkdir()
    sf.write(tmp_path / "audio" / "partial.wav", y, SR, subtype="FLOAT")
    sf.write(tmp_path / "audio" / "real.wav", syllables(4.0, seed=6), SR, subtype="FLOAT")
    seg = tmp_path / "windows.tsv"
    r = runner.invoke(cli, ["score", str(dets.linear), str(tmp_path / "audio"), "--segments", "1", "-o", str(seg)])
    assert r.exit_code == 0, r.stderr
    assert detect_artifact(seg) == "segments"
    assert detect_artifact(study / "scores" / "sgd.lab_test.tsv") == "scores"  # a score file is still one
    res = build_report([seg, study / "scores" / "sgd.lab_test.tsv"], tmp_path / "r", n_boot=0)
    sec = res["summary"]["sections"]["segments"]
    assert sec["status"] == "ok" and [x["utt_id"] for x in sec["results"]] == ["partial", "real"]
    part = sec["results"][0]
    assert part["windows"] == 11 and part["lowest"]["start"] < 4.5 and part["lowest"]["end"] > 3.0
    rows = [ln.split("\t") for ln in seg.read_text().splitlines()[1:] if ln.startswith("partial\t")]
    assert part["lowest"]["score"] == min(float(x[3]) for x in rows)
    page = (tmp_path / "r" / "index.html").read_text(encoding="utf-8")
    assert '<section id="segments"><h2>Score over time</h2>' in page and "windows.tsv: score per window." in page
    assert all(img.startswith(PNG_SIGNATURE) for img in _images(page))
    assert res["summary"]["sections"]["evaluation"]["status"] == "ok"  # the score file beside it is still read
