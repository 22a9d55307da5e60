"""`dfdet ensemble`: fuse several detectors' score files (mean, AUC^2 with flips, logistic), honestly evaluated."""

from __future__ import annotations

from pathlib import Path

import click

from dfdet.cli import options as opt

METHODS = ("auc2", "mean", "logistic")
CALIBRATIONS = ("logistic", "isotonic", "temperature", "none")


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _metrics_line(m: dict) -> str:
    line = (
        f"EER {_pct(m['eer'])}, AUC {m['auc']:.4f}, accuracy {m['accuracy']:.4f} "
        f"(balanced {m['balanced_accuracy']:.4f}, FAR {m['far']:.4f}, FRR {m['frr']:.4f})"
    )
    if "cllr" in m:
        line += f", Cllr {m['cllr']:.4f} (min {m['min_cllr']:.4f})"
    return line


def _print_report(doc: dict) -> None:
    from dfdet.console import info, warn

    f = doc["fuser"]
    alone = {m["name"]: m for m in doc["members_alone"]}
    info(
        f"ensemble: {doc['method']} of {len(doc['members'])} members on {doc['fitting_data']['n']} utterances "
        f"({doc['fitting_data']['n_bonafide']} bona fide, {doc['fitting_data']['n_spoof']} spoof)"
    )
    width = max(len(m["name"]) for m in doc["members"])
    for i, m in enumerate(doc["members"]):
        a = alone[m["name"]]
        flip = "  FLIPPED (AUC < 0.5: inverted)" if f["flips"][i] else ""
        info(f"  {m['name']:<{width}}  AUC {a['auc']:.4f}  EER {_pct(a['eer'])}  weight {f['weights'][i]:+.4f}{flip}")
    for name in doc["inverted_members"]:
        if name not in doc["flipped_members"]:
            warn(f"member {name} ranks spoof above bona fide on these data (AUC < 0.5); `{doc['method']}` keeps it")
    thr = doc["threshold"]
    info(f"threshold: {thr['policy']} = {thr['value']:.6g} on the {thr['scale']} (bona fide iff score >= threshold)")
    if "out_of_fold" in doc:
        oof = doc["out_of_fold"]
        info(f"{oof['label']}: {_metrics_line(oof['metrics'])}")
        info(f"  (decisions at each fold's own {oof['threshold_policy']} threshold, fitted on its training folds)")
        fm = oof["fold_metrics"]["accuracy"]
        info(
            f"  accuracy per fold {fm['mean']:.4f} +- {fm['std']:.4f}; flips per member over folds: "
            + ", ".join(f"{k} {v}/{oof['k']}" for k, v in oof["flip_counts"].items())
        )
    if "in_sample" in doc:
        info(f"{doc['in_sample']['label']}: {_metrics_line(doc['in_sample']['metrics'])}")
        info("  in-sample numbers fit and evaluate on the same rows; quote the out-of-fold ones")


@click.command("ensemble", context_settings={"max_content_width": 110})
@click.option(
    "--scores",
    "score_files",
    multiple=True,
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="A member's score file (bona-fide-positive `score` column; labelled when fitting). Repeat per "
    "member; members are joined by utt_id.",
)
@click.option(
    "--model",
    "model_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    metavar="MODEL",
    help="A trained model as a member, scored on the labelled features of --on. Repeatable; model members "
    "come after the --scores members.",
)
@opt.on_features_option("Feature store (HDF5/.npz) the --model members are scored on (labelled when fitting).")
@click.option("--names", default=None, help="Comma-separated member names (default: the score files' stems).")
@opt.fit_output_option("Ensemble JSON to write (fitting), or fused score file with --apply (default stdout).")
@opt.method_option(
    METHODS,
    "auc2",
    "auc2: flip members with AUC < 0.5, weight by AUC^2 (the study's rule); mean: mean of z-scores; "
    "logistic: logistic-regression fusion (C = 1.0).",
)
@click.option(
    "--cv",
    "cv",
    type=int,
    default=5,
    show_default=True,
    help="Folds for out-of-fold metrics; every choice (z-params, flips, weights, calibration, threshold) "
    "is fitted on training folds only.",
)
@click.option("--no-cv", is_flag=True, help="Skip cross-validation (no honest estimate is reported).")
@click.option(
    "--in-sample",
    is_flag=True,
    help="Also report the study's in-sample numbers (fit and evaluate on the same rows: optimistic).",
)
@click.option(
    "--calibrate",
    "calibrate",
    type=click.Choice(CALIBRATIONS),
    default="logistic",
    show_default=True,
    help="Calibrate the fused score to an LLR (fitted on the same rows as the fusion).",
)
@opt.threshold_policy_option(
    "eer", "eer, youden, max-accuracy, fpr=X, or bayes (needs calibration), on the final score."
)
@opt.cost_options
@opt.key_labels_option("Key/protocol file supplying labels the score files lack (joined by utt_id).")
@click.option(
    "--oof-scores",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write the out-of-fold fused scores (with fold-fitted decisions) as a score file.",
)
@opt.apply_option("Apply this ensemble JSON to the --scores files (in the JSON's member order, or by --names).")
@opt.score_format_option("With --apply: output format.")
@opt.json_flag("Print the report (the ensemble document) as JSON on stdout.")
def ensemble(
    score_files,
    model_files,
    on,
    names,
    output,
    method,
    cv,
    no_cv,
    in_sample,
    calibrate,
    policy,
    p_spoof,
    c_miss,
    c_fa,
    labels,
    oof_scores,
    apply_path,
    fmt,
    as_json,
):
    """Fit a fusion of several detectors from their labelled score files, or --apply one.

    Scores are bona-fide-positive (higher = more likely genuine). By default the fused score is calibrated to a
    natural-log LLR and the out-of-fold metrics (--cv 5) are printed on stderr: the honest estimate. --apply -o FILE
    writes FILE.prov.json beside it (the ensemble's, members' and inputs' content hashes), as `dfdet score -o` does.

    \b
      dfdet ensemble --scores adam.tsv --scores sgd.tsv -o ens.json --method auc2 --in-sample
      dfdet ensemble --apply ens.json --scores adam.eval.tsv --scores sgd.eval.tsv -o fused.tsv

    Domain shift: fit on a small labelled slice of the target domain, evaluate on a disjoint one:

    \b
      dfdet split wild.h5 --parts fit=0.2,eval=0.8 -o wild/
      dfdet ensemble --model adam.pt --model sgd.pt --on wild/fit.h5 -o ens.json
      dfdet ensemble --apply ens.json --on wild/eval.h5 | dfdet evaluate -
    """
    from dfdet import calibration, fusion
    from dfdet.console import current_settings, info, verbose
    from dfdet.errors import DfdetError, UsageError

    name_list = names.split(",") if names else None
    if model_files and not on:
        raise UsageError("--model members need --on FEATURES to be scored on", "add --on dev.h5")
    if apply_path:
        if model_files:
            raise UsageError("--apply takes the model members from the ensemble JSON", "drop --model")
        _apply(apply_path, list(score_files), on, name_list, output or "-", fmt)
        return
    if fmt != "tsv":
        raise UsageError("--format applies to --apply output only", "drop --format, or add --apply ENS.json")
    if not score_files and not model_files:
        raise UsageError("no members given", "pass --scores FILE or --model MODEL once per member")
    if not output:
        raise UsageError("missing -o/--output for the ensemble JSON", "add -o ens.json (or --apply ENS.json)")
    if len(score_files) + len(model_files) < 2:
        raise UsageError("an ensemble needs at least two members", "pass --scores FILE for each member")
    calibration.parse_threshold_policy(policy)
    cal = None if calibrate == "none" else calibrate
    if policy.strip().lower() == "bayes" and cal is None:
        raise UsageError("--threshold bayes needs calibrated LLRs", "drop --calibrate none or pick eer/youden/...")
    folds = None if no_cv else cv
    if oof_scores and folds is None:
        raise UsageError("--oof-scores needs cross-validation", "drop --no-cv")
    member_names = fusion.member_names([*score_files, *model_files], name_list)
    verbose(f"members={member_names} method={method} cv={folds} calibrate={cal} threshold={policy}")
    utt_ids, S, y, _ = _load_members(score_files, model_files, on, labels)
    if (y < 0).any():
        raise DfdetError(
            f"{int((y < 0).sum())} of {len(y)} utterance(s) have no label in any member file",
            "fitting needs labels: add a label column or pass --labels KEYFILE",
        )
    json_path = output if output != "-" else "ensemble.json"
    members = [fusion.score_member(n, f, json_path) for n, f in zip(member_names, score_files, strict=False)]
    members += [
        fusion.model_member(n, f, json_path) for n, f in zip(member_names[len(score_files) :], model_files, strict=True)
    ]
    doc, cv_res, _ = fusion.build_ensemble_document(
        S,
        y,
        members,
        method,
        calibrate=cal,
        threshold_policy=policy,
        p_spoof=p_spoof,
        c_miss=c_miss,
        c_fa=c_fa,
        cv=folds,
        seed=current_settings().seed,
        in_sample=in_sample,
        sources=[Path(f).name for f in (*score_files, *model_files)] + ([f"features: {Path(on).name}"] if on else []),
    )
    calibration.write_json(output, doc)
    if oof_scores and cv_res is not None:
        from dfdet.scores import ScoreTable, write_scores

        p_oof = calibration.p_spoof_from_llr(cv_res["scores"]) if cal else None
        oof_table = ScoreTable(utt_ids, cv_res["scores"], p_spoof=p_oof, decision=cv_res["decision"], label=y)
        write_scores(oof_scores, oof_table)
    _print_report(doc)
    if output != "-":
        info(f"wrote {output}")
    if as_json and output != "-":
        calibration.write_json("-", doc)


def _load_members(score_files, model_files, on, labels):
    """Member score tables (score files, then models scored on the --on features) joined by utt_id."""
    from dfdet import fusion
    from dfdet.errors import InputError
    from dfdet.scores import ScoreTable, attach_keys, read_keys, read_scores
    from dfdet.scoring import load_detector

    tables = [read_scores(f) for f in score_files]
    if model_files:
        from dfdet.store import load_features

        fs = load_features(on)
        extra = {k: list(getattr(fs, k)) for k in ("speaker", "system", "domain") if any(getattr(fs, k))}
        path = list(fs.path) if any(fs.path) else None
        for m in model_files:
            det = load_detector(m)
            if det.kind != "model":  # ensemble members are loaded as model files when the ensemble is scored
                raise InputError(m, f"is a {det.kind}, not a model file", "pass a model .pt written by dfdet train")
            det.check_features(fs)
            s = det.score_features(fs)["score"]
            tables.append(ScoreTable(fs.utt_id, s, path=path, label=fs.y, extra=dict(extra), source=str(m)))
    if labels:
        keys = read_keys(labels)
        tables = [attach_keys(t, keys)[0] for t in tables]
    sources = [t.source or str(f) for t, f in zip(tables, [*score_files, *model_files], strict=True)]
    utt_ids, S, y = fusion.join_members(tables, sources)
    return utt_ids, S, y, tables


def _apply(
    ens_path: str, score_files: list[str], on: str | None, names: list[str] | None, output: str, fmt: str = "tsv"
) -> None:
    from dfdet import calibration, fusion
    from dfdet.console import info
    from dfdet.errors import DfdetError
    from dfdet.scores import ScoreTable, write_scores

    doc = fusion.load_ensemble(ens_path)
    members = doc["members"]
    score_members = [m["name"] for m in members if m.get("kind") == "scores"]
    model_members = [
        (m["name"], p)
        for m, p in zip(members, fusion.member_paths(doc, ens_path), strict=True)
        if m.get("kind") == "model"
    ]
    if model_members and not on:
        raise DfdetError(
            f"{ens_path}: member(s) {[n for n, _ in model_members]} are models", "pass --on FEATURES to score them on"
        )
    if len(score_files) != len(score_members):
        raise DfdetError(
            f"{ens_path} has {len(score_members)} score-file member(s) but {len(score_files)} --scores file(s) were "
            "given",
            "pass one --scores file per member, in this order: " + ", ".join(score_members),
        )
    if names is not None:
        given = fusion.member_names(score_files, names)
        if sorted(given) != sorted(score_members):
            raise DfdetError(
                f"--names {given} do not match the ensemble's members {score_members}", "use the recorded names"
            )
        score_files = [score_files[given.index(w)] for w in score_members]
    model_files = [str(p) for _, p in model_members]
    utt_ids, S_in, y, tables = _load_members(score_files, model_files, on, None)
    # columns come as (score members, model members); put them back in the ensemble's member order
    order = [n for n in score_members] + [n for n, _ in model_members]
    S = S_in[:, [order.index(m["name"]) for m in members]]
    scores, decision = fusion.apply_ensemble(doc, S)
    path_col = None
    paths = next((t for t in tables if t.path is not None), None)
    if paths is not None:
        index = {u: i for i, u in enumerate(paths.utt_id)}
        path_col = [paths.path[index[u]] for u in utt_ids]
    first = tables[0]
    index = {u: i for i, u in enumerate(first.utt_id)}
    extra = {k: [v[index[u]] for u in utt_ids] for k, v in first.extra.items()}
    calibrated = bool(doc.get("calibration"))
    out = ScoreTable(
        utt_ids,
        scores,
        path=path_col,
        p_spoof=calibration.p_spoof_from_llr(scores) if calibrated else None,
        decision=decision,
        label=y,
        extra=extra,
    )
    store = on if model_members else None
    write_scores(
        output, out, format=fmt, provenance=lambda: fusion.applied_provenance(ens_path, doc, score_files, store)
    )
    n_spoof = int((decision == 1).sum()) if decision is not None else 0
    info(
        f"fused {len(out)} utterance(s) with {doc['method']} from {ens_path}"
        + (" (calibrated LLR; p_spoof assumes P(spoof) = 0.5)" if calibrated else " (uncalibrated fused score)")
        + f": {n_spoof} spoof, {len(out) - n_spoof} bona fide"
    )
