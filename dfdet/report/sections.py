"""Section builders: each turns the prepared context (dfdet.report.context) into one report section, or a one-line
skip note when its inputs are absent. Builders only format; every number states the data it was fitted on and the
data it was measured on, and numbers measured on their own fitting data are labelled in-sample.
"""

from __future__ import annotations

import contextlib
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from dfdet.report import figures as F
from dfdet.report.artifacts import (
    Artifact,
    contains_tokens,
    table_hash,
)
from dfdet.report.context import (
    Context,
    EvalEntry,
    base_name,
    data_text,
    doc_source,
)
from dfdet.report.crossval import crossval_section
from dfdet.report.document import (
    Bullets,
    Figure,
    Section,
    Table,
    Text,
    ci_num,
    ci_pct,
    mean_sd,
    num,
    pct,
    skipped,
)
from dfdet.report.labels import column_label, condition_label
from dfdet.report.segments import segments_section

MAX_CURVES = 12  # curves per ROC/DET figure and panels per histogram figure


# --------------------------------------------------------------------------------------------------- optimizers
def _final(m: dict[str, Any], ctx: Context | None = None) -> tuple[dict[str, Any], str]:
    """The model's held-out numbers: its recorded test data, else its in-domain score file among the inputs, else
    (labelled so) its validation data."""
    s = m["summary"]
    if s.get("test"):
        return s["test"], "test: " + base_name((m["data"].get("test") or {}).get("source"))
    held_out = [
        e
        for e in (ctx.evals if ctx else [])
        if e.art.model == m["name"] and not e.in_sample and not e.calibrated and e.ood is not True
    ]
    if held_out:
        e = sorted(held_out, key=lambda e: (e.ood is not False, e.label))[0]
        r = e.row
        dec = r.get("decision") or {}
        return {"auc": r.get("roc_auc"), "eer": r.get("eer"), "acc": dec.get("accuracy")}, (
            f"score file {e.art.path.name}" + (f" ({e.domain})" if e.domain else "")
        )
    if s.get("val"):
        return s["val"], "validation (also chose epoch and threshold): " + base_name(
            (m["data"].get("val") or {}).get("source")
        )
    return s.get("train") or {}, "training data (in-sample)"


def _landscapes(ctx: Context) -> dict[str, dict[str, Any]]:
    return {a.model: a.doc for a in ctx.inputs.of("landscape") if a.model}


def optimizer_section(ctx: Context) -> Section:
    sid, title = "optimizers", "Optimizer comparison"
    if not ctx.models:
        return skipped(sid, title, "no model files (.pt written by dfdet train) among the inputs.")
    sec = Section(sid, title)
    runs = []
    for m in ctx.models:
        hist = m["art"].history or []
        runs.append(
            {
                "label": m["label"],
                "optimizer": m["optimizer"] if m["variant"] != "adversarial" else "adversarial",
                "protocol": m["protocol"],
                "epochs": [r for r in hist if r.get("type") == "epoch"],
                "steps": [r for r in hist if r.get("type") == "step"],
            }
        )
    with_hist = [r for r in runs if r["epochs"]]
    if with_hist:
        sec.add(
            Figure(
                F.training_curves(with_hist),
                "Training loss, validation ROC-AUC and EER (on each model's validation data) and learning rate per "
                "epoch; colour = optimizer, dashed = --protocol seed. The training loss is each run's own objective "
                "(BCE by default, focal under --protocol seed): compare its shape, not its level, across protocols.",
            )
        )
    else:
        sec.add(Text("No training histories (MODEL.history.jsonl) beside the models: no curves.", "note"))
    if any(any(s.get("grad_norm") is not None for s in r["steps"]) for r in runs):
        sec.add(
            Figure(
                F.grad_norm_figure([r for r in runs if r["steps"]]),
                "Global L2 norm of the gradient at every optimizer step (training batches), moving average; log scale.",
            )
        )
    lands = _landscapes(ctx)
    rows, data_rows = [], []
    for m in ctx.models:
        fin, where = _final(m, ctx)
        s = m["summary"]
        g = s.get("grad_norm") or {}
        land = lands.get(m["name"]) or {}
        sam = (
            (land.get("sam_sharpness") or {}).get("sharpness") if isinstance(land.get("sam_sharpness"), dict) else None
        )
        rows.append(
            [
                m["name"],
                m["optimizer"],
                m["protocol"],
                num(m["seed"]),
                where,
                num(fin.get("auc")),
                pct(fin.get("eer")),
                pct(fin.get("acc", fin.get("acc_at_0.5"))),
                num(s.get("epochs_run")),
                num(s.get("epochs_to_convergence")),
                num(s.get("best_epoch")),
                num(g.get("mean")),
                num(g.get("std")),
                num(g.get("cv"), 3),
                num(land.get("top_eigenvalue")),
                num(land.get("flat_width"), 3),
                num(sam, 3),
            ]
        )
        data_rows.append(
            {
                "model": m["name"],
                "optimizer": m["optimizer"],
                "protocol": m["protocol"],
                "variant": m["variant"],
                "seed": m["seed"],
                "evaluated_on": where,
                "fitted_on": data_text(m["data"].get("train")),
                "auc": fin.get("auc"),
                "eer": fin.get("eer"),
                "accuracy": fin.get("acc", fin.get("acc_at_0.5")),
                "epochs_run": s.get("epochs_run"),
                "epochs_to_convergence": s.get("epochs_to_convergence"),
                "best_epoch": s.get("best_epoch"),
                "grad_norm_mean": g.get("mean"),
                "grad_norm_std": g.get("std"),
                "grad_norm_cv": g.get("cv"),
                "top_hessian_eigenvalue": land.get("top_eigenvalue"),
                "flat_region_width": land.get("flat_width"),
                "sam_sharpness": sam,
            }
        )
    sec.add(
        Table(
            [
                "model",
                "optimizer",
                "protocol",
                "seed",
                "evaluated on",
                "AUC",
                "EER",
                "accuracy",
                "epochs",
                "epochs to conv.",
                "best epoch",
                "grad norm mean",
                "grad norm std",
                "grad norm CV",
                "top Hessian eig.",
                "flat width",
                "SAM sharpness",
            ],
            rows,
            "Final metrics per model (accuracy at the model's validation-chosen threshold), gradient statistics over "
            "all training steps, and loss-landscape measurements on the training loss.",
        )
    )
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for m, d in zip(ctx.models, data_rows, strict=True):
        groups[(m["optimizer"] if m["variant"] != "adversarial" else m["optimizer"] + "+adv", m["protocol"])].append(d)
    agg = []
    if any(len(v) > 1 for v in groups.values()) or ctx.multi_protocol:
        arows = []
        order = sorted(groups, key=lambda k: (_opt_rank(k[0]), k[1] != "default", k[1]))
        for key in order:
            ds = groups[key]
            a = {
                "optimizer": key[0],
                "protocol": key[1],
                "n_models": len(ds),
                **{
                    f"{k}_values": [d[k] for d in ds]
                    for k in (
                        "auc",
                        "eer",
                        "accuracy",
                        "epochs_to_convergence",
                        "grad_norm_cv",
                        "top_hessian_eigenvalue",
                    )
                },
            }
            agg.append(a)
            arows.append(
                [
                    key[0],
                    key[1],
                    str(len(ds)),
                    mean_sd([d["auc"] for d in ds]),
                    mean_sd([d["eer"] for d in ds], pct),
                    mean_sd([d["accuracy"] for d in ds], pct),
                    mean_sd([d["epochs_to_convergence"] for d in ds], lambda v: f"{v:.1f}"),
                    mean_sd([d["grad_norm_cv"] for d in ds], lambda v: f"{v:.3f}"),
                    mean_sd([d["top_hessian_eigenvalue"] for d in ds]),
                ]
            )
        sec.add(
            Table(
                ["optimizer", "protocol", "models", "AUC", "EER", "accuracy", "epochs to conv.", "grad CV", "top eig."],
                arows,
                "Per optimizer and protocol: mean ± standard deviation over the models (seeds) of each group, each "
                "evaluated on its own held-out data as stated in the table above.",
            )
        )
    defs = {m["summary"].get("convergence_definition") for m in ctx.models} - {None}
    for d in sorted(defs):
        sec.add(Text(f"Definition: {d}", "note"))
    land_items = []
    for a in ctx.inputs.of("landscape"):
        m = ctx.model(a.model)
        land_items.append(
            {
                "label": (m["label"] if m else a.model or a.path.stem),
                "optimizer": m["optimizer"] if m else a.model,
                "protocol": m["protocol"] if m else "default",
                "doc": a.doc,
            }
        )
    if land_items:
        sec.add(
            Figure(
                F.landscape_figure(land_items),
                "Training loss along a filter-normalised random direction around each model's weights (Li et al. "
                "2018) and along the straight line from initial to trained weights; measured on the rows stated in "
                "the data statement.",
            )
        )
        unmatched = [a.path.name for a in ctx.inputs.of("landscape") if not ctx.model(a.model)]
        if unmatched:
            sec.add(Text(f"Landscape files whose model is not among the inputs: {', '.join(unmatched)}.", "note"))
    sec.data = {"status": "ok", "models": data_rows, "by_optimizer_protocol": agg}
    return sec


def _opt_rank(name: str) -> int:
    order = ["sgd", "adam", "adamw", "rmsprop", "sam"]
    base = name.split("+")[0]
    return order.index(base) if base in order else len(order)


# --------------------------------------------------------------------------------------------------- evaluation
def _eval_data(e: EvalEntry) -> dict[str, Any]:
    r = e.row
    dec = r.get("decision") or {}
    return {
        "name": e.label,
        "file": str(e.art.path),
        "domain": e.domain or None,
        "out_of_domain": e.ood,
        "system": e.system,
        "role": e.role,
        "fitted_on": e.fitted_on,
        "evaluated_on": f"{e.art.path.name} ({len(e.table)} rows)",
        "n_bonafide": r.get("n_bonafide"),
        "n_spoof": r.get("n_spoof"),
        "eer": r.get("eer"),
        "roc_auc": r.get("roc_auc"),
        "min_dcf": r.get("min_dcf"),
        "act_dcf": r.get("act_dcf"),
        "cllr": r.get("cllr"),
        "min_cllr": r.get("min_cllr"),
        "accuracy": dec.get("accuracy"),
        "balanced_accuracy": dec.get("balanced_accuracy"),
        "threshold": e.threshold,
        "threshold_source": e.threshold_source,
        "ci": {k: list(v) for k, v in e.ci.items()},
        "warnings": e.notes,
    }


def _chunks(items: list[Any], n: int) -> list[list[Any]]:
    return [items[i : i + n] for i in range(0, len(items), n)] or [[]]


def _domain_groups(evals: list[EvalEntry]) -> list[tuple[str, list[EvalEntry]]]:
    groups: dict[str, list[EvalEntry]] = defaultdict(list)
    for e in evals:
        groups[e.domain or "(no domain tag)"].append(e)
    order = sorted(groups, key=lambda d: (_ood_rank(groups[d][0].ood), d))
    return [(d, groups[d]) for d in order]


def _ood_rank(ood: bool | None) -> int:
    return 0 if ood is False else (1 if ood is None else 2)


def evaluation_section(ctx: Context) -> Section:
    sid, title = "evaluation", "Evaluation"
    ev_docs = ctx.inputs.of("evaluation")
    if not ctx.evals and not ev_docs:
        note = "no labelled score files among the inputs"
        if ctx.unlabelled:
            note += f" (unusable: {', '.join(ctx.unlabelled)})"
        return skipped(sid, title, note + ".")
    sec = Section(sid, title)
    if not ctx.evals:
        _evaluate_docs(sec, ev_docs)
        sec.data = {"status": "ok", "results": [], "evaluate_json": [str(a.path) for a in ev_docs]}
        return sec
    lvl = f"{100 * ctx.options.ci:.0f} %"
    for domain, es in _domain_groups(ctx.evals):
        for part in _chunks(es, MAX_CURVES):
            curves = [
                {
                    "label": e.label + (" (in-sample)" if e.in_sample else ""),
                    "colour": e.colour,
                    "style": e.style,
                    "scores": e.table.score,
                    "labels": e.table.label,
                }
                for e in part
            ]
            sec.add(
                Figure(
                    F.roc_det_figure(curves, f"ROC and DET — domain: {domain}"),
                    f"ROC and DET curves of each score file tagged {domain!r} (bona fide = positive class); colour = "
                    "optimizer of the model that scored it, black = ensemble; dashed = --protocol seed, dash-dot = "
                    "calibrated scores, dotted = in-sample (scored data that fitted the scorer).",
                )
            )
    by_domain = [e for _, es in _domain_groups(ctx.evals) for e in es]
    for part in _chunks(by_domain, MAX_CURVES):
        items = [
            {"label": e.label, "scores": e.table.score, "labels": e.table.label, "threshold": e.threshold} for e in part
        ]
        sec.add(
            Figure(
                F.histograms_figure(items),
                "Score histograms per class with the decision threshold actually used for accuracy (dashed).",
            )
        )
    rows = []
    for e in ctx.evals:
        r = e.row
        dec = r.get("decision") or {}
        rows.append(
            [
                e.label,
                e.domain or "-",
                e.fitted_on,
                e.role,
                f"{r.get('n_bonafide')}/{r.get('n_spoof')}",
                pct(r.get("eer")),
                ci_pct(e.ci.get("eer")),
                num(r.get("roc_auc")),
                ci_num(e.ci.get("roc_auc")),
                num(r.get("min_dcf")),
                num(r.get("act_dcf")),
                num(r.get("cllr")),
                num(r.get("min_cllr")),
                pct(dec.get("accuracy")),
                f"{num(e.threshold)} ({e.threshold_source})",
            ]
        )
    sec.add(
        Table(
            [
                "score file",
                "domain",
                "fitted on",
                "role",
                "bona/spoof",
                "EER",
                f"EER {lvl} CI",
                "AUC",
                f"AUC {lvl} CI",
                "minDCF",
                "actDCF",
                "Cllr",
                "minCllr",
                "accuracy",
                "threshold (source)",
            ],
            rows,
            f"Metrics per score file, measured on that file's rows; {lvl} percentile bootstrap intervals "
            f"({ctx.options.n_boot} stratified resamples, seed {ctx.options.seed}). minDCF/actDCF: ASVspoof 5 costs.",
        )
    )
    attack_rows = []
    for e in ctx.evals:
        for r in e.per_attack:
            attack_rows.append(
                [e.label, str(r.get("group")), num(r.get("n_spoof")), pct(r.get("eer")), num(r.get("roc_auc"))]
            )
    if attack_rows:
        sec.add(
            Table(
                ["score file", "attack system", "spoof trials", "EER", "AUC"],
                attack_rows,
                "Per attack system: that system's spoofs against all bona fide trials of the file (ASVspoof style).",
            )
        )
    _breakdown_tables(sec, ctx.evals)
    notes = [f"{e.label}: {n}" for e in ctx.evals for n in e.notes]
    if notes:
        sec.add(Bullets(notes))
    if ctx.unlabelled:
        sec.add(Text(f"Not evaluated (no usable labels): {', '.join(ctx.unlabelled)}.", "note"))
    _evaluate_docs(sec, ev_docs)
    sec.data = {
        "status": "ok",
        "ci_level": ctx.options.ci,
        "n_boot": ctx.options.n_boot,
        "results": [_eval_data(e) for e in ctx.evals],
        "per_attack": [
            {"name": e.label, "system": r.get("group"), "n_spoof": r.get("n_spoof"), "eer": r.get("eer"),
             "roc_auc": r.get("roc_auc")}
            for e in ctx.evals
            for r in e.per_attack
        ],
        "breakdowns": [
            {"name": e.label, "by": col, "group": r.get("group"), "n_bonafide": r.get("n_bonafide"),
             "n_spoof": r.get("n_spoof"), "eer": r.get("eer"), "min_dcf": r.get("min_dcf"), "roc_auc": r.get("roc_auc")}
            for e in ctx.evals
            for col, rows in e.breakdowns.items()
            for r in rows
        ],
        "unlabelled": ctx.unlabelled,
    }  # fmt: skip
    return sec


_BREAKDOWN_TITLES = {
    "codec": ("codec", "Per codec condition (ASVspoof 5 CODEC; (none) = uncoded): both classes split by condition."),
    "codec_q": ("codec quality", "Per codec quality (ASVspoof 5 CODEC_Q): both classes split by quality."),
    "attack": ("attack tag", "Per attack tag (ASVspoof 5 ATTACK_TAG): its spoofs against all bona fide trials."),
    "gender": ("speaker gender", "Per speaker gender: both classes split by the speaker's gender."),
}


def _breakdown_tables(sec: Section, evals: list[EvalEntry]) -> None:
    """One table per corpus-condition column (codec, codec quality, attack tag, gender) any score file carries."""
    for col, (head, caption) in _BREAKDOWN_TITLES.items():
        rows = [
            [e.label, str(r.get("group")), f"{r.get('n_bonafide')}/{r.get('n_spoof')}", pct(r.get("eer")),
             num(r.get("min_dcf")), num(r.get("roc_auc"))]
            for e in evals
            for r in e.breakdowns.get(col, [])
        ]  # fmt: skip
        if rows:
            sec.add(Table(["score file", head, "bona/spoof", "EER", "minDCF", "AUC"], rows, caption))


def _evaluate_docs(sec: Section, docs: list[Artifact]) -> None:
    """The rows of `dfdet evaluate --json` files, as that command computed them."""
    for art in docs:
        rows = []
        for r in art.doc.get("results") or []:
            ci = (r.get("ci") or {}).get("eer")
            rows.append(
                [
                    str(r.get("name")),
                    f"{r['by']}={r['group']}" if r.get("by") and r.get("group") is not None else "(pooled)",
                    f"{r.get('n_bonafide')}/{r.get('n_spoof')}",
                    pct(r.get("eer")),
                    ci_pct(ci),
                    num(r.get("roc_auc")),
                    num(r.get("min_dcf")),
                    num(r.get("cllr")),
                    pct((r.get("decision") or {}).get("accuracy")),
                ]
            )
        if rows:
            sec.add(
                Table(
                    ["name", "group", "bona/spoof", "EER", "EER CI", "AUC", "minDCF", "Cllr", "accuracy"],
                    rows,
                    f"As computed by dfdet evaluate ({art.path.name}), each row on its own score file.",
                )
            )


# --------------------------------------------------------------------------------------------------- calibration
def calibration_section(ctx: Context) -> Section:
    sid, title = "calibration", "Calibration"
    cals = ctx.inputs.of("calibration")
    cal_evals = [e for e in ctx.evals if e.calibrated]
    if not cals and not cal_evals:
        return skipped(
            sid, title, "no calibration JSON (dfdet calibrate) and no calibrated score files among the inputs."
        )
    from dfdet.calibration import apply_calibration, calibration_quality

    sec = Section(sid, title)
    cal_models = {id(a): name for a, name in _calibrated_models(ctx)}
    curves, rows, data = [], [], {"calibrations": [], "evaluated": []}
    for art in cals:
        d = art.doc
        q = d.get("quality") or {}
        fd = d.get("fitting_data") or {}
        thr = d.get("threshold") or {}
        at = q.get("at_threshold") or {}
        rows.append(
            [
                art.path.name,
                str(d.get("method")),
                f"{fd.get('source') or '?'} ({fd.get('n')} rows, hash {fd.get('hash')})",
                "fitting data (in-sample)",
                num(q.get("raw_cllr")),
                num(q.get("cllr")),
                num(q.get("min_cllr")),
                num(q.get("ece")),
                f"{thr.get('policy')} = {num(thr.get('value'))} ({thr.get('scale', '')})",
                pct(at.get("accuracy")),
            ]
        )
        if q.get("reliability"):
            model = cal_models.get(id(art))
            mm = ctx.model(model) if model else None
            curves.append(
                {"label": f"{art.path.stem} (fitting data)", "style": "--", "bins": q["reliability"],
                 "colour": F.colour(mm["optimizer"] if mm else art.path.stem)}
            )  # fmt: skip
        data["calibrations"].append(
            {
                "file": str(art.path),
                "method": d.get("method"),
                "fitted_on": fd,
                "threshold": thr,
                "measured_on": "fitting data (in-sample)",
                "raw_cllr": q.get("raw_cllr"),
                "cllr": q.get("cllr"),
                "min_cllr": q.get("min_cllr"),
                "ece": q.get("ece"),
            }
        )
    for e in cal_evals:
        try:
            q = calibration_quality(e.table.score, e.table.label)
        except Exception as err:  # noqa: BLE001 - one odd file must not sink the report
            sec.add(Text(f"{e.label}: no calibration quality ({err})", "note"))
            continue
        rows.append(
            [
                e.label,
                "(applied)",
                e.fitted_on,
                e.role,
                "-",
                num(q["cllr"]),
                num(q["min_cllr"]),
                num(q["ece"]),
                f"{num(e.threshold)} ({e.threshold_source})",
                pct((e.row.get("decision") or {}).get("accuracy")),
            ]
        )
        in_sample = e.in_sample
        curves.append(
            {"label": e.label, "colour": e.colour, "style": "--" if in_sample else "-", "bins": q["reliability"],
             "group": "fitting data (in-sample)" if in_sample else (e.domain or "evaluation data")}
        )  # fmt: skip
        data["evaluated"].append(
            {"name": e.label, "role": e.role, "cllr": q["cllr"], "min_cllr": q["min_cllr"], "ece": q["ece"]}
        )
    # Each calibration applied to its model's scores on other data: honest calibration quality (and under shift).
    already = set()  # raw scores whose calibrated version is an input already (calibrate --apply output)
    for e in cal_evals:
        if "raw_score" in e.table.extra:
            with contextlib.suppress(ValueError):
                already.add(table_hash(np.asarray(e.table.extra["raw_score"], dtype=np.float64), e.table.label))
    for art, model in _calibrated_models(ctx):
        fit_hash = (art.doc.get("fitting_data") or {}).get("hash")
        thr = (art.doc.get("threshold") or {}).get("value")
        for e in ctx.evals:
            if e.art.model != model or e.calibrated or e.in_sample:
                continue
            h = table_hash(e.table.score, e.table.label)
            if (fit_hash and h == fit_hash) or h in already:
                continue  # its own fitting data (shown as in-sample above), or calibrated already among the inputs
            try:
                llr, dec = apply_calibration(art.doc, e.table.score)
                q = calibration_quality(llr, e.table.label)
            except Exception as err:  # noqa: BLE001 - one odd file must not sink the report
                sec.add(Text(f"{art.path.name} on {e.label}: no calibration quality ({err})", "note"))
                continue
            acc = float(np.mean(dec == np.asarray(e.table.label))) if dec is not None else None
            rows.append(
                [
                    f"{art.path.name} applied to {e.label}",
                    str(art.doc.get("method")),
                    f"{(art.doc.get('fitting_data') or {}).get('source') or '?'}",
                    f"{e.art.path.name} ({e.domain or 'no domain tag'}): evaluation",
                    num(cllr_raw(e)),
                    num(q["cllr"]),
                    num(q["min_cllr"]),
                    num(q["ece"]),
                    f"{num(thr)} (from the calibration file)",
                    pct(acc),
                ]
            )
            curves.append(
                {"label": f"{model} on {e.domain or e.label}", "colour": e.colour, "style": "-",
                 "bins": q["reliability"], "group": e.domain or "evaluation data"}
            )  # fmt: skip
            data["evaluated"].append(
                {"name": f"{art.path.name} applied to {e.label}", "calibration": str(art.path), "scores": e.label,
                 "domain": e.domain, "role": "evaluation", "cllr": q["cllr"], "min_cllr": q["min_cllr"],
                 "ece": q["ece"], "accuracy": acc}
            )  # fmt: skip
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for c in curves:
        groups[c.get("group") or ("fitting data (in-sample)" if c["style"] == "--" else "evaluation data")].append(c)
    for gname, gcurves in groups.items():
        used: set[str] = set()
        for k, c in enumerate(gcurves):  # same model twice in one panel: keep them apart
            if c["colour"] in used:
                c["colour"] = F.EXTRA_COLOURS[k % len(F.EXTRA_COLOURS)]
            used.add(c["colour"])
        sec.add(
            Figure(
                F.reliability_figure(gcurves[:MAX_CURVES], f"Reliability — {gname}"),
                f"Reliability on {gname}: observed fraction of spoof against predicted P(spoof) per bin (P from the "
                "LLR with each data set's "
                "own class proportions as prior; marker area ~ rows in the bin); dashed = on the calibration's own "
                "fitting data (in-sample), solid = on evaluation data.",
            )
        )
    sec.add(
        Table(
            ["calibration / score file", "method", "fitted on", "measured on", "raw Cllr", "Cllr", "min Cllr", "ECE",
             "threshold policy", "accuracy"],
            rows,
            "Cllr against min Cllr (the part of Cllr that calibration cannot remove); Cllr - min Cllr is the "
            "calibration loss. ECE: expected calibration error over 15 equal-width bins.",
        )
    )  # fmt: skip
    for art in cals:
        thr = art.doc.get("threshold") or {}
        if thr:
            sec.add(
                Text(
                    f"{art.path.name}: threshold policy {thr.get('policy')} -> {num(thr.get('value'))} on the "
                    f"{thr.get('scale')} scale; rule: {thr.get('rule')}; costs p_spoof {thr.get('p_spoof')}, "
                    f"C_miss {thr.get('c_miss')}, C_fa {thr.get('c_fa')}.",
                    "note",
                )
            )
        for w in art.doc.get("warnings") or []:
            sec.add(Text(f"{art.path.name}: {w}", "warn"))
    sec.data = {"status": "ok", **data}
    return sec


def cllr_raw(e: EvalEntry) -> float | None:
    """Cllr of the raw scores read as LLRs (what calibration had to fix)."""
    from dfdet.metrics import cllr

    try:
        return float(cllr(e.table.score, e.table.label))
    except Exception:  # noqa: BLE001
        return None


def _calibrated_models(ctx: Context) -> list[tuple[Artifact, str]]:
    """(calibration file, model name) for calibration files that wrap a model among the inputs."""
    from dfdet.calibration import detector_path

    out = []
    for art in ctx.inputs.of("calibration"):
        name = ""
        det = detector_path(art.doc, art.path)
        if det is not None:
            for m in ctx.models:
                try:
                    if Path(m["path"]).resolve() == det.resolve():
                        name = m["name"]
                except OSError:
                    continue
            if not name:
                name = next((m["name"] for m in ctx.models if Path(m["path"]).name == det.name), "")
        if not name:
            name = next((m["name"] for m in ctx.models if contains_tokens(art.path.stem, Path(m["path"]).stem)), "")
        if name:
            out.append((art, name))
    return out


# --------------------------------------------------------------------------------------------------- domain shift
def domain_section(ctx: Context) -> Section:
    sid, title = "domain", "Domain shift"
    usable = [e for e in ctx.evals if not e.in_sample and e.domain and e.domain != "mixed"]
    domains = sorted({e.domain for e in usable}, key=lambda d: (_ood_rank(_first(usable, d).ood), d))
    if len(domains) < 2:
        return skipped(
            sid,
            title,
            "score files from fewer than two domains (tag them with a domain column, a file name containing "
            "wild/ood/lab/test, or --domain NAME=GLOB).",
        )
    sec = Section(sid, title)
    systems: dict[str, dict[str, EvalEntry]] = defaultdict(dict)
    for e in usable:
        systems[e.system].setdefault(e.domain, e)
    order = sorted(systems, key=lambda s: (s == "ensemble" or "ens" in s, s))
    head = ["system"]
    for d in domains:
        tag = "in-domain" if _first(usable, d).ood is False else ("out-of-domain" if _first(usable, d).ood else "?")
        head += [f"{d} ({tag}) EER", f"{d} AUC"]
    head.append("inverted (AUC < 0.5)")
    rows, data, inverted = [], [], []
    for s in order:
        row = [s]
        rec: dict[str, Any] = {"system": s, "domains": {}}
        inv = []
        for d in domains:
            e = systems[s].get(d)
            if e is None:
                row += ["-", "-"]
                continue
            auc = e.row.get("roc_auc")
            row += [pct(e.row.get("eer")), num(auc)]
            rec["domains"][d] = {"eer": e.row.get("eer"), "roc_auc": auc, "file": e.art.path.name, "n": len(e.table)}
            if auc is not None and auc < 0.5:
                inv.append(f"{d} ({auc:.3f})")
        row.append("INVERTED: " + ", ".join(inv) if inv else "no")
        rec["inverted_in"] = inv
        if inv:
            inverted.append(s)
        rows.append(row)
        data.append(rec)
    sec.add(
        Table(
            head,
            rows,
            "The same systems on each domain, each measured on that domain's score file only (models fitted on their "
            "training data as stated in the Evaluation table).",
        )
    )
    series = [
        {
            "label": d,
            "colour": F.PALETTE["bonafide"] if _first(usable, d).ood is False else F.colour(d),
            "values": [systems[s][d].row.get("roc_auc") if d in systems[s] else None for s in order],
        }
        for d in domains
    ]
    sec.add(
        Figure(
            F.bars_figure(order, series, "ROC-AUC per system and domain", "ROC-AUC", "system", 0.5, "chance (0.5)"),
            "AUC below the dotted line means the system ranks spoof above bona fide on that domain (inverted).",
        )
    )
    ens_inv = []
    for art in ctx.inputs.of("ensemble"):
        for name in art.doc.get("inverted_members") or []:
            ens_inv.append(f"{name} (on the fitting data of {art.path.name})")
    if inverted or ens_inv:
        sec.add(Text("Inverted members: " + ", ".join(inverted + ens_inv) + ".", "warn"))
    sec.data = {"status": "ok", "domains": domains, "systems": data, "inverted": inverted, "ensemble_inverted": ens_inv}
    return sec


def _first(evals: list[EvalEntry], domain: str) -> EvalEntry:
    return next(e for e in evals if e.domain == domain)


# --------------------------------------------------------------------------------------------------- ensemble
def _metric_row(label: str, m: dict[str, Any]) -> list[str]:
    return [
        label,
        num(m.get("n")),
        pct(m.get("eer")),
        num(m.get("auc")),
        pct(m.get("accuracy")),
        pct(m.get("balanced_accuracy")),
        num(m.get("cllr")),
        num(m.get("min_cllr")),
    ]


def ensemble_section(ctx: Context) -> Section:
    sid, title = "ensemble", "Ensemble"
    docs = ctx.inputs.of("ensemble")
    if not docs:
        return skipped(sid, title, "no ensemble JSON (dfdet ensemble) among the inputs.")
    sec = Section(sid, title)
    data = []
    for art in docs:
        d = art.doc
        fuser = d.get("fuser") or {}
        members = d.get("members") or []
        weights = fuser.get("weights") or []
        flips = fuser.get("flips") or [False] * len(members)
        aucs = fuser.get("fitting_aucs") or [None] * len(members)
        alone = {r["name"]: r for r in d.get("members_alone") or []}
        oof = d.get("out_of_fold") or {}
        flip_counts = oof.get("flip_counts") or {}
        fd = d.get("fitting_data") or {}
        sec.add(
            Text(
                f"{art.path.name}: method {d.get('method')}, {len(members)} members, fitted on "
                f"{', '.join(fd.get('sources') or ['?'])} ({fd.get('n')} rows: {fd.get('n_bonafide')} bona fide, "
                f"{fd.get('n_spoof')} spoof; hash {fd.get('hash')}). Output: {d.get('output')}.",
            )
        )
        mrows = []
        for i, mem in enumerate(members):
            name = mem.get("name", f"member{i}")
            auc = aucs[i] if i < len(aucs) else None
            mrows.append(
                [
                    name,
                    str(mem.get("kind")),
                    str(mem.get("file") or mem.get("path") or "-"),
                    num(weights[i] if i < len(weights) else None),
                    "yes" if i < len(flips) and flips[i] else "no",
                    f"{flip_counts.get(name, '-')}/{oof.get('k', '-')}" if flip_counts else "-",
                    num(auc),
                    "INVERTED" if auc is not None and auc < 0.5 else "no",
                    pct((alone.get(name) or {}).get("eer")),
                ]
            )
        sec.add(
            Table(
                ["member", "kind", "source", "weight", "flipped", "flipped in folds", "AUC (fitting data)", "inverted",
                 "EER alone (fitting data)"],
                mrows,
                "Members, signed weights on z-normalised scores, and flips (a member with AUC < 0.5 is negated); "
                "member AUC/EER are on the ensemble's fitting data.",
            )
        )  # fmt: skip
        cmp_rows = []
        if oof.get("metrics"):
            cmp_rows.append(_metric_row(f"{oof.get('label')} [honest]", oof["metrics"]))
        ins = d.get("in_sample") or {}
        if ins.get("metrics"):
            cmp_rows.append(_metric_row(f"{ins.get('label', 'in-sample')} [optimistic]", ins["metrics"]))
        if cmp_rows:
            sec.add(
                Table(
                    ["evaluation", "rows", "EER", "AUC", "accuracy", "balanced acc.", "Cllr", "min Cllr"],
                    cmp_rows,
                    "Out-of-fold (every flip, weight, calibration and threshold fitted on the other folds) against "
                    "in-sample (fitted and measured on the same rows: optimistic by construction).",
                )
            )
        else:
            sec.add(Text("No out-of-fold or in-sample numbers in this file (fitted with --no-cv).", "note"))
        if weights:
            names = [m.get("name", f"m{i}") for i, m in enumerate(members)]
            cols = []
            for n in names:
                mm = ctx.model(n)
                cols.append(F.colour(mm["optimizer"] if mm else _guess_optimizer(n)))
            sec.add(
                Figure(
                    F.bars_figure(
                        names,
                        [{"label": "weight", "colour": "#555", "values": weights}],
                        f"Member weights — {art.path.stem}",
                        "weight on z-normalised score",
                        "member",
                        0.0,
                        "",
                        hatches=[[bool(f) for f in flips]],
                    ),
                    "Signed fusion weights; hatched bars are flipped (inverted) members.",
                )
            )
        data.append(
            {
                "file": str(art.path),
                "method": d.get("method"),
                "fitted_on": fd,
                "members": [m.get("name") for m in members],
                "weights": weights,
                "flips": flips,
                "flipped_members": d.get("flipped_members"),
                "inverted_members": d.get("inverted_members"),
                "out_of_fold": oof.get("metrics"),
                "in_sample_optimistic": ins.get("metrics"),
            }
        )
    sec.data = {"status": "ok", "ensembles": data}
    return sec


def _guess_optimizer(name: str) -> str:
    import re

    toks = re.split(r"[^a-z0-9]+", name.lower())
    for opt in ("adamw", "rmsprop", "adam", "sgd", "sam"):
        if opt in toks:
            return opt
    return name


# --------------------------------------------------------------------------------------------------- explain
def explain_section(ctx: Context) -> Section:
    sid, title = "explainability", "Explainability"
    exps, scans = ctx.inputs.of("explain"), ctx.inputs.of("shortcuts")
    if not exps and not scans:
        return skipped(sid, title, "no explain or shortcut-scan JSON (dfdet explain) among the inputs.")
    sec = Section(sid, title)
    data: dict[str, Any] = {"status": "ok", "explain": [], "shortcuts": []}
    top = ctx.options.top
    for art in exps:
        doc = art.doc
        methods = doc.get("methods") or {}
        if not methods:
            sec.add(Text(f"{art.path.name}: no attribution methods in the file.", "note"))
            continue
        mname = "ig" if "ig" in methods else next(iter(methods))
        rec = methods[mname]
        splits = rec.get("splits") or {}
        groups = [g[0] for g in doc.get("groups") or []] or sorted((splits.get("all") or {}).get("group_mean_abs", {}))
        who = art.model or doc.get("detector") or art.path.stem
        src = doc_source(doc)
        series = []
        for cls in ("bonafide", "spoof"):
            sp = splits.get(cls) or {}
            if sp.get("n"):
                series.append(
                    {
                        "label": f"{cls} (n={sp['n']})",
                        "colour": F.colour(cls),
                        "values": [sp.get("group_mean_abs", {}).get(g) for g in groups],
                    }
                )
        if series:
            sec.add(
                Figure(
                    F.bars_figure(
                        groups,
                        series,
                        f"Attribution per feature group by class — {who} ({rec.get('captum', mname)})",
                        "mean |attribution| summed over the group",
                        "feature group",
                    ),
                    f"Mean absolute {rec.get('captum', mname)} attribution of the spoof-positive output per feature "
                    f"group, bona fide vs spoof rows; measured on {src}.",
                )
            )
        tf = (splits.get("all") or {}).get("top_features") or []
        if tf:
            sec.add(
                Table(
                    ["rank", "feature", "group", "mean |attr.|", "mean signed"],
                    [[str(t.get("rank")), str(t.get("name")), str(t.get("group")), num(t.get("mean_abs")),
                      num(t.get("mean_signed"))] for t in tf[:top]],
                    f"Top features of {who} ({rec.get('captum', mname)}, all rows; positive = pushes towards spoof).",
                )
            )  # fmt: skip
        tfreq = doc.get("time_frequency") or {}
        tsplits = tfreq.get("splits") or {}
        panels = [{"label": f"{cls}", "map": tsplits[cls]["map"]} for cls in ("bonafide", "spoof") if cls in tsplits]
        if panels:
            bands = list(tfreq.get("bands") or [])
            sec.add(
                Figure(
                    F.time_frequency_figure(panels, bands, f"Saliency over time and frequency — {who}"),
                    "Saliency of the spoof-positive output w.r.t. the log filterbank energies the frames are computed "
                    "from: each utterance's |gradient| as shares over relative time x band, averaged per class; "
                    f"measured on {src}.",
                )
            )
            shares = {cls: tsplits[cls]["band_share"] for cls in ("bonafide", "spoof") if cls in tsplits}
            sec.add(
                Table(
                    ["band", *shares],
                    [[b, *(pct(v[i], 1) for v in shares.values())] for i, b in enumerate(bands)],
                    f"Share of {who}'s saliency per filterbank band, per class.",
                )
            )
        comp = rec.get("completeness")
        if comp:
            sec.add(
                Text(
                    f"Integrated-gradients completeness: {pct(comp.get('fraction_within_tolerance'), 1)} of rows "
                    f"within {pct(comp.get('tolerance'), 0)} (max |delta| {num(comp.get('max_abs_delta'), 3)}).",
                    "note",
                )
            )
        members = doc.get("members") or {}
        if members:
            mrows = []
            for name, ms in members.items():
                mrec = (ms.get("methods") or {}).get(mname) or {}
                share = ((mrec.get("splits") or {}).get("all") or {}).get("group_share_abs") or {}
                mrows.append([name] + [pct(share.get(g), 1) for g in groups])
            sec.add(Table(["member", *groups], mrows, "Share of mean |attribution| per group, per ensemble member."))
        data["explain"].append(
            {
                "file": str(art.path),
                "model": who,
                "method": mname,
                "measured_on": src,
                "group_mean_abs_by_class": {
                    cls: (splits.get(cls) or {}).get("group_mean_abs") for cls in ("bonafide", "spoof", "all")
                },
                "top_features": [t.get("name") for t in tf[:top]],
                "band_share_by_class": {k: (tsplits[k] or {}).get("band_share") for k in tsplits} or None,
            }
        )
    for art in scans:
        doc = art.doc
        feats = doc.get("features") or []
        flagged = doc.get("flagged") or []
        ranked = sorted(feats, key=lambda f: -float(f.get("separation_auc") or 0))[:top]
        if ranked:
            sec.add(
                Figure(
                    F.hbar_figure(
                        [f"{f.get('name')} [{f.get('index')}]" for f in ranked],
                        [float(f.get("separation_auc") or 0) for f in ranked],
                        ["#d7191c" if f.get("flagged") else "#999" for f in ranked],
                        f"Shortcut scan — most separating single features ({art.path.stem})",
                        "max(AUC, 1 - AUC) of the feature alone",
                        xlim=(0.5, 1.0),
                    ),
                    f"Univariate separation of each feature alone on {doc_source(doc)}; red = flagged "
                    f"({doc.get('rule', '')}).",
                )
            )
        sec.add(
            Text(
                f"{art.path.name}: {doc.get('n_flagged', len(flagged))} of {len(feats)} features flagged on "
                f"{doc_source(doc)} ({doc.get('n_bonafide')} bona fide, {doc.get('n_spoof')} spoof).",
                "warn" if flagged else "p",
            )
        )
        if flagged:
            sec.add(
                Table(
                    ["index", "feature", "group", "AUC", "best single-threshold accuracy", "higher means"],
                    [[str(f.get("index")), str(f.get("name")), str(f.get("group") or "-"), num(f.get("auc")),
                      pct(f.get("best_accuracy")), str(f.get("higher_means"))] for f in flagged[:top]],
                    "Flagged shortcut features (a feature that alone nearly separates the classes).",
                )
            )  # fmt: skip
        gc = (doc.get("group_classifiers") or {}).get("groups") or {}
        if gc:
            sec.add(
                Table(
                    ["feature group", "CV accuracy (group alone)"],
                    [[g, f"{pct(v.get('cv_accuracy'))} ± {pct(v.get('cv_accuracy_std'))}"] for g, v in gc.items()],
                    "A logistic regression on one feature group alone (cross-validated on the scanned data).",
                )
            )
        bysys = doc.get("by_system") or {}
        if bysys:
            sec.add(
                Table(
                    ["attack system", "spoof rows", "flagged", "most separating feature"],
                    [[s, num(v.get("n_spoof")), num(v.get("n_flagged")),
                      ((v.get("top") or [{}])[0]).get("name", "-")] for s, v in bysys.items()],
                    "Shortcut scan within each attack system (its spoofs against all bona fide rows).",
                )
            )  # fmt: skip
        data["shortcuts"].append(
            {
                "file": str(art.path),
                "measured_on": doc_source(doc),
                "n_flagged": doc.get("n_flagged", len(flagged)),
                "flagged": [{"index": f.get("index"), "name": f.get("name"), "auc": f.get("auc")} for f in flagged],
            }
        )
    sec.data = data
    return sec


# --------------------------------------------------------------------------------------------------- robustness
def attack_sweeps(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The sweeps of an attack JSON: a single `attack_sweep` result, or a list/dict of them under common keys."""
    if isinstance(doc.get("rows"), list) and doc.get("method"):
        return [doc]
    out = []
    for key in ("sweeps", "results", "attacks", "methods"):
        v = doc.get(key)
        if isinstance(v, list):
            out += [s for s in v if isinstance(s, dict) and isinstance(s.get("rows"), list)]
        elif isinstance(v, dict):
            for name, s in v.items():
                if isinstance(s, dict) and isinstance(s.get("rows"), list):
                    out.append({"method": name, **s})
    return out


def _variant_of(ctx: Context, model: str) -> tuple[str, dict[str, Any] | None]:
    m = ctx.model(model)
    return (m["variant"] if m else "?"), m


def robustness_section(ctx: Context) -> Section:
    sid, title = "robustness", "Robustness"
    attacks, degrades = ctx.inputs.of("attack"), ctx.inputs.of("degrade")
    if not attacks and not degrades:
        return skipped(sid, title, "no attack or degradation JSON (dfdet attack) among the inputs.")
    sec = Section(sid, title)
    curves, rows, data = [], [], {"status": "ok", "sweeps": [], "variants": [], "degradation": []}
    by_variant: dict[tuple[str, str, str], dict[float, float]] = {}
    for art in attacks:
        sweeps = attack_sweeps(art.doc)
        if not sweeps:
            sec.add(Text(f"{art.path.name}: no attack sweep found in the file.", "note"))
            continue
        model = art.model or art.path.stem
        variant, m = _variant_of(ctx, model)
        label = m["label"] if m else model
        ckey = "adversarial" if variant == "adversarial" else (m["optimizer"] if m else _guess_optimizer(model))
        for sw in sweeps:
            srows = sw.get("rows") or []
            method = str(sw.get("method", "?"))
            norm = str(sw.get("norm", "linf"))
            curves.append(
                {
                    "label": f"{label}",
                    "colour": F.colour(ckey),
                    "method": method,
                    "eps": [r.get("eps") for r in srows],
                    "accuracy": [r.get("accuracy") for r in srows],
                    "eer": [r.get("eer") for r in srows],
                }
            )
            for r in srows:
                rows.append(
                    [model, variant, f"{method.upper()} ({norm})", num(r.get("eps")), pct(r.get("accuracy")),
                     pct(r.get("eer")), num(r.get("auc")), pct(r.get("flip_rate"))]
                )  # fmt: skip
            by_variant[(variant, model, method)] = {float(r["eps"]): r.get("accuracy") for r in srows if "eps" in r}
            data["sweeps"].append(
                {
                    "file": str(art.path),
                    "model": model,
                    "variant": variant,
                    "method": method,
                    "norm": norm,
                    "measured_on": doc_source(art.doc if "rows" not in art.doc else sw),
                    "rows": srows,
                }
            )
    if curves:
        sec.add(
            Figure(
                F.attack_figure(curves, "FGSM / PGD in standardised feature space"),
                "Accuracy at each model's own threshold and EER against the perturbation budget epsilon (in training "
                "standard deviations); solid = FGSM, dashed = PGD.",
            )
        )
        sec.add(
            Table(
                ["model", "training", "attack", "epsilon", "accuracy", "EER", "AUC", "decision flips"],
                rows,
                "Per model and epsilon, measured on the attacked rows stated in the data statement.",
            )
        )
    if by_variant:
        eps_all = sorted({e for v in by_variant.values() for e in v})
        vrows = []
        for (variant, model, method), accs in sorted(
            by_variant.items(), key=lambda kv: (_variant_rank(kv[0][0]), kv[0])
        ):
            vrows.append([variant, model, method.upper()] + [pct(accs.get(e)) for e in eps_all])
            data["variants"].append({"variant": variant, "model": model, "method": method, "accuracy": accs})
        sec.add(
            Table(
                ["training", "model", "attack", *[f"acc @ eps {num(e, 3)}" for e in eps_all]],
                vrows,
                "Plain vs SAM vs adversarial training (from each model's training configuration): accuracy under "
                "attack.",
            )
        )
    for art in degrades:
        table = _generic_rows(art.doc)
        if table is None:
            sec.add(Text(f"{art.path.name}: no per-condition rows found in the file.", "note"))
            continue
        cols, trows = _readable_conditions(*table)
        conds = [c for c in art.doc.get("conditions") or [] if isinstance(c, dict) and c.get("condition")]
        if conds and any(c.get("eer") is not None for c in conds):
            m = ctx.model(art.model)
            series = [
                {"label": "EER", "colour": F.colour(m["optimizer"] if m else art.model), "values":
                 [None if c.get("eer") is None else 100 * float(c["eer"]) for c in conds]},
                {"label": "accuracy", "colour": "#999999", "values":
                 [None if c.get("accuracy") is None else 100 * float(c["accuracy"]) for c in conds]},
            ]  # fmt: skip
            sec.add(
                Figure(
                    F.bars_figure(
                        [condition_label(str(c["condition"]), str(c.get("description") or "")) for c in conds],
                        series,
                        f"Real-signal degradations — {art.model or art.path.stem}",
                        "percent",
                        "condition",
                    ),
                    f"EER and accuracy (at the detector's threshold) of {art.model or '?'} on each degraded version of "
                    f"the same audio ({doc_source(art.doc)}); 'clean' is the reference.",
                )
            )
        sec.add(
            Table(cols, trows, f"Real-signal degradations ({art.path.name}, model {art.model or '?'}), measured on "
                  f"{doc_source(art.doc)}.")
        )  # fmt: skip
        data["degradation"].append(
            {"file": str(art.path), "model": art.model, "measured_on": doc_source(art.doc), "conditions": conds}
        )
    sec.data = data
    return sec


def _readable_conditions(cols: list[str], rows: list[list[str]]) -> tuple[list[str], list[list[str]]]:
    """A per-condition table with human headers and condition labels; the description column folds into the label."""
    ci = cols.index("condition") if "condition" in cols else None
    di = cols.index("description") if "description" in cols else None
    out = []
    for row in rows:
        row = list(row)
        if ci is not None:
            row[ci] = condition_label(row[ci], row[di] if di is not None and row[di] != "-" else "")
        out.append([v for i, v in enumerate(row) if i != di])
    return [column_label(c) for i, c in enumerate(cols) if i != di], out


def _variant_rank(v: str) -> int:
    return {"plain": 0, "sam": 1, "adversarial": 2}.get(v, 3)


def _generic_rows(doc: dict[str, Any]) -> tuple[list[str], list[list[str]]] | None:
    """A table from the first list of flat dicts found under a common key (degradation conditions)."""
    for key in ("conditions", "degradations", "rows", "results"):
        v = doc.get(key)
        if isinstance(v, dict):
            v = [{"condition": k, **x} for k, x in v.items() if isinstance(x, dict)]
        if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            cols: list[str] = []
            for x in v:
                for k, val in x.items():
                    if k not in cols and (val is None or isinstance(val, (str, int, float, bool))):
                        cols.append(k)
            rows = []
            for x in v:
                row = []
                for c in cols:
                    val = x.get(c)
                    fraction = any(k in c.lower() for k in ("eer", "accuracy", "rate", "called", "frr", "far"))
                    if isinstance(val, float) and fraction:
                        row.append(pct(val))
                    else:
                        row.append(num(val) if isinstance(val, (int, float)) and not isinstance(val, bool) else
                                   ("-" if val is None else str(val)))  # fmt: skip
                rows.append(row)
            return cols, rows
    return None


# --------------------------------------------------------------------------------------------------- provenance
def _prov(art: Artifact) -> dict[str, Any]:
    doc = art.doc if isinstance(art.doc, dict) else {}
    p = doc.get("provenance")
    return p if isinstance(p, dict) else {}


def provenance_section(ctx: Context, report_prov: dict[str, Any]) -> Section:
    sid, title = "provenance", "Provenance"
    sec = Section(sid, title)
    rows, data = [], []
    for art in ctx.inputs.items:
        p = _prov(art)
        argv = p.get("argv")
        cmd = " ".join(str(a) for a in argv) if isinstance(argv, list) else "-"
        seed = None
        if art.kind == "model":
            seed = (art.doc.get("training") or {}).get("seed")
        elif art.kind == "landscape":
            seed = (art.doc.get("config") or {}).get("seed", (art.doc.get("data") or {}).get("subsample_seed"))
        elif art.kind == "ensemble":
            seed = (art.doc.get("out_of_fold") or {}).get("seed")
        elif art.kind in ("attack", "explain"):
            seed = art.doc.get("seed", (art.doc.get("config") or {}).get("seed"))
        hashes = _data_hashes(art)
        rows.append(
            [
                _display_path(art.path),
                art.kind,
                art.sha256,
                str(p.get("dfdet_version", "-")),
                str(p.get("time", "-")),
                num(seed),
                hashes or "-",
                cmd,
            ]
        )
        data.append(
            {
                "path": str(art.path),
                "kind": art.kind,
                "sha256_16": art.sha256,
                "dfdet_version": p.get("dfdet_version"),
                "time": p.get("time"),
                "argv": argv,
                "seed": seed,
                "libraries": p.get("libraries"),
                "python": p.get("python"),
                "data_hashes": hashes,
                "history": str(art.history_path) if art.history_path else None,
            }
        )
    sec.add(
        Table(
            ["input", "kind", "sha256 (16)", "dfdet", "written (UTC)", "seed", "data it was made from", "command"],
            rows,
            "Every input artifact: content hash, the dfdet version and command that wrote it, its seed and the "
            "hashes of the data it was fitted or measured on.",
        )
    )
    libs: dict[str, set[str]] = defaultdict(set)
    for art in ctx.inputs.items:
        for k, v in (_prov(art).get("libraries") or {}).items():
            libs[k].add(str(v))
        if _prov(art).get("python"):
            libs["python"].add(str(_prov(art)["python"]))
    if libs:
        sec.add(
            Table(
                ["library", "versions used by the inputs"],
                [[k, ", ".join(sorted(v))] for k, v in sorted(libs.items())],
                "Versions recorded in the inputs' provenance.",
            )
        )
    sec.add(
        Text(
            f"This report: dfdet {report_prov.get('dfdet_version')}, python {report_prov.get('python')}, "
            f"command: {' '.join(report_prov.get('argv') or [])}.",
            "note",
        )
    )
    if ctx.inputs.skipped:
        sec.add(Text(f"{len(ctx.inputs.skipped)} file(s) under the input directories are no dfdet artifact and were "
                     "ignored.", "note"))  # fmt: skip
    if ctx.inputs.bad:
        sec.add(Bullets([f"skipped (unreadable): {p}: {why}" for p, why in ctx.inputs.bad]))
    sec.fold = f"{len(rows)} input artifact(s): content hashes, versions, seeds, data hashes and commands"
    sec.data = {
        "status": "ok",
        "inputs": data,
        "report": report_prov,
        "ignored": [p for p, _ in ctx.inputs.skipped],
        "bad": [{"path": p, "reason": r} for p, r in ctx.inputs.bad],
    }
    return sec


def _display_path(path: Path) -> str:
    """A path relative to the working directory when it lies below it (shorter, and the same on every machine)."""
    import os

    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return rel if not rel.startswith("..") else str(path)


def _data_hashes(art: Artifact) -> str:
    d = art.doc if isinstance(art.doc, dict) else {}
    parts = []
    if art.kind == "model":
        for role in ("train", "val", "test"):
            rec = (d.get("data") or {}).get(role)
            if rec:
                parts.append(f"{role}: {data_text(rec)}")
    elif art.kind in ("calibration", "ensemble"):
        fd = d.get("fitting_data") or {}
        if fd:
            parts.append(f"fit: {fd.get('n')} rows, hash {fd.get('hash')}")
    elif art.kind == "landscape":
        dd = d.get("data") or {}
        parts.append(f"{base_name(dd.get('source'))}: {dd.get('rows_used')} rows, hash {dd.get('rows_hash')}")
        p = _prov(art)
        if p.get("features_hash"):
            parts.append(f"features file {p['features_hash']}")
    elif art.kind == "scores":
        t = art.table
        parts.append(f"{len(t)} rows, {int((t.label >= 0).sum())} labelled")
    else:
        p = _prov(art)
        for k in ("features_hash", "model_hash", "data_hash"):
            if p.get(k):
                parts.append(f"{k}: {p[k]}")
    return "; ".join(parts)


def all_sections(ctx: Context, report_prov: dict[str, Any]) -> list[Section]:
    """Every section in report order (a skipped one carries its one-line note)."""
    return [
        optimizer_section(ctx),
        evaluation_section(ctx),
        calibration_section(ctx),
        domain_section(ctx),
        ensemble_section(ctx),
        explain_section(ctx),
        robustness_section(ctx),
        *([crossval_section(ctx)] if ctx.inputs.of("crossval") else []),  # only when given: no skip note
        *([segments_section(ctx)] if ctx.inputs.of("segments") else []),  # only when given: no skip note
        provenance_section(ctx, report_prov),
    ]


def finite(x: Any) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False
