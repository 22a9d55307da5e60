"""`dfdet evaluate`: the field's metrics for one or more score files, as a table or JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from dfdet.cli.options import cost_options, json_flag
from dfdet.errors import UsageError

_TABLE_COLUMNS = (
    ("name", "name", None),
    ("group", "group", None),
    ("n_bona", "n_bonafide", "d"),
    ("n_spoof", "n_spoof", "d"),
    ("eer%", "eer", "pct"),
    ("auc", "roc_auc", ".4f"),
    ("minDCF", "min_dcf", ".4f"),
    ("actDCF", "act_dcf", ".4f"),
    ("Cllr", "cllr", ".4f"),
    ("minCllr", "min_cllr", ".4f"),
    ("tDCF19", "min_tdcf_2019", ".4f"),
    ("tDCF21", "min_tdcf_2021", ".4f"),
    ("acc", "decision.accuracy", ".4f"),
    ("bal_acc", "decision.balanced_accuracy", ".4f"),
    ("F1", "decision.f1", ".4f"),
)


def _get(row: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        if not isinstance(row, dict):
            return None
        row = row.get(part)
    return row


def _cell(value: Any, fmt: str | None) -> str:
    if value is None:
        return "-"
    if fmt is None:
        return str(value)
    if isinstance(value, float) and value != value:
        return "-"
    if fmt == "pct":
        return f"{100 * value:.2f}"
    return format(value, fmt)


def format_table(rows: list[dict[str, Any]], with_ci: bool) -> str:
    """Plain aligned text: one line per file (or group); EER in percent, CI for EER when computed."""
    cols = [c for c in _TABLE_COLUMNS if c[0] != "group" or any(r["group"] is not None for r in rows)]
    header = [c[0] for c in cols] + (["eer%_ci"] if with_ci else [])
    lines = []
    for r in rows:
        cells = [_cell(_get(r, key) if key != "group" else (r["group"] or "(pooled)"), f) for _, key, f in cols]
        if with_ci:
            ci = _get(r, "ci.eer")
            cells.append(f"[{100 * ci[0]:.2f}, {100 * ci[1]:.2f}]" if ci else "-")
        lines.append(cells)
    widths = [max(len(h), *(len(ln[i]) for ln in lines)) for i, h in enumerate(header)]

    def fmt_line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([fmt_line(header), *(fmt_line(ln) for ln in lines)]) + "\n"


def _names(files: tuple[str, ...], names: tuple[str, ...]) -> list[str]:
    if names:
        if len(names) != len(files):
            raise UsageError(f"{len(names)} --name value(s) for {len(files)} score file(s)", "give one --name per file")
        return list(names)
    stems = ["stdin" if f == "-" else Path(f).stem for f in files]
    return [f if stems.count(s) > 1 else s for f, s in zip(files, stems, strict=True)]


def _asv_rates(text: str | None) -> dict[str, float] | None:
    if text is None:
        return None
    parts = text.split(",")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 3:
        raise UsageError(f"--asv-rates {text!r} is not three numbers", "write --asv-rates PFA,PMISS,PMISS_SPOOF")
    return dict(zip(("pfa_asv", "pmiss_asv", "pmiss_spoof_asv"), values, strict=True))


@click.command("evaluate")
@click.argument("score_files", nargs=-1, metavar="SCORES...")
@json_flag("Write JSON (all metrics, settings, provenance) instead of a table.")
@click.option(
    "--by",
    default=None,
    help="Also one row per group of this column: system (per-attack, bona fide pooled), "
    "speaker, domain or any other column of the score file.",
)
@click.option(
    "--threshold", type=float, default=None, help="Decision threshold for accuracy/F1 (score >= X: bona fide)."
)
@click.option(
    "--threshold-from",
    type=click.Path(dir_okay=False),
    default=None,
    help="Take the threshold from a model .pt, a calibration/ensemble JSON, or a labelled (dev) score "
    "file's EER threshold.",
)
@click.option(
    "--ci",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=None,
    help="Add percentile bootstrap confidence intervals at this level (e.g. 0.95).",
)
@click.option(
    "--bootstrap",
    "n_boot",
    type=click.IntRange(1),
    default=1000,
    show_default=True,
    help="Bootstrap resamples (stratified by class; seeded by --seed).",
)
@cost_options
@click.option(
    "--asv-rates",
    default=None,
    metavar="PFA,PMISS,PMISS_SPOOF",
    help="ASV error rates for the t-DCFs [default: ASVspoof 2019 LA eval 0.0246047,0.0245810,0.2393475].",
)
@click.option(
    "--labels",
    "--keys",
    "labels_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Key/protocol file (e.g. the ASVspoof 5 `filename cm-label` key, or a protocol): join labels (and "
    "speaker/system/codec/attack/gender) by utt_id when the score file has none. With --sasv: the track-2 key file.",
)
@click.option(
    "--sasv",
    "sasv_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="ASVspoof 5 track-2 score file (spk filename cm-score asv-score sasv-score; needs --keys, the "
    "spk filename cm-label asv-label key): print a-DCF, min t-DCF and t-EER with bootstrap CIs (--ci, default 0.95).",
)
@click.option("--numeric-labels", is_flag=True, help="Accept 0 (bona fide) / 1 (spoof) labels.")
@click.option("--name", "names", multiple=True, help="Row name per score file (default: file stem); repeat per file.")
@click.option("-o", "--output", default="-", show_default=True, help="Write the table/JSON here (atomic).")
@click.pass_context
def evaluate(
    ctx: click.Context,
    score_files: tuple[str, ...],
    as_json: bool,
    by: str | None,
    threshold: float | None,
    threshold_from: str | None,
    ci: float | None,
    n_boot: int,
    p_spoof: float,
    c_miss: float,
    c_fa: float,
    asv_rates: str | None,
    labels_file: str | None,
    sasv_file: str | None,
    numeric_labels: bool,
    names: tuple[str, ...],
    output: str,
) -> None:
    """Metrics of score files: EER, ROC-AUC, minDCF/actDCF, Cllr/min Cllr, t-DCF (2019 and 2021), accuracy/F1.

    SCORES are dfdet score files (`-` = stdin) or ASVspoof-style score files. Scores are bona-fide-positive
    (higher = more likely genuine; natural-log odds) as in the ASVspoof evaluation package. Several files give
    side-by-side rows (e.g. in-domain vs out-of-domain). Warnings (inverted scores, hard decisions) go to stderr.
    Decision metrics (spoof = positive class for F1) use --threshold, else --threshold-from, else the file's
    decision column, else 0. `--by` takes system (per attack, A01..), attack (ASVspoof 5 attack tag), codec,
    codec_q, gender, speaker, domain or any other column.

    Track 2 (spoofing-aware speaker verification): `dfdet evaluate --sasv SCORES --keys KEYS` reads the official
    score and key files and prints the a-DCF (Shim et al., 2024), the ASVspoof 5 min t-DCF with the organisers'
    ASV error rates, and the concurrent t-EER (Kinnunen et al., 2023), with bootstrap CIs over trials (seeded).
    """
    from dfdet import console
    from dfdet.atomic import atomic_open
    from dfdet.jsonio import dumps
    from dfdet.metrics import evaluate_table
    from dfdet.provenance import provenance
    from dfdet.scores import attach_keys, read_keys, read_scores, read_threshold

    if sasv_file is not None:
        if score_files:
            raise UsageError("--sasv takes its score file itself; SCORES given too", "pass either SCORES or --sasv")
        if labels_file is None:
            raise UsageError("--sasv needs the track-2 key file", "add --keys KEYS (spk filename cm-label asv-label)")
        _evaluate_sasv(sasv_file, labels_file, as_json, 0.95 if ci is None else ci, n_boot, output)
        return
    if not score_files:
        raise UsageError("no score file given", "pass SCORES..., or --sasv SCORES --keys KEYS for track 2")
    if threshold is not None and threshold_from is not None:
        raise UsageError("--threshold and --threshold-from both given", "pass only one")
    if score_files.count("-") > 1:
        raise UsageError("stdin (-) given more than once", "pass - once")
    row_names = _names(score_files, names)
    rates = _asv_rates(asv_rates)
    thr_source = None
    if threshold_from is not None:
        threshold, thr_source = read_threshold(threshold_from)
        console.info(f"threshold {threshold:.6g} from {thr_source}")
    keys = read_keys(labels_file, numeric_labels=numeric_labels) if labels_file else None
    seed = console.current_settings().seed
    console.verbose(
        f"evaluate: files={list(score_files)} by={by} threshold={threshold} p_spoof={p_spoof} c_miss={c_miss} "
        f"c_fa={c_fa} asv_rates={rates or 'ASVspoof 2019 LA eval'} ci={ci} bootstrap={n_boot} seed={seed}"
    )
    rows: list[dict[str, Any]] = []
    for path, name in zip(score_files, row_names, strict=True):
        table = read_scores(path, numeric_labels=numeric_labels)
        if keys is not None:
            table, missing = attach_keys(table, keys)
            if missing:
                console.warn(f"{name}: {missing} utterance(s) not in {labels_file}")
        file_rows = evaluate_table(
            table,
            name=name,
            by=by,
            threshold=threshold,
            p_spoof=p_spoof,
            c_miss=c_miss,
            c_fa=c_fa,
            asv_rates=rates,
            ci=ci,
            n_boot=n_boot,
            seed=seed,
        )
        for row in file_rows:
            row["file"] = path
            if thr_source is not None:
                row["threshold_source"] = thr_source
            where = name if row["group"] is None else f"{name} [{by}={row['group']}]"
            for w in row["warnings"]:
                console.warn(f"{where}: {w}")
        rows.extend(file_rows)
    with atomic_open(output, "w") as fh:
        if as_json:
            settings = {
                "by": by,
                "threshold": threshold,
                "p_spoof": p_spoof,
                "c_miss": c_miss,
                "c_fa": c_fa,
                "asv_rates": rates,
                "ci": ci,
                "bootstrap": n_boot if ci is not None else None,
                "seed": seed,
                "score_convention": "bona-fide-positive natural-log odds; labels 0 bona fide, 1 spoof",
            }
            doc = {"schema": "dfdet.evaluate/1", "settings": settings, "results": rows, "provenance": provenance()}
            fh.write(dumps(doc) + "\n")
        else:
            fh.write(format_table(rows, with_ci=ci is not None))


_SASV_ROWS = (("a-DCF", "a_dcf", 1.0), ("min t-DCF", "min_tdcf", 1.0), ("t-EER%", "t_eer", 100.0))


def format_sasv(out: dict[str, Any]) -> str:
    """Plain table of the track-2 metrics: metric, value and (when computed) the bootstrap interval."""
    ci = out.get("ci")
    head = ["metric", "value"] + ([f"ci{round(100 * ci['level'])}%"] if ci else [])
    lines = [head]
    for label, key, scale in _SASV_ROWS:
        row = [label, f"{scale * out[key]:.6f}"]
        if ci:
            lo, hi = ci[key]
            row.append(f"[{scale * lo:.6f}, {scale * hi:.6f}]")
        lines.append(row)
    widths = [max(len(r[i]) for r in lines) for i in range(len(head))]
    cells = [
        [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))] for r in lines
    ]
    return "\n".join("  ".join(r) for r in cells) + "\n"


def _evaluate_sasv(scores: str, keys: str, as_json: bool, ci: float, n_boot: int, output: str) -> None:
    from dfdet import console
    from dfdet.atomic import atomic_open
    from dfdet.jsonio import dumps
    from dfdet.provenance import provenance
    from dfdet.sasv import read_sasv, sasv_summary

    seed = console.current_settings().seed
    trials = read_sasv(scores, keys)
    console.verbose(f"evaluate --sasv: {scores} with {keys}: {len(trials)} trials; ci={ci} bootstrap={n_boot}")
    out = sasv_summary(trials, ci=ci, n_boot=n_boot, seed=seed)
    console.info(f"{out['n_target']} target, {out['n_nontarget']} non-target, {out['n_spoof']} spoof trials")
    with atomic_open(output, "w") as fh:
        if as_json:
            doc = {"schema": "dfdet.evaluate.sasv/1", "scores": scores, "keys": keys, "results": out,
                   "provenance": provenance()}  # fmt: skip
            fh.write(dumps(doc) + "\n")
        else:
            fh.write(format_sasv(out))
