"""`dfdet score --segments`: the command's window mode (options parsed by dfdet.cli.score; logic in dfdet.segments)."""

from __future__ import annotations

from typing import Any

from dfdet.errors import DfdetError, PartialSuccess, UsageError


def run_segments(
    det: Any,
    inputs: tuple[str, ...],
    output: str,
    seconds: float | None,
    hop: float | None,
    run: Any,
    *,
    fmt: str,
    members: bool,
    labels: str | None,
    label_kind: str,
    numeric_labels: bool,
    audio_root: str | None,
    jobs: int,
    skip_bad: bool,
    min_seconds: float,
) -> None:
    """List the audio inputs, score their windows, write the segments TSV and the summary; exit 3 when some were
    skipped."""
    import sys

    from dfdet import console
    from dfdet.scoring import is_store_path, stdin_utterances
    from dfdet.segments import score_segments, segment_writer

    if seconds is None:
        raise UsageError("--segment-hop needs --segments", "pass --segments SECONDS (window length) as well")
    if any(is_store_path(a) for a in inputs):
        raise UsageError(
            "--segments scores audio, and a feature store keeps each file's features, not its audio",
            "pass the audio files (dfdet score DETECTOR AUDIO... --segments SECONDS)",
        )
    if fmt != "tsv" or members:
        what = f"--format {fmt}" if fmt != "tsv" else "--members"
        raise UsageError(f"{what} does not apply to --segments (one row per window)", f"drop {what}")
    if inputs == ("-",):
        labelled = None
        if labels is not None:
            from dfdet.protocols import read_labels

            labelled = read_labels(labels, kind=label_kind, numeric_labels=numeric_labels, audio_root=audio_root)
        utts: Any = stdin_utterances(sys.stdin, labelled, label_file=str(labels))
    else:
        from dfdet.protocols import resolve_utterances

        utts = resolve_utterances(
            list(inputs),
            labels=labels,
            label_kind=label_kind,
            numeric_labels=numeric_labels,
            audio_root=audio_root,
            missing_ok=skip_bad,
        )
    rows = score_segments(
        det, utts, seconds, hop, jobs=jobs, skip_bad=skip_bad, failures=run.failures, min_seconds=min_seconds
    )
    if inputs != ("-",):
        rows = list(rows)  # as `score FILES`: all or nothing (a bad file in strict mode leaves no partial output)
    last, windows = None, 0
    with segment_writer(output) as write:
        for row in rows:
            write(row)
            windows += 1
            if row.utt_id != last:
                run.done, last = run.done + 1, row.utt_id
        if run.done == 0:
            raise DfdetError("every input failed; nothing to write", "check the inputs (warnings above)")
    if output == "-":
        sys.stdout.flush()
    run.finish()
    if output != "-":
        console.info(f"wrote {output}: {windows} windows of {run.done} file(s)")
    console.info(console.summary_line(run.done, run.total, run.skipped, run.seconds))
    if run.skipped:
        raise PartialSuccess(run.skipped)
