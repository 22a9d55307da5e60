"""The report's first screen: the headline results (best held-out EER in and out of domain with its interval, and
which system got it) and every warning a reader must see before trusting them (synthetic training data, shortcut
features, inverted systems and ensemble members, in-sample-only numbers). The sections below give the detail;
provenance comes last, folded."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dfdet.report.context import Context, EvalEntry, base_name, doc_source
from dfdet.report.document import Bullets, Section, Table, Text, ci_pct, num, pct
from dfdet.report.labels import condition_label

_GROUPS = (("in-domain", False), ("out-of-domain", True), ("held-out (no domain tag)", None))


def headline_section(ctx: Context, sections: Sequence[Section]) -> Section:
    """The summary section, built from the prepared context and the finished sections' data."""
    by_id = {s.id: s for s in sections}
    sec = Section("summary", "Summary")
    lvl = f"{100 * ctx.options.ci:.0f} %"
    held = [e for e in ctx.evals if not e.in_sample and _finite(e.row.get("eer"))]
    rows, heads = [], []
    for what, ood in _GROUPS:
        es = [e for e in held if e.ood is ood]
        if not es:
            continue
        best = min(es, key=lambda e: (float(e.row["eer"]), e.label))
        rows.append(_headline_row(f"best {what} EER", best, len(es)))
        heads.append(_headline_data(what, best, len(es)))
    if rows:
        sec.add(
            Table(
                ["headline", "EER", f"EER {lvl} CI", "AUC", "system", "measured on", "of"],
                rows,
                "Lowest EER among the held-out score files of each kind (never a file that fitted what scored it); "
                "every file's numbers are under Evaluation.",
            )
        )
    elif ctx.evals:
        sec.add(Text("No held-out score file among the inputs: every evaluation number is in-sample.", "warn"))
    else:
        sec.add(Text("No labelled score files among the inputs: no detection results to summarise.", "note"))
    facts = _facts(ctx, by_id)
    if facts:
        sec.add(Bullets(facts))
    warnings = _warnings(ctx, by_id)
    if warnings:
        sec.add(Bullets(warnings, "warn"))
    sec.data = {"headline": heads, "facts": facts, "warnings": warnings}
    return sec


def _finite(x: Any) -> bool:
    try:
        return float(x) == float(x)
    except (TypeError, ValueError):
        return False


def _headline_row(what: str, e: EvalEntry, n: int) -> list[str]:
    r = e.row
    where = f"{e.art.path.name} ({e.domain + ', ' if e.domain else ''}{r.get('n_bonafide')}/{r.get('n_spoof')} rows)"
    return [what, pct(r.get("eer")), ci_pct(e.ci.get("eer")), num(r.get("roc_auc")), e.system, where,
            f"{n} score file(s)"]  # fmt: skip


def _headline_data(what: str, e: EvalEntry, n: int) -> dict[str, Any]:
    r = e.row
    return {
        "what": what,
        "system": e.system,
        "file": e.art.path.name,
        "domain": e.domain or None,
        "eer": r.get("eer"),
        "eer_ci": list(e.ci["eer"]) if e.ci.get("eer") else None,
        "roc_auc": r.get("roc_auc"),
        "n_bonafide": r.get("n_bonafide"),
        "n_spoof": r.get("n_spoof"),
        "of_files": n,
        "fitted_on": e.fitted_on,
    }


# --------------------------------------------------------------------------------------------------- facts
def _facts(ctx: Context, by_id: dict[str, Section]) -> list[str]:
    """What was compared, and the robustness headline, in a line each."""
    out = []
    if ctx.models:
        trained = sorted({base_name((m["data"].get("train") or {}).get("source")) for m in ctx.models})
        out.append(
            f"Models: {', '.join(m['name'] for m in ctx.models)} ({len(ctx.models)}; trained on {', '.join(trained)})."
        )
    ens = ctx.inputs.of("ensemble")
    if ens:
        out.append(
            "Ensembles: "
            + "; ".join(
                f"{a.path.name} ({a.doc.get('method')} of {len(a.doc.get('members') or [])} members, fitted on "
                f"{', '.join(base_name(s) for s in (a.doc.get('fitting_data') or {}).get('sources') or ['?'])})"
                for a in ens
            )
            + "."
        )
    rob = by_id.get("robustness")
    for d in (rob.data.get("degradation") or []) if rob else []:
        line = _worst_condition(d)
        if line:
            out.append(line)
    out += _attack_lines((rob.data.get("sweeps") or []) if rob else [])
    return out


def _worst_condition(d: dict[str, Any]) -> str | None:
    conds = [c for c in d.get("conditions") or [] if _finite(c.get("eer"))]
    clean = next((c for c in conds if c.get("condition") == "clean"), None)
    others = [c for c in conds if c.get("condition") != "clean"]
    if not others:
        return None
    worst = max(others, key=lambda c: float(c["eer"]))
    label = condition_label(str(worst["condition"]), str(worst.get("description") or ""))
    ref = f" (clean: {pct(clean['eer'])})" if clean else ""
    return f"Worst real-signal degradation for {d.get('model') or '?'}: {label}, EER {pct(worst['eer'])}{ref}."


def _attack_lines(sweeps: list[dict[str, Any]]) -> list[str]:
    """Per attack method: each model's accuracy at the clean point and at the largest budget."""
    by_method: dict[str, list[str]] = {}
    for sw in sweeps:
        rows = [r for r in sw.get("rows") or [] if r.get("eps") is not None]
        if len(rows) < 2:
            continue
        lo, hi = min(rows, key=lambda r: r["eps"]), max(rows, key=lambda r: r["eps"])
        key = f"{str(sw.get('method')).upper()} ({sw.get('norm')}) at eps {num(hi['eps'], 3)}"
        by_method.setdefault(key, []).append(f"{sw.get('model')} {pct(lo.get('accuracy'))} → {pct(hi.get('accuracy'))}")
    return [f"{k}: accuracy {', '.join(v)}." for k, v in by_method.items()]


# --------------------------------------------------------------------------------------------------- warnings
def _warnings(ctx: Context, by_id: dict[str, Section]) -> list[str]:
    out = []
    synthetic: dict[str, list[str]] = {}
    for m in ctx.models:
        dom = m["data"].get("training_domain") or {}
        if isinstance(dom, dict) and dom.get("synthetic"):
            name = (dom.get("corpus") or {}).get("name") or "a synthetic corpus"
            synthetic.setdefault(str(name), []).append(m["name"])
    for corpus, names in synthetic.items():
        out.append(
            f"Synthetic training data: {', '.join(names)} trained on {corpus} (synthetic audio); these numbers "
            "exercise the pipeline and say nothing about real deepfakes."
        )
    for art in ctx.inputs.of("shortcuts"):
        out += _shortcut_warnings(art.path.name, art.doc)
    dom = by_id.get("domain")
    for rec in (dom.data.get("systems") or []) if dom and not dom.skipped else []:
        if rec.get("inverted_in"):
            out.append(
                f"Inverted: {rec['system']} ranks spoof above bona fide (AUC < 0.5) on {', '.join(rec['inverted_in'])}."
            )
    for art in ctx.inputs.of("ensemble"):
        inv = art.doc.get("inverted_members") or []
        flipped = [f for f in art.doc.get("flipped_members") or [] if f not in inv]
        if inv:
            out.append(
                f"Ensemble {art.path.name}: member(s) {', '.join(inv)} inverted on its fitting data (AUC < 0.5), "
                "used with a negative weight."
            )
        if flipped:
            out.append(f"Ensemble {art.path.name}: member(s) {', '.join(flipped)} flipped (negative weight).")
    for art in ctx.inputs.of("calibration"):
        out += [f"Calibration {art.path.name}: {w}" for w in art.doc.get("warnings") or []]
    out += list(ctx.warnings)
    if ctx.inputs.bad:
        out.append(f"{len(ctx.inputs.bad)} input(s) unreadable and skipped (listed under Provenance).")
    return out


def _shortcut_warnings(name: str, doc: dict[str, Any]) -> list[str]:
    feats = doc.get("features") or []
    flagged = doc.get("flagged") or []
    n = doc.get("n_flagged", len(flagged))
    out = []
    if n:
        top = max(flagged, key=lambda f: abs(float(f.get("auc") or 0.5) - 0.5), default={})
        out.append(
            f"Shortcut features ({name}): {n} of {len(feats)} features alone nearly separate the classes on "
            f"{doc_source(doc)} (e.g. {top.get('name', '?')}, AUC {num(top.get('auc'), 3)})."
        )
    per_system = {s: v.get("n_flagged") for s, v in (doc.get("by_system") or {}).items() if v.get("n_flagged")}
    if per_system:
        out.append(
            f"Shortcut features within attack systems ({name}): "
            + ", ".join(f"{s}: {k} flagged" for s, k in per_system.items())
            + " (one system's spoofs told from bona fide by a single feature)."
        )
    return out
