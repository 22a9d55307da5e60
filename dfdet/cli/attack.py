"""`dfdet attack`: how easily a detector is fooled — feature-space FGSM/PGD sweeps, or real-signal degradations."""

from __future__ import annotations

import time

import click

from dfdet import console
from dfdet.cli.options import jobs_option
from dfdet.errors import DfdetError, PartialSuccess, UsageError


def _eps(ctx: click.Context, param: click.Parameter, value: str) -> list[float]:
    from dfdet.perturb import parse_eps_list

    return parse_eps_list(value)


def _list_conditions(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from dfdet.degrade import CONDITIONS

    for d in CONDITIONS.values():
        click.echo(f"{d.name}\t{d.description}")
    ctx.exit(0)


@click.command("attack")
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("inputs", nargs=-1, required=True, metavar="FEATS | AUDIO...")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="JSON to write (- = stdout); required.")
@click.option(
    "--method",
    type=click.Choice(["fgsm", "pgd", "degrade"]),
    default="fgsm",
    show_default=True,
    help="fgsm/pgd: feature-space attacks on FEATS; degrade: real-signal degradations of AUDIO.",
)
@click.option(
    "--eps",
    default="0,0.05,0.1,0.15,0.2",
    show_default=True,
    callback=_eps,
    help="Comma-separated perturbation budgets in standardised units (training standard deviations).",
)
@click.option("--norm", type=click.Choice(["linf", "l2"]), default="linf", show_default=True, help="PGD ball.")
@click.option("--steps", type=click.IntRange(min=1), default=10, show_default=True, help="PGD steps.")
@click.option("--step-size", type=float, default=None, help="PGD step (default 2.5 * eps / steps).")
@click.option("--random-start", is_flag=True, help="PGD: start from a seeded random point in the ball.")
@click.option("--clamp", "clamp_text", default=None, help="Clamp adversarial features to LO,HI (standardised units).")
@click.option(
    "--clamp-from",
    type=click.Path(dir_okay=False),
    default=None,
    help="Clamp each feature to its min/max over this store (e.g. the training features), standardised.",
)
@click.option(
    "--target",
    type=click.Choice(["decision", "label"]),
    default="decision",
    show_default=True,
    help="decision: push each row away from the detector's current decision; label: away from its true class "
    "(the study's FGSM; accuracy can only fall).",
)
@click.option("--max-rows", type=click.IntRange(min=1), default=None, help="Attack a seeded, stratified subset.")
@click.option("--calibration", type=click.Path(dir_okay=False), help="Calibration JSON applied on top of MODEL.")
@click.option("--labels", type=click.Path(dir_okay=False), help="degrade: label file (protocol, meta.csv, table).")
@click.option("--conditions", default=None, help="degrade: comma-separated subset of conditions (default all).")
@click.option(
    "--list-conditions",
    is_flag=True,
    is_eager=True,
    expose_value=False,
    callback=_list_conditions,
    help="degrade: list the conditions and exit.",
)
@click.option("--skip-bad", is_flag=True, help="degrade: continue past unreadable audio (listed; exit 3).")
@jobs_option
def attack(
    model: str,
    inputs: tuple[str, ...],
    output: str | None,
    method: str,
    eps: list[float],
    norm: str,
    steps: int,
    step_size: float | None,
    random_start: bool,
    clamp_text: str | None,
    clamp_from: str | None,
    target: str,
    max_rows: int | None,
    calibration: str | None,
    labels: str | None,
    conditions: str | None,
    skip_bad: bool,
    jobs: int | None,
) -> None:
    """Attack MODEL (a model .pt, calibrated detector or ensemble JSON; ensembles are attacked through their fused
    score) and report how its decisions hold up.

    \b
    dfdet attack MODEL FEATS --method fgsm --eps 0,0.05,0.1,0.15,0.2 -o fgsm.json
    dfdet attack MODEL FEATS --method pgd --norm l2 --steps 10 --eps 0,0.5,1 -o pgd.json
    dfdet attack MODEL AUDIO... --method degrade [--labels FILE] -o degrade.json
    dfdet attack MODEL test.h5 --method degrade -o degrade.json    # the audio a store's rows came from

    fgsm/pgd perturb the standardised features (eps in training standard deviations) to push every row across the
    detector's threshold, away from its current decision; per eps: accuracy at the threshold, EER, AUC and the
    decision flip rate (attack success), plus column lists for a plot (`curve`). degrade re-featurizes the audio
    under noise (white/pink at 20/10/5/0 dB SNR), 8 kHz band-limiting, OGG/MP3 re-encoding, gain changes and
    trimming/padding, and reports EER/AUC/accuracy per condition. Scores are bona-fide-positive. With -j N, N worker
    processes decode, degrade and featurize the files (the same numbers for any N); the model scores in the parent.
    """
    settings = console.current_settings()
    t0 = time.perf_counter()
    from dfdet.attacks import load_diff_detector
    from dfdet.jsonio import write_json
    from dfdet.provenance import input_files, provenance
    from dfdet.splitting import stratified_subsample

    if not output:
        raise UsageError("missing -o/--output", "write the results with -o OUT.json (- = stdout)")
    if method == "degrade":
        if clamp_text or clamp_from or random_start:
            raise UsageError("--clamp/--clamp-from/--random-start apply to fgsm/pgd", "drop them for --method degrade")
        from dfdet.degrade import resolve_conditions
        from dfdet.protocols import resolve_utterances
        from dfdet.robustness import degradation_report, format_report

        conds = resolve_conditions(conditions)
        det = load_diff_detector(model, calibration)
        from dfdet.scoring import is_store_path

        if len(inputs) == 1 and is_store_path(inputs[0]) and not labels:
            from dfdet.store import load_features, utterances_of

            utts = utterances_of(load_features(inputs[0]))  # a split's audio, with its labels
        else:
            utts = resolve_utterances(list(inputs), labels=labels)
        if not utts:
            raise DfdetError("no audio inputs", "pass audio files, directories or list files")
        from dfdet.featurize import available_cores

        jobs = jobs or available_cores()
        console.verbose(f"attack: degrade {len(utts)} file(s) under {len(conds)} condition(s); jobs {jobs}")
        if not any(u.label >= 0 for u in utts):
            console.warn("no labels: EER/AUC/accuracy need --labels FILE; only decision flips are reported")
        rep = degradation_report(
            det,
            utts,
            conds,
            seed=settings.seed,
            skip_bad=skip_bad,
            progress=lambda it: console.progress(it, total=len(utts), desc="degrade", unit="file"),
            warn=console.warn,
            jobs=jobs,
        )
        rep["detector_description"] = det.description
        rep["provenance"] = provenance(
            command="attack --method degrade",
            inputs=input_files(detector=model, labels=labels, features=inputs[0] if len(inputs) == 1 else None),
        )
        write_json(output, rep)
        console.info(format_report(rep))
        bad_inputs = rep["inputs"] - rep["inputs_scored"]
        failed_runs = sum(r["n_failed"] for r in rep["conditions"])
        if failed_runs:
            console.warn(f"{failed_runs} degraded version(s) could not be made (listed under 'failures' in {output})")
        console.info(console.summary_line(rep["inputs_scored"], rep["inputs"], bad_inputs, time.perf_counter() - t0))
        if bad_inputs:
            raise PartialSuccess(bad_inputs)
        return

    if conditions or labels or skip_bad or jobs is not None:
        raise UsageError("--conditions/--labels/--skip-bad/--jobs apply to --method degrade", "drop them for fgsm/pgd")
    if len(inputs) != 1:
        raise UsageError(f"--method {method} takes one feature file, got {len(inputs)}", "dfdet attack MODEL FEATS")
    if method == "fgsm" and norm != "linf":
        raise UsageError("FGSM is an L-infinity attack", "use --norm linf, or --method pgd for --norm l2")
    if clamp_text and clamp_from:
        raise UsageError("--clamp and --clamp-from both given", "use one")
    import numpy as np

    from dfdet.attacks import attack_sweep, format_table
    from dfdet.perturb import clamp_from_data, parse_clamp
    from dfdet.store import load_features

    feats = inputs[0]
    det = load_diff_detector(model, calibration)
    fs = load_features(feats)
    det.check_features(fs)
    if len(fs) == 0:
        raise DfdetError(f"{feats}: no rows", "pass a feature store with at least one row")
    if not (fs.y >= 0).any():
        console.warn(f"{feats} has no labels: only decision flip rates are meaningful")
    clamp = None
    if clamp_text:
        clamp = parse_clamp(clamp_text)
    elif clamp_from:
        ref = load_features(clamp_from)
        det.check_features(ref)
        clamp = clamp_from_data(det.flat(det.standardize(det.inputs_of(ref))))
    idx = stratified_subsample(fs.y, max_rows, settings.seed)
    sub = fs.subset(idx) if len(idx) < len(fs) else fs
    console.verbose(f"attack: {det.kind} {model}, {method}/{norm}, eps {eps}, {len(sub)} rows")
    res = attack_sweep(
        det,
        det.inputs_of(sub),
        np.asarray(sub.y),
        eps,
        method=method,
        norm=norm,
        steps=steps,
        step_size=step_size,
        random_start=random_start,
        clamp=clamp,
        seed=settings.seed,
        progress=lambda it: console.progress(it, desc=method, unit="eps"),
        target=target,
    )
    res["detector"] = model
    res["schema"] = "dfdet.attack/1"
    res["detector_kind"] = det.kind
    res["detector_description"] = det.description
    res["rows_total"] = len(fs)
    res["row_selection"] = "all" if len(idx) == len(fs) else f"stratified sample of {len(idx)} (seed {settings.seed})"
    res["provenance"] = provenance(
        command=f"attack --method {method}",
        inputs=input_files(detector=model, features=feats, calibration=calibration, clamp_from=clamp_from),
    )
    write_json(output, res)
    console.info(format_table(res))
    console.info(console.summary_line(len(sub), len(sub), 0, time.perf_counter() - t0))
