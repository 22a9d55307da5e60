"""What several report sections share, computed once: per-model facts, per-score-file metrics with bootstrap
intervals, and which data fitted what (by content hash, utterance ids, recomputed ensemble outputs and file names),
plus the data statement at the top of the report. Numbers measured on their own fitting data are labelled in-sample.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dfdet.report import figures as F
from dfdet.report.artifacts import (
    Artifact,
    Inputs,
    contains_tokens,
    is_ensemble_name,
    model_info,
    sidecar_maker,
    system_key,
    table_hash,
)
from dfdet.report.document import (
    Bullets,
    Text,
)


@dataclass
class Options:
    title: str = "dfdet report"
    ci: float = 0.95
    n_boot: int = 1000
    seed: int = 42
    top: int = 15


@dataclass
class EvalEntry:
    """One labelled score file (or one domain of it) with its metrics and what it means."""

    label: str
    art: Artifact
    table: Any
    domain: str
    ood: bool | None
    system: str
    optimizer: str
    protocol: str
    colour: str
    style: str
    is_ensemble: bool
    calibrated: bool
    row: dict[str, Any] = field(default_factory=dict)
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    per_attack: list[dict[str, Any]] = field(default_factory=list)
    breakdowns: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # condition column -> group rows
    threshold: float | None = None
    threshold_source: str = ""
    role: str = "evaluation"
    fitted_on: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def in_sample(self) -> bool:
        return self.role.startswith("in-sample")


@dataclass
class Context:
    inputs: Inputs
    options: Options
    models: list[dict[str, Any]] = field(default_factory=list)  # model_info + "art" + "label"
    evals: list[EvalEntry] = field(default_factory=list)
    unlabelled: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def model(self, name: str) -> dict[str, Any] | None:
        for m in self.models:
            if m["name"] == name:
                return m
        return None

    @property
    def multi_protocol(self) -> bool:
        return len({m["protocol"] for m in self.models}) > 1


def base_name(path: Any) -> str:
    """A recorded source as a short name: the file name, plus any '(... hold-out)' note."""
    if not path:
        return "?"
    text = str(path)
    head, sep, tail = text.partition(" (")
    return Path(head).name + (sep + tail if sep else "")


def data_text(rec: dict[str, Any] | None) -> str:
    if not rec:
        return "-"
    parts = [base_name(rec.get("source"))]
    if rec.get("rows") is not None:
        parts.append(f"{rec['rows']} rows")
    if rec.get("hash"):
        parts.append(f"hash {rec['hash']}")
    return parts[0] + (f" ({', '.join(parts[1:])})" if len(parts) > 1 else "")


def group_label(m: dict[str, Any], multi_protocol: bool) -> str:
    """Legend label of a model: its optimizer, with the protocol when the report has several."""
    base = m["optimizer"] if m["variant"] != "adversarial" else f"{m['optimizer']}+adv"
    return f"{base} ({m['protocol']})" if multi_protocol else base


# --------------------------------------------------------------------------------------------------- prepare
def prepare(inputs: Inputs, options: Options) -> Context:
    """Per-model facts and per-score-file metrics, computed once for all sections."""
    ctx = Context(inputs, options)
    for art in inputs.models:
        info = model_info(art)
        info["art"] = art
        ctx.models.append(info)
    for m in ctx.models:
        m["label"] = group_label(m, ctx.multi_protocol)
        d = m["data"]
        tr, te = d.get("train") or {}, d.get("test") or {}
        if tr.get("hash") and tr.get("hash") == te.get("hash"):
            ctx.warnings.append(f"model {m['name']}: its test data has the same content hash as its training data")
    fitting = _fitting_hashes(inputs)
    ens_ids = _ensemble_fitting_ids(inputs)
    for art in inputs.scores:
        _prepare_scores(ctx, art, fitting, ens_ids)
    # several ensembles (e.g. fitted in-domain and on the target domain): shades of the ensemble colour
    ens_systems = sorted({e.system for e in ctx.evals if e.optimizer == "ensemble"})
    shades = [F.PALETTE["ensemble"], "#8c8c8c", "#555555", "#b5b5b5"]
    for e in ctx.evals:
        if e.optimizer == "ensemble":
            e.colour = shades[ens_systems.index(e.system) % len(shades)]
    return ctx


def _fitting_hashes(inputs: Inputs) -> dict[str, str]:
    """Content hash of (scores, labels) -> which calibration was fitted on them."""
    out = {}
    for art in inputs.of("calibration"):
        h = (art.doc.get("fitting_data") or {}).get("hash")
        if h:
            out[h] = art.path.name
    return out


def _ensemble_fitting_ids(inputs: Inputs) -> list[tuple[str, frozenset[str], set[Path]]]:
    """(ensemble file name, utt_ids of its fitting rows, resolved member score files) per ensemble document."""
    from dfdet.calibration import resolve_from_json

    by_path = {a.path.resolve(): a for a in inputs.scores}
    out = []
    for art in inputs.of("ensemble"):
        files: set[Path] = set()
        ids: frozenset[str] = frozenset()
        for m in art.doc.get("members") or []:
            if m.get("kind") == "scores" and m.get("file"):
                p = resolve_from_json(m["file"], art.path).resolve()
                files.add(p)
                if not ids:
                    table = by_path[p].table if p in by_path else None
                    if table is None and p.exists():
                        try:
                            from dfdet.scores import read_scores

                            table = read_scores(p)
                        except Exception:  # noqa: BLE001 - a moved member file only weakens the check
                            table = None
                    if table is not None:
                        ids = frozenset(table.utt_id)
        out.append((art.path.name, ids, files))
    return out


def own_data_role(art: Artifact, m: dict[str, Any]) -> str:
    """'training data' / 'validation data (...)' when a score file is named after the model's own training or
    validation store (e.g. sgd.lab_val.tsv for a model validated on lab_val.h5), else ''."""
    import re

    words = [t for t in re.split(r"[^a-z0-9]+", art.path.stem.lower()) if t]
    model_words = [t for t in re.split(r"[^a-z0-9]+", Path(m["path"]).stem.lower()) if t]
    if words[: len(model_words)] == model_words:
        words = words[len(model_words) :]
    for role, desc in (("train", "training data"), ("val", "validation data (it chose the epoch and threshold)")):
        src = (m["data"].get(role) or {}).get("source")
        if not src:
            continue
        stem = Path(str(src).partition(" (")[0]).stem.lower()
        if words and words == [t for t in re.split(r"[^a-z0-9]+", stem) if t]:
            return desc
    return ""


def _ids(art: Artifact) -> frozenset[str]:
    """The utterance ids of a score file (computed once per artifact)."""
    cached = art.__dict__.get("_utt_ids")
    if cached is None:
        cached = art.__dict__["_utt_ids"] = frozenset(art.table.utt_id)
    return cached


def identify_ensemble(inputs: Inputs, art: Artifact) -> Artifact | None:
    """The ensemble JSON that made this score file: the one whose content hash its provenance sidecar records as the
    detector (`dfdet score ENS.json`, `ensemble --apply`), else the one that recomputes it exactly from the member
    score files of the same utterances among the inputs (whatever the file names)."""
    from dfdet import fusion

    ensembles = inputs.of("ensemble")
    if not ensembles:
        return None
    by_content = sidecar_maker(art, ensembles, sole_member=False)
    if by_content is not None:
        return by_content
    ids = _ids(art)
    for ens in ensembles:
        members = ens.doc.get("members") or []
        if not members or any(mm.get("kind") != "scores" for mm in members):
            continue
        names = [str(mm.get("name")) for mm in members]
        options = [
            [
                a
                for a in inputs.scores
                if a is not art
                and (a.model == name or a.path.stem.split(".")[0] == name)
                and len(a.table) == len(art.table)
                and _ids(a) == ids
            ]
            for name in names
        ]
        if not all(options):
            continue
        for combo in itertools.islice(itertools.product(*options), 64):
            try:
                utt, S, _ = fusion.join_members([a.table for a in combo], names)
                fused, _ = fusion.apply_ensemble(ens.doc, S)
            except Exception:  # noqa: BLE001 - a member that does not fit simply means "not this ensemble"
                continue
            index = {u: i for i, u in enumerate(art.table.utt_id)}
            mine = np.asarray(art.table.score, dtype=np.float64)[[index[u] for u in utt]]
            if np.allclose(mine, fused, rtol=1e-6, atol=1e-6):  # files hold 9 significant digits, members too
                return ens
    return None


def _decision_threshold(scores: np.ndarray, decision: np.ndarray | None) -> float | None:
    """The single threshold that reproduces a decision column (score >= thr -> bona fide), if there is one."""
    if decision is None:
        return None
    d = np.asarray(decision)
    bona, spoof = scores[d == 0], scores[d == 1]
    if bona.size and spoof.size and bona.min() >= spoof.max():
        return float(bona.min())
    return None


def _prepare_scores(ctx: Context, art: Artifact, fitting: dict[str, str], ens_ids: list) -> None:
    from dfdet.errors import DfdetError

    table = art.table
    labels = np.asarray(table.label)
    if not ((labels == 0).any() and (labels == 1).any()):
        why = "no labels" if not (labels >= 0).any() else "only one class"
        ctx.unlabelled.append(f"{art.path.name} ({why}, {len(labels)} rows)")
        return
    parts: list[tuple[str, Any, str, bool | None]] = []
    if art.domain == "mixed":
        col = np.asarray(table.extra["domain"], dtype=object)
        from dfdet.report.artifacts import _is_ood

        for dom in sorted({v for v in col if v}):
            parts.append((dom, table.subset(col == dom), f"{art.label} [{dom}]", _is_ood(dom)))
    else:
        parts.append((art.domain, table, art.label, art.out_of_domain))
    m = ctx.model(art.model) if art.model else None
    ens_art = identify_ensemble(ctx.inputs, art)
    if ens_art is not None:
        m = None
    ens_named = (
        ens_art is not None
        or is_ensemble_name(art.path.stem)
        or any(contains_tokens(art.path.stem, Path(e).stem) for e, _, _ in ens_ids)
    )
    # calibrated scores: `calibrate --apply` keeps the raw score beside the LLR; else the file name says so
    calibrated = "raw_score" in table.extra or any(
        t in ("calibrated", "llr") for t in art.path.stem.lower().replace("-", ".").replace("_", ".").split(".")
    )
    # Which data fitted what: a calibration fitted on exactly these (scores, labels) or (raw scores, labels).
    role, notes = "evaluation", []
    h = table_hash(table.score, table.label)
    h_raw = None
    if "raw_score" in table.extra:
        try:
            h_raw = table_hash(np.asarray(table.extra["raw_score"], dtype=np.float64), table.label)
        except ValueError:
            h_raw = None
    if h_raw and h_raw in fitting:
        role = f"in-sample (optimistic): calibration {fitting[h_raw]} was fitted on these rows"
    elif h in fitting:
        notes.append(f"these raw scores are the fitting data of calibration {fitting[h]}")
    ids = frozenset(table.utt_id)
    for ens_name, fit_ids, files in ens_ids:
        if art.path.resolve() in files:
            notes.append(f"member scores the ensemble {ens_name} was fitted on")
        elif ens_named and fit_ids and ids == fit_ids:
            if "oof" in art.path.stem.lower():
                role = f"out-of-fold on the fitting data of {ens_name} (each fold fitted on the other folds)"
            else:
                role = f"in-sample (optimistic): ensemble {ens_name} was fitted on these rows"
    if m is not None:
        own = own_data_role(art, m)
        if own:
            role = f"in-sample (optimistic): the {own} of model {m['name']}"
    if m is not None:
        fitted_on = f"model {m['name']} trained on {data_text(m['data'].get('train'))}"
    elif ens_art is not None:
        fd = ens_art.doc.get("fitting_data") or {}
        fitted_on = (
            f"ensemble {ens_art.path.name} fitted on {', '.join(fd.get('sources') or ['?'])} ({fd.get('n')} rows, "
            f"hash {fd.get('hash')})"
        )
    elif ens_named:
        docs = ctx.inputs.of("ensemble")
        sources = [(d.doc.get("fitting_data") or {}).get("sources") or ["?"] for d in docs]
        each = [f"{d.path.name} fitted on {', '.join(src)}" for d, src in zip(docs, sources, strict=True)]
        if len(each) == 1:
            fitted_on = f"ensemble {each[0]}"
        elif each:  # which one is unknown: no sidecar, and its scores recompute from no member files among the inputs
            fitted_on = f"one of the ensembles {'; '.join(each)} (score with -o to record which)"
        else:
            fitted_on = "ensemble (fitting data: see Ensemble)"
    else:
        fitted_on = "unknown model (name the score file after its model)"
    if calibrated:
        fitted_on += "; scores calibrated (see Calibration)"
    if m is not None:
        opt, proto, colour_key = m["optimizer"], m["protocol"], m["optimizer"]
        if m["variant"] == "adversarial":
            colour_key = "adversarial"
    elif ens_named:
        opt, proto, colour_key = "ensemble", "default", "ensemble"
    else:
        opt, proto, colour_key = "?", "default", system_key(art)
    ci_names = ("eer", "roc_auc", "min_dcf")
    for domain, sub, label, ood in parts:
        y = np.asarray(sub.label)
        keep = y >= 0
        sub = sub.subset(keep) if not keep.all() else sub
        y = np.asarray(sub.label)
        if not ((y == 0).any() and (y == 1).any()):
            ctx.unlabelled.append(f"{label} (only one class)")
            continue
        s = np.asarray(sub.score, dtype=np.float64)
        thr = _decision_threshold(s, sub.decision)
        thr_source = "decision column"
        given = None
        if sub.decision is None:
            if m is not None and not calibrated:
                given, thr_source = float(m["threshold"] or 0.0), f"model's threshold ({m['threshold_source']})"
            else:
                given, thr_source = 0.0, "default 0 (even odds)"
            thr = given
        elif thr is None:
            thr_source = "decision column (no single threshold)"
        e = EvalEntry(
            label=label,
            art=art,
            table=sub,
            domain=domain,
            ood=ood,
            system=system_key(art) if not ens_named else (art.path.stem.split(".")[0] or "ensemble"),
            optimizer=opt,
            protocol=proto,
            colour=F.colour(colour_key),
            style=":" if role.startswith("in-sample") else ("-." if calibrated else F.linestyle(proto)),
            is_ensemble=ens_named and m is None,
            calibrated=calibrated,
            threshold=thr,
            threshold_source=thr_source,
            role=role,
            fitted_on=fitted_on,
            notes=list(notes),
        )
        from dfdet.metrics import bootstrap_ci, evaluate_table

        try:
            by = "system" if _n_systems(sub) >= 2 else None
            rows = evaluate_table(sub, name=label, by=by, threshold=given)
        except DfdetError as err:
            ctx.warnings.append(f"{label}: {err}")
            continue
        e.row = rows[0]
        e.per_attack = rows[1:]
        for col in _condition_columns(sub):
            try:
                e.breakdowns[col] = evaluate_table(sub, name=label, by=col, threshold=given)[1:]
            except DfdetError as err:
                ctx.warnings.append(f"{label} by {col}: {err}")
        if ctx.options.n_boot > 0:
            e.ci = bootstrap_ci(s, y, ci_names, n_boot=ctx.options.n_boot, level=ctx.options.ci, seed=ctx.options.seed)
        for w in e.row.get("warnings", []):
            e.notes.append(w)
        ctx.evals.append(e)


def _condition_columns(table: Any) -> list[str]:
    """The corpus-condition columns (ASVspoof 5 codec, codec quality, attack tag, gender) that split this table
    into two or more groups: the report gets a breakdown table for each."""
    from dfdet.inputs import CONDITION_COLUMNS

    y = np.asarray(table.label)
    out = []
    for col in CONDITION_COLUMNS:
        values = (table.extra or {}).get(col)
        if not values:
            continue
        if col == "attack":
            values = [v for v, lab in zip(values, y, strict=True) if lab == 1]
        if len(set(values) - {""} if col == "attack" else set(values)) >= 2:
            out.append(col)
    return out


def _n_systems(table: Any) -> int:
    col = (table.extra or {}).get("system")
    if not col:
        return 0
    y = np.asarray(table.label)
    return len({v for v, lab in zip(col, y, strict=True) if lab == 1 and v not in ("", "-")})


# --------------------------------------------------------------------------------------------------- statement
def data_statement(ctx: Context) -> list[Any]:
    """The top paragraph: what was measured on what data, and how fitting and evaluation data were kept apart."""
    items = [
        "Scores are bona-fide-positive natural-log odds (higher = more likely genuine); labels: bona fide vs spoof. "
        "Every number below names the data it was fitted on and the data it was measured on; numbers measured on "
        "their own fitting data are marked in-sample (optimistic) and never used as a headline."
    ]
    by_train: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for m in ctx.models:
        d = m["data"]
        by_train[(data_text(d.get("train")), data_text(d.get("val")), data_text(d.get("test")))].append(m)
    for (train, _, _), ms in by_train.items():
        names = ", ".join(m["name"] for m in ms)
        first = ms[0]["data"]
        val = first.get("val")
        test = first.get("test")
        text = f"Models {names}: weights and feature scaler fitted on {train}"
        if val:
            text += f"; validation data {data_text(val)} chose the epoch (early stopping) and the decision threshold"
        else:
            text += "; no validation data (threshold fixed at score 0)"
        if test:
            text += f"; test data {data_text(test)} was scored once at the end and used for no choice"
        items.append(text + ".")
    if ctx.evals:
        files = sorted({e.art.path.name for e in ctx.evals})
        items.append(
            f"Evaluation: {len(files)} labelled score file(s) ({', '.join(files)}); each metric is computed on the "
            "rows of one file only, with the model or ensemble named in its row (fitted on the data stated there)."
        )
    for art in ctx.inputs.of("calibration"):
        fd = art.doc.get("fitting_data") or {}
        items.append(
            f"Calibration {art.path.name} ({art.doc.get('method')}, threshold policy "
            f"{(art.doc.get('threshold') or {}).get('policy')}) fitted on {fd.get('source') or '?'} "
            f"({fd.get('n')} rows, hash {fd.get('hash')}); its Cllr/ECE on that data are in-sample."
        )
    for art in ctx.inputs.of("ensemble"):
        fd = art.doc.get("fitting_data") or {}
        oof = art.doc.get("out_of_fold")
        text = (
            f"Ensemble {art.path.name} ({art.doc.get('method')}) fitted on {', '.join(fd.get('sources') or ['?'])} "
            f"({fd.get('n')} rows, hash {fd.get('hash')})"
        )
        if oof:
            text += f"; its headline numbers are {oof.get('label')}"
        if art.doc.get("in_sample"):
            text += "; in-sample numbers are shown only beside them, labelled optimistic"
        items.append(text + ".")
    for art in ctx.inputs.of("landscape"):
        d = art.doc.get("data") or {}
        items.append(
            f"Loss landscape {art.path.name} (model {art.model or '?'}): training loss on {d.get('rows_used')} rows of "
            f"{base_name(d.get('source'))} (hash {d.get('rows_hash')})."
        )
    for kind in ("explain", "shortcuts", "attack", "degrade"):
        for art in ctx.inputs.of(kind):
            src = doc_source(art.doc)
            items.append(f"{kind.capitalize()} {art.path.name}: measured on {src}.")
    in_sample = [e.label for e in ctx.evals if e.in_sample]
    if in_sample:
        items.append(
            "Checked by content hash / utterance ids: "
            + ", ".join(in_sample)
            + " are the fitting data of what scored them; their numbers are labelled in-sample (optimistic) and left "
            "out of the domain comparison."
        )
    elif ctx.evals:
        items.append(
            "Checked by content hash / utterance ids: no evaluation score file is the fitting data of a calibration "
            "or ensemble among the inputs."
        )
    blocks: list[Any] = [Bullets(items)]
    for w in ctx.warnings:
        blocks.append(Text(w, "warn"))
    return blocks


def doc_source(doc: dict[str, Any]) -> str:
    """What data a JSON document was measured on, from what it records (short text)."""
    prov = doc.get("provenance") if isinstance(doc.get("provenance"), dict) else {}
    rec_inputs = prov.get("inputs") if isinstance(prov.get("inputs"), dict) else {}
    rows = doc.get("rows_attacked") or (doc.get("rows") if isinstance(doc.get("rows"), int) else None)
    for key in ("features", "labels"):
        v = rec_inputs.get(key)
        if isinstance(v, dict) and v.get("path"):
            extra = []
            if isinstance(rows, int):
                extra.append(f"{rows} rows")
            if isinstance(doc.get("inputs_scored"), int):
                extra.append(f"{doc['inputs_scored']} of {doc.get('inputs')} audio files")
            if doc.get("row_selection") and doc.get("row_selection") != "all":
                extra.append(str(doc["row_selection"]))
            if v.get("hash"):
                extra.append(f"file hash {v['hash']}")
            return base_name(v["path"]) + (f" ({', '.join(extra)})" if extra else "")
    for key in ("features", "source", "data", "input", "on"):
        for where in (doc, prov):
            v = where.get(key)
            if isinstance(v, str) and v:
                rows = doc.get("rows") or doc.get("rows_attacked")
                return base_name(v) + (f" ({rows} rows)" if isinstance(rows, int) else "")
            if isinstance(v, dict) and v.get("source"):
                return data_text(v)
    rows = doc.get("rows") or doc.get("rows_attacked")
    return f"{rows} rows (source not recorded)" if rows else "data not recorded in the file"
