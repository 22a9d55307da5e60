"""`dfdet explain`: feature attributions of a detector, or a model-free shortcut scan of a feature store."""

from __future__ import annotations

import json
import time

import click

from dfdet import console
from dfdet.errors import DfdetError, UsageError
from dfdet.jsonio import write_json


@click.command("explain")
@click.argument("args", nargs=-1, metavar="MODEL FEATS | --shortcuts FEATS")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="JSON to write (- = stdout).")
@click.option("--shortcuts", is_flag=True, help="Model-free shortcut scan of FEATS (univariate AUC per feature).")
@click.option(
    "--per-sample", "per_sample", type=click.Path(dir_okay=False), help="Also write per-sample attributions (JSONL)."
)
@click.option(
    "--methods",
    default=None,
    help="Comma-separated: saliency, ig, ixg (captum). Default: all three; frame models: saliency,ixg.",
)
@click.option("--max-rows", type=click.IntRange(min=1), default=None, help="Explain a seeded, stratified subset.")
@click.option("--top", type=click.IntRange(min=1), default=20, show_default=True, help="Top features listed.")
@click.option("--sample-top", type=click.IntRange(min=0), default=5, show_default=True, help="Top features per sample.")
@click.option(
    "--n-steps",
    type=click.IntRange(min=2),
    default=64,
    show_default=True,
    help="Integrated-gradients steps (rows missing 1 % completeness get more).",
)
@click.option("--no-members", is_flag=True, help="Ensembles: skip the per-member attributions.")
@click.option("--calibration", type=click.Path(dir_okay=False), help="Calibration JSON applied on top of MODEL.")
@click.option(
    "--threshold",
    type=float,
    default=0.95,
    show_default=True,
    help="--shortcuts: flag features with AUC >= T or <= 1 - T.",
)
@click.option("--by-system", is_flag=True, help="--shortcuts: also scan each attack system's spoofs vs bona fide.")
@click.option(
    "--group-cv", is_flag=True, help="--shortcuts: cross-validated accuracy of a classifier on each feature group."
)
def explain(
    args: tuple[str, ...],
    output: str,
    shortcuts: bool,
    per_sample: str | None,
    methods: str | None,
    max_rows: int | None,
    top: int,
    sample_top: int,
    n_steps: int,
    no_members: bool,
    calibration: str | None,
    threshold: float,
    by_system: bool,
    group_cv: bool,
) -> None:
    """Explain what a detector's decisions rest on, or scan features for shortcuts.

    \b
    dfdet explain MODEL FEATS -o attr.json [--per-sample attr.jsonl] [--methods saliency,ig,ixg]
    dfdet explain --shortcuts FEATS -o scan.json [--threshold 0.95] [--by-system] [--group-cv]

    MODEL is a model .pt, a calibrated detector or an ensemble JSON (attributions per member and of the fused
    score). Attributions (captum: saliency |df/dx|, integrated gradients from the training mean, input x gradient)
    are of the SPOOF-positive output f = -score (score is bona-fide-positive) w.r.t. the standardised features,
    aggregated per feature and per feature group, split by class and by correctness at the detector's threshold.
    Frame models (lcnn) are explained on whole utterances: per frame dimension (summed over time), over relative
    time, and (lfcc) as a time x frequency map of saliency w.r.t. the log filterbank energies.
    The shortcut scan needs no model: the ROC-AUC and best one-threshold accuracy of every feature alone.
    """
    from dfdet.store import load_features

    settings = console.current_settings()
    t0 = time.perf_counter()
    if shortcuts:
        if len(args) != 1:
            raise UsageError(
                f"--shortcuts takes one feature file, got {len(args)} argument(s)", "dfdet explain --shortcuts FEATS"
            )
        if per_sample:
            raise UsageError("--per-sample applies to attributions, not to --shortcuts", "drop --per-sample")
        from dfdet.provenance import input_files, provenance
        from dfdet.shortcuts import format_scan, shortcut_scan

        fs = load_features(args[0])
        if len(fs) == 0:
            raise DfdetError(f"{args[0]}: no rows", "pass a feature store with labelled rows")
        res = shortcut_scan(fs, threshold=threshold, by_system=by_system, group_cv=group_cv, seed=settings.seed)
        res["provenance"] = provenance(command="explain --shortcuts", inputs=input_files(features=args[0]))
        write_json(output, res)
        console.info(format_scan(res))
        console.info(f"shortcut scan of {len(fs)} rows x {fs.dim} features in {time.perf_counter() - t0:.1f} s")
        return
    if len(args) != 2:
        raise UsageError(
            f"expected MODEL FEATS, got {len(args)} argument(s)",
            "dfdet explain MODEL FEATS -o OUT.json, or dfdet explain --shortcuts FEATS -o OUT.json",
        )
    if by_system or group_cv:
        raise UsageError("--by-system/--group-cv apply to --shortcuts", "add --shortcuts or drop them")
    model_path, feats = args
    from dfdet.attacks import load_diff_detector
    from dfdet.explain import FRAME_METHODS, METHODS, ExplainOptions, format_summary, frame_methods, parse_methods
    from dfdet.explain import explain as run_explain
    from dfdet.provenance import input_files, provenance
    from dfdet.splitting import stratified_subsample

    det = load_diff_detector(model_path, calibration)
    frames = det.input_kind == "frames"
    meths = frame_methods(methods or FRAME_METHODS) if frames else parse_methods(methods or METHODS)
    if frames and n_steps != 64:
        raise UsageError("--n-steps applies to integrated gradients, which frame models do not offer", "drop it")
    fs = load_features(feats)
    det.check_features(fs)
    if len(fs) == 0:
        raise DfdetError(f"{feats}: no rows", "pass a feature store with at least one row")
    idx = stratified_subsample(fs.y, max_rows, settings.seed)
    sub = fs.subset(idx) if len(idx) < len(fs) else fs
    console.verbose(f"explain: {det.kind} {model_path}, {len(sub)} of {len(fs)} rows, methods {meths}")
    # a frame model reads the per-frame dimensions; a vector model the rows (on a frame store: frame statistics)
    names, groups = sub.feature_names, sub.groups
    if frames and sub.frames is not None:
        names, groups = sub.frames.names, sub.frames.groups
    opts = ExplainOptions(
        methods=tuple(meths),
        n_steps=n_steps,
        top=top,
        feature_names=names,
        groups=groups,
        per_sample=bool(per_sample),
        per_sample_top=sample_top,
    )
    summary, records = run_explain(
        det,
        det.inputs_of(sub),
        sub.y,
        opts,
        members=not no_members,
        utt_ids=sub.utt_id,
        progress=lambda it: console.progress(it, desc="methods"),
    )
    summary["rows_total"] = len(fs)
    summary["row_selection"] = (
        "all" if len(idx) == len(fs) else f"stratified sample of {len(idx)} (seed {settings.seed})"
    )
    summary["detector_description"] = det.description
    summary["provenance"] = provenance(
        command="explain", inputs=input_files(detector=model_path, features=feats, calibration=calibration)
    )
    write_json(output, summary)
    if per_sample:
        from dfdet.atomic import atomic_open

        with atomic_open(per_sample, "w") as fh:
            for r in records:
                fh.write(json.dumps(r, allow_nan=False, default=float) + "\n")
    console.info(format_summary(summary, top=min(top, 10)))
    console.info(console.summary_line(len(sub), len(sub), 0, time.perf_counter() - t0))
