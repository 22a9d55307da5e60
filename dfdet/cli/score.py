"""`dfdet score`: a model, calibrated detector or ensemble scores audio or one feature store -> a score TSV."""

from __future__ import annotations

import click

from dfdet.cli.options import jobs_option, label_options, min_seconds_option, score_format_option


@click.command("score")
@click.argument("args", metavar="[DETECTOR] INPUTS...", nargs=-1)
@click.option(
    "-d",
    "--detector",
    "detector_ref",
    metavar="NAME|PATH",
    help="A shipped detector's name (dfdet models lists them), a detector folder, or a model .pt / calibration or "
    "ensemble JSON. Default: the first positional argument when it is a detector (see below), else `default`.",
)
@click.option(
    "-o", "--output", default="-", show_default=True, type=click.Path(dir_okay=False), help="Score file (- = stdout)."
)
@score_format_option(
    "tsv: dfdet score file; asvspoof5 (alias asvspoof): the official track-1 `filename<TAB>cm-score` file with "
    "header, for the ASVspoof 5 evaluation package; "
    "asvspoof2019: `utt_id system key score`."
)
@label_options
@jobs_option
@click.option("--skip-bad", is_flag=True, help="Warn about bad inputs, score the rest, exit 3.")
@click.option(
    "--calibration",
    type=click.Path(exists=True, dir_okay=False),
    help="Calibration JSON (dfdet calibrate) applied to the detector's score; its threshold then decides.",
)
@click.option("--members", is_flag=True, help="Add one raw score column per member model (score_<name>).")
@min_seconds_option
@click.option(
    "--segments",
    type=float,
    metavar="SECONDS",
    help="Score windows of SECONDS instead of whole files: one row per window (utt_id, start, end, score, p_spoof, "
    "decision, path), showing WHERE in a file the detector hears a fake. Needs a detector on a frame recipe (lfcc).",
)
@click.option(
    "--segment-hop",
    type=float,
    metavar="SECONDS",
    help="Seconds between window starts with --segments (default: half a window).",
)
def score(
    args: tuple[str, ...],
    detector_ref: str | None,
    output: str,
    fmt: str,
    labels: str | None,
    label_kind: str,
    numeric_labels: bool,
    audio_root: str | None,
    jobs: int | None,
    skip_bad: bool,
    calibration: str | None,
    members: bool,
    min_seconds: float,
    segments: float | None,
    segment_hop: float | None,
) -> None:
    """Score audio or one feature store with a detector: a model (.pt), a calibrated detector or an ensemble JSON.

    Which detector: --detector NAME|PATH; else the first positional argument when it is one: a path ending in
    .pt/.pth/.json, a folder holding a detector.json, or (if no such path exists) a shipped detector's name. `-` and
    any other existing path are inputs. With no detector given, the shipped `default` detector scores; without one
    installed the command stops and says how to name one (it never falls back to another model).

    `score` is BONA-FIDE-POSITIVE: higher = more likely genuine speech. It is the natural-log odds of bona fide vs
    spoof computed from the model's logit (score = -logit), and a log-likelihood ratio (LLR) after calibration,
    matching the ASVspoof evaluation package. Columns: utt_id, score, path, p_spoof (= sigmoid(-score)), decision
    (bonafide if score >= the detector's threshold, else spoof), label/speaker/system/domain where known, and
    duration_s / scored_s where durations are known: the recipe looks at a fixed window (seed154: the first 2.0 s),
    so scored_s < duration_s marks a verdict on the start of a longer file (a note on stderr counts them). score has
    9 significant digits (every float32 model score exactly), p_spoof 6.

    INPUTS are audio files, directories (walked recursively), list files (one path per line), or ONE feature store
    (.h5 from dfdet featurize, or the study's .npz; its recipe must match the detector's). Rows are sorted by utt_id.

    A single `-` reads audio paths from stdin line by line and STREAMS rows as each file is done, in input order
    (NOT sorted by utt_id); utt_ids are then paths without extension relative to the working directory, or absolute
    for files outside it (a stream's common root is unknown until it ends: cd to the corpus for short ids).

    Bad audio, and clips shorter than --min-seconds, stop the run (exit 1) unless --skip-bad: then each bad input
    is warned about, the rest is written, and the exit status is 3. What the detector was trained on (from its
    model files) is printed on stderr; a warning says when that was a synthetic corpus.

    A worker process that dies (out of memory, kill -9) ends the run at once with exit 4, naming the file it held:
    rows already streamed to stdout stay, a score FILE is not written (featurize long runs with --resume first,
    then score the store).

    With -o FILE, FILE.prov.json is written beside it (detector kind, path and content hash, calibration, input,
    rows, format, dfdet version and command); `dfdet report` matches score files to models by it. None for stdout.

    \b
    Examples:
      find . -name '*.wav' | dfdet score -            # the default detector
      dfdet score --detector seed154-asvspoof2019la clip.wav
      dfdet score model.pt wavs/ -o scores.tsv
      dfdet score model.pt eval.h5 | dfdet evaluate -
      find . -name '*.wav' | dfdet score model.pt -      # first row as soon as the first file is scored
      dfdet score cal.json --labels protocol.txt --format asvspoof5 -o cm_scores.tsv
      dfdet score ens.json eval.h5 --members -o fused.tsv
      dfdet score lfcc_model.pt long.wav --segments 2 -o windows.tsv

    With --segments SECONDS every audio file is cut into windows of SECONDS every --segment-hop seconds (default half
    a window; a last partial window is kept when at least half a window, a file shorter than one window is one
    window), and each window is scored as if its audio were a file of its own. Rows: utt_id, start, end (seconds
    from the file's start), score, p_spoof, decision, path; files in utt_id order, windows in time order (stdin:
    input order). The lowest-scoring windows are the most spoof-like. Audio inputs only (a feature store keeps
    features, not audio), format tsv only, no .prov.json sidecar.
    """
    import sys

    from dfdet import console
    from dfdet.caveats import domain_lines, window_seconds
    from dfdet.errors import DfdetError, PartialSuccess, UsageError
    from dfdet.featurize import available_cores
    from dfdet.heap import keep_large_buffers
    from dfdet.scores import ScoreWriter, attach_keys, read_keys, write_scores
    from dfdet.scoring import (
        CROP_COLUMNS,
        ScoreRun,
        cropped_rows,
        is_store_path,
        load_detector,
        member_column,
        rows_to_table,
        score_provenance,
        score_store,
    )
    from dfdet.shipped import card_of, looks_like_detector, resolve, trust_note

    keep_large_buffers()  # one-shot process: per-file spectra stop page-faulting afresh (half the extractor time)
    run = ScoreRun()
    if detector_ref is None and args and looks_like_detector(args[0]):
        detector_ref, args = args[0], args[1:]
    inputs = tuple(args)
    if not inputs and labels is None:
        raise UsageError("no inputs", "pass audio files, directories, list files, -, a feature store, or --labels")
    stores = [a for a in inputs if is_store_path(a)]
    if stores and len(inputs) != 1:
        raise UsageError(
            f"got {len(stores)} feature store(s) among {len(inputs)} inputs", "pass ONE feature store, or only audio"
        )
    streaming = inputs == ("-",)
    jobs = jobs or available_cores()
    detector = resolve(detector_ref)
    det = load_detector(detector, calibration)
    console.verbose(f"score: {det.summary()}")
    card = card_of(detector)
    lines = [(False, trust_note(card))] if card is not None else domain_lines(det, detector)
    for synthetic, line in lines:  # once per run: what the verdicts can be trusted on
        if synthetic:
            console.warn(line)
        else:
            console.info(f"note: {line}")
    run.window = window_seconds(det.recipe.config)
    console.verbose(
        f"score: inputs {' '.join(inputs) or '-'}; labels {labels or '-'} ({label_kind}); jobs {jobs}; "
        f"format {fmt}; members {members}; skip bad {skip_bad}; min seconds {min_seconds:g}; output {output}"
    )

    if segments is not None or segment_hop is not None:
        from dfdet.cli.score_segments import run_segments

        run_segments(
            det,
            inputs,
            output,
            segments,
            segment_hop,
            run,
            fmt=fmt,
            members=members,
            labels=labels,
            label_kind=label_kind,
            numeric_labels=numeric_labels,
            audio_root=audio_root,
            jobs=jobs,
            skip_bad=skip_bad,
            min_seconds=min_seconds,
        )
        return

    def sidecar() -> dict:  # called as the score file commits, when the counts are final
        return score_provenance(
            detector,
            det,
            calibration=calibration,
            labels=labels,
            store=stores[0] if stores else None,
            inputs=inputs,
            audio_files=run.done + len(run.failures),
            failures=run.failures,
        )

    if stores:
        from dfdet.store import load_features

        fs = load_features(stores[0])
        table, _ = score_store(
            det, fs, members=members, skip_bad=skip_bad, failures=run.failures, min_seconds=min_seconds
        )
        run.cropped = cropped_rows(table)
        if labels is not None:
            table, unlabelled = attach_keys(table, read_keys(labels, numeric_labels=numeric_labels))
            if unlabelled:
                console.warn(f"{unlabelled} utterance(s) of {stores[0]} are not in {labels}")
        if fs.failures:
            console.info(f"note: {stores[0]} lists {len(fs.failures)} input(s) that failed featurization")
        run.done = len(table)
        write_scores(output, table, fmt, provenance=sidecar)
    elif streaming:
        from dfdet.scoring import score_audio_stream, stdin_utterances

        labelled = None
        meta: list[str] = []
        if labels is not None:
            from dfdet.inputs import META_COLUMNS
            from dfdet.protocols import read_labels

            labelled = read_labels(labels, kind=label_kind, numeric_labels=numeric_labels, audio_root=audio_root)
            meta = [k for k in META_COLUMNS if any(getattr(u, k) for u in labelled)]
        columns = ["utt_id", "score", "path", "p_spoof", "decision"]
        columns += (["label"] if labelled is not None else []) + meta + list(CROP_COLUMNS)
        columns += [member_column(n) for n in det.member_names] if members else []
        utts = stdin_utterances(sys.stdin, labelled, label_file=str(labels))  # CliRunner swaps sys.stdin in tests
        rows = score_audio_stream(
            det, utts, jobs=jobs, skip_bad=skip_bad, failures=run.failures, min_seconds=min_seconds
        )  # warms up now
        with ScoreWriter(output, columns, fmt, provenance=sidecar) as writer:
            for row in rows:
                writer.write(row.utt_id, row.score, **row.writer_kwargs(members, meta))
                run.done += 1
                run.cropped += row.cropped
            if run.done == 0 and not run.failures:
                raise DfdetError(
                    "no audio paths on stdin", "pipe paths in, e.g. find DIR -name '*.wav' | dfdet score M -"
                )
        sys.stdout.flush()
    else:
        from dfdet.protocols import resolve_utterances
        from dfdet.scoring import score_audio_stream

        utts = resolve_utterances(
            list(inputs),
            labels=labels,
            label_kind=label_kind,
            numeric_labels=numeric_labels,
            audio_root=audio_root,
            missing_ok=skip_bad,
        )
        rows = console.progress(
            score_audio_stream(det, utts, jobs=jobs, skip_bad=skip_bad, failures=run.failures, min_seconds=min_seconds),
            total=len(utts),
            desc="score",
            unit="file",
        )
        table = rows_to_table(rows, members=members, source="score")
        run.done = len(table)
        run.cropped = cropped_rows(table)
        if run.done == 0:
            raise DfdetError("every input failed; nothing to write", "check the inputs (warnings above)")
        write_scores(output, table, fmt, provenance=sidecar)
    run.finish()
    note = run.crop_note(store=bool(stores))
    if note:
        console.info(f"note: {note}")
    if output != "-":
        console.info(f"wrote {output}: {run.done} rows")
    console.info(console.summary_line(run.done, run.total, run.skipped, run.seconds))
    if run.skipped:
        raise PartialSuccess(run.skipped)
