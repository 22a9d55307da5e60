"""`dfdet calibrate`: fit a score-to-LLR calibration on labelled scores, or apply one to a score file."""

from __future__ import annotations

from pathlib import Path

import click

from dfdet.cli import options as opt

METHODS = ("logistic", "isotonic", "temperature")


def _read_labelled(path: str, labels: str | None):
    """A score table with labels attached from --labels when given."""
    from dfdet.scores import attach_keys, read_keys, read_scores

    table = read_scores(path)
    if labels:
        table, _ = attach_keys(table, read_keys(labels))
    return table


def _detector_table(detector: str, on: str):
    """A score table of the detector's raw scores on labelled features."""
    from dfdet.scores import ScoreTable
    from dfdet.scoring import load_detector
    from dfdet.store import load_features

    fs = load_features(on)
    det = load_detector(detector)
    det.check_features(fs)
    raw = det.score_features(fs)["score"]  # a FeatureSet: frame models read its frames
    return ScoreTable(fs.utt_id, raw, label=fs.y, source=f"{Path(detector).name} on {Path(on).name}")


def _summary(doc: dict, source: str) -> list[str]:
    q, thr, fd = doc["quality"], doc["threshold"], doc["fitting_data"]
    params = ", ".join(f"{k}={v:.6g}" for k, v in doc["params"].items() if isinstance(v, float))
    at = q["at_threshold"]
    return [
        f"calibration: {doc['method']}{f' ({params})' if params else ''} fitted on {fd['n_bonafide']} bona fide + "
        f"{fd['n_spoof']} spoof from {source} (fit prior of bona fide {doc['fit_prior']})",
        f"quality on the fitting data: Cllr {q['cllr']:.4f} (min Cllr {q['min_cllr']:.4f}, raw scores "
        f"{q['raw_cllr']:.4f}); ECE {q['ece']:.4f} ({q['ece_bins']} bins)",
        f"threshold: {thr['policy']} = {thr['value']:.6g} on the LLR (bona fide iff LLR >= threshold) -> accuracy "
        f"{at['accuracy']:.4f}, FAR {at['far']:.4f} (spoof accepted), FRR {at['frr']:.4f} (bona fide rejected) "
        "on the fitting data",
    ]


@click.command("calibrate", context_settings={"max_content_width": 110})
@click.argument("scores", type=click.Path(dir_okay=False, allow_dash=True), required=False)
@opt.fit_output_option("Calibration JSON to write (fitting), or score file to write with --apply (default stdout).")
@opt.method_option(
    METHODS,
    "logistic",
    "logistic: prior-weighted logistic regression, llr = a*score + b (BOSARIS); isotonic: PAV, "
    "monotone; temperature: llr = a*score.",
)
@opt.threshold_policy_option(
    "bayes",
    "bayes (-ln beta from --p-spoof/--c-miss/--c-fa), eer, youden, max-accuracy, or fpr=X (at most a "
    "fraction X of spoof accepted on the fitting data). Chosen on the calibrated LLRs.",
)
@opt.cost_options
@click.option(
    "--fit-prior",
    type=float,
    default=0.5,
    show_default=True,
    help="Effective prior of bona fide used to weight the classes while fitting (0.5 = balanced).",
)
@opt.key_labels_option("Key/protocol file supplying labels the score file lacks (joined by utt_id).")
@click.option(
    "--detector",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Model (or ensemble) that produced the scores: recorded relative to the JSON, which then acts as "
    "a calibrated detector for `dfdet score`.",
)
@opt.on_features_option(
    "Fit on the --detector's scores of these labelled features (HDF5/.npz) instead of a score file."
)
@opt.apply_option("Apply this calibration JSON to SCORES instead of fitting.")
@click.option(
    "--posterior-prior",
    type=float,
    default=0.5,
    show_default=True,
    help="With --apply: spoof prior for the p_spoof column, p_spoof = sigmoid(-(llr + ln((1-P)/P))); "
    "0.5 gives sigmoid(-llr).",
)
@opt.score_format_option("With --apply: output format.")
@opt.json_flag("When fitting: also print the calibration document on stdout.")
def calibrate(
    scores,
    output,
    method,
    policy,
    p_spoof,
    c_miss,
    c_fa,
    fit_prior,
    labels,
    detector,
    on,
    apply_path,
    posterior_prior,
    fmt,
    as_json,
):
    """Fit a calibration of SCORES (a labelled score file; `-` = stdin) and write it as JSON, or --apply one.

    Scores are bona-fide-positive (higher = more likely genuine). A calibration maps them to natural-log likelihood
    ratios (LLR, bona fide vs spoof) and stores a decision threshold on that LLR. Fitting prints Cllr vs min Cllr,
    ECE and the threshold on stderr. --apply -o FILE writes FILE.prov.json beside it (the calibration's and the
    input's content hashes, the models under it), as `dfdet score -o` does.

    \b
      dfdet calibrate dev.tsv -o cal.json --threshold eer
      dfdet calibrate --apply cal.json eval.tsv -o eval.cal.tsv
      dfdet calibrate --detector model.pt --on dev.h5 -o cal.json    # a calibrated detector for `dfdet score`

    Domain shift: fit on a small labelled slice of the target domain, evaluate on a disjoint one:

    \b
      dfdet split wild.h5 --parts fit=0.2,eval=0.8 -o wild/
      dfdet calibrate --detector model.pt --on wild/fit.h5 -o wild_cal.json
      dfdet score wild_cal.json wild/eval.h5 | dfdet evaluate -
    """
    from dfdet import calibration
    from dfdet.console import info, verbose, warn
    from dfdet.errors import DfdetError, UsageError

    calibration.parse_threshold_policy(policy)
    if on and scores:
        raise UsageError("give either a SCORES file or --detector with --on FEATURES, not both", "drop one")
    if not on and not scores:
        raise UsageError("missing SCORES", "pass a labelled score file, or --detector MODEL --on FEATURES")
    if apply_path:
        if on:
            raise UsageError("--apply works on score files", "score the features first (dfdet score) or drop --on")
        _apply(apply_path, scores, output or "-", posterior_prior, fmt)
        return
    if not output:
        raise UsageError("missing -o/--output for the calibration JSON", "add -o cal.json (or --apply CAL.json)")
    if on and not detector:
        raise UsageError("--on needs --detector (the model or ensemble to score the features with)", "add --detector")
    verbose(f"method={method} threshold={policy} p_spoof={p_spoof} c_miss={c_miss} c_fa={c_fa} fit_prior={fit_prior}")
    table = _detector_table(detector, on) if on else _read_labelled(scores, labels)
    if on and labels:
        from dfdet.scores import attach_keys, read_keys

        table, _ = attach_keys(table, read_keys(labels))
    unknown = int((table.label < 0).sum())
    source = table.source or str(scores)
    if unknown:
        raise DfdetError(
            f"{source}: {unknown} of {len(table)} row(s) have no bonafide/spoof label",
            "fitting needs labels: add a label column or pass --labels KEYFILE",
        )
    doc = calibration.fit_calibration(
        table.score,
        table.label,
        method,
        policy,
        p_spoof=p_spoof,
        c_miss=c_miss,
        c_fa=c_fa,
        fit_prior=fit_prior,
        source=Path(source).name,
    )
    calibration.save_calibration(output, doc, detector=detector)
    for w in doc.get("warnings", []):
        warn(w)
    for line in _summary(doc, source):
        info(line)
    info(f"wrote {output}")
    if as_json:
        calibration.write_json("-", calibration.load_calibration(output) if output != "-" else doc)


def _apply(cal_path: str, scores: str, output: str, posterior_prior: float, fmt: str) -> None:
    from dfdet import calibration
    from dfdet.console import info
    from dfdet.errors import UsageError
    from dfdet.scores import ScoreTable, read_scores, write_scores

    if not 0.0 < posterior_prior < 1.0:
        raise UsageError(f"--posterior-prior {posterior_prior} is outside (0, 1)", "use e.g. 0.5")
    doc = calibration.load_calibration(cal_path)
    table = read_scores(scores)
    llr, decision = calibration.apply_calibration(doc, table.score)
    extra = dict(table.extra)
    if "raw_score" not in extra:
        extra["raw_score"] = [repr(float(v)) for v in table.score]
    out = ScoreTable(
        table.utt_id,
        llr,
        path=table.path,
        p_spoof=calibration.p_spoof_from_llr(llr, posterior_prior),
        decision=decision,
        label=table.label,
        extra=extra,
        source=table.source,
    )
    write_scores(output, out, format=fmt, provenance=lambda: calibration.applied_provenance(cal_path, doc, scores))
    thr = doc["threshold"]
    n_spoof = int((decision == 1).sum())
    info(
        f"calibrated {len(out)} score(s) with {doc['method']} from {cal_path}; p_spoof assumes P(spoof) = "
        f"{posterior_prior}; threshold {thr['policy']} = {thr['value']:.6g}: {n_spoof} spoof, "
        f"{len(out) - n_spoof} bona fide"
    )
