"""The report section of `dfdet crossval` JSON files: per model, the per-fold and pooled EER with its interval."""

from __future__ import annotations

from typing import Any

from dfdet.report.context import Context
from dfdet.report.document import Section, Table, Text, ci_pct, pct, skipped


def _held(names: list[str], limit: int = 4) -> str:
    return ", ".join(names[:limit]) + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


def _model_table(art_name: str, doc: dict[str, Any], m: dict[str, Any]) -> Table:
    rows = [
        [
            str(f["fold"]),
            _held(list(f.get("held_out") or [])),
            str(f.get("n_train")),
            f"{f.get('n_test_bonafide')}/{f.get('n_test_spoof')}",
            pct(f.get("eer")),
            "-",
        ]
        for f in m.get("folds") or []
    ]
    p, fe = m.get("pooled") or {}, m.get("fold_eer") or {}
    rows.append(["pooled", "all folds", "-", f"{p.get('n_bonafide')}/{p.get('n_spoof')}", pct(p.get("eer"))])
    rows[-1].append(ci_pct(p.get("ci")))
    rows.append(["fold mean / max", f"{fe.get('n')} fold(s) with both classes", "-", "-"])
    rows[-1] += [f"{pct(fe.get('mean'))} / {pct(fe.get('max'))}", "-"]
    for fam in m.get("per_family") or []:
        rows.append(
            ["pooled", f"spoof family {fam['family']}", "-", f"{p.get('n_bonafide')}/{fam.get('n_spoof')}"]
            + [pct(fam.get("eer")), ci_pct(fam.get("ci"))]
        )
    plan = doc.get("plan") or {}
    boot = doc.get("bootstrap") or {}
    level = f"{100 * float(boot.get('level') or 0.95):.0f} %"
    caption = (
        f"{art_name}: {m.get('model')} ({m.get('fitter')} fitter), {plan.get('mode')} over {plan.get('n_folds')} "
        f"folds, --group {plan.get('group_by')}; {plan.get('n_groups')} groups -> {plan.get('n_units')} units "
        f"(speakers: {plan.get('speakers')}). Pooled = the test scores of all folds together; CI: {level}, "
        f"{boot.get('n_boot')} resamples, {boot.get('unit', 'bootstrap')}."
    )
    return Table(["fold", "held out", "train rows", "test bona/spoof", "EER", f"EER {level} CI"], rows, caption)


def crossval_section(ctx: Context) -> Section:
    """One table per model of every crossval JSON among the inputs."""
    sid, title = "crossval", "Cross-validation"
    docs = ctx.inputs.of("crossval")
    if not docs:
        return skipped(sid, title, "no `dfdet crossval` JSON among the inputs.")
    sec = Section(sid, title)
    sec.add(
        Text(
            "Grouped cross-validation: no spoof group and no speaker is on both sides of a fold, so these numbers "
            "measure detection of generators the detector never saw."
        )
    )
    data = []
    for art in docs:
        store = art.doc.get("store") or {}
        for m in art.doc.get("models") or []:
            sec.add(_model_table(art.path.name, art.doc, m))
            data.append(
                {
                    "file": str(art.path),
                    "store": store.get("path"),
                    "model": m.get("model"),
                    "group_by": (art.doc.get("plan") or {}).get("group_by"),
                    "mode": (art.doc.get("plan") or {}).get("mode"),
                    "pooled_eer": (m.get("pooled") or {}).get("eer"),
                    "pooled_ci": (m.get("pooled") or {}).get("ci"),
                    "fold_eer": m.get("fold_eer"),
                }
            )
    sec.data = {"status": "ok", "results": data}
    return sec
