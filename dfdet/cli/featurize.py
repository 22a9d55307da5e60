"""`dfdet featurize`: audio files, directories, list files or stdin -> an HDF5 feature store."""

from __future__ import annotations

import click

from dfdet.cli.options import jobs_option, label_options


def _shard(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    from dfdet.errors import UsageError
    from dfdet.featurize import parse_shard

    try:
        return parse_shard(value)
    except UsageError as e:
        raise click.BadParameter(str(e)) from None


@click.command("featurize")
@click.argument("inputs", nargs=-1)
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False), help="HDF5 store to write.")
@label_options
@click.option("--recipe", default="seed154", show_default=True, help="Feature recipe.")
@jobs_option
@click.option("--shard", callback=_shard, metavar="K/N", help="Process only shard K of N (then `dfdet merge`).")
@click.option("--skip-bad", is_flag=True, help="Warn about and record bad inputs instead of stopping (exit 3).")
@click.option("--chunk-rows", type=click.IntRange(min=1), default=256, show_default=True, help="Rows per write.")
@click.option(
    "--resume",
    is_flag=True,
    help="Keep the rows already in OUTPUT (e.g. after exit 4) and featurize only the utterances it lacks.",
)
@click.option(
    "--augment",
    "augment",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    metavar="N",
    help="Also featurize N augmented copies of each input (utt_id ID@augK, the spec in the augment column).",
)
@click.option(
    "--augment-seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Seed the copies' augmentations draw from.",
)
@click.option(
    "--augment-kinds",
    metavar="K1,K2",
    help="Augmentations to draw from (default all): convolutive, resample, impulsive, noise, gain, telephone, mp3, "
    "ogg, opus.",
)
@click.option(
    "--augment-max-ops",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Most steps in one copy's chain.",
)
def featurize(
    inputs: tuple[str, ...],
    output: str,
    labels: str | None,
    label_kind: str,
    numeric_labels: bool,
    audio_root: str | None,
    recipe: str,
    jobs: int | None,
    shard: tuple[int, int] | None,
    skip_bad: bool,
    chunk_rows: int,
    resume: bool,
    augment: int,
    augment_seed: int,
    augment_kinds: str | None,
    augment_max_ops: int,
) -> None:
    """Compute a feature vector per utterance (a frame matrix with a frame recipe such as lfcc) into an HDF5 store.

    INPUTS are audio files, directories (walked recursively), list files (.lst/.txt/.scp, one path per line) or
    `-` (paths on stdin). With --labels alone the label file's audio is used; with both, the listed audio is joined
    with the label file. Rows are sorted by utt_id; the output is identical for any -j. Bad inputs stop the run
    (exit 1, no output) unless --skip-bad, which records them in the store and exits 3.

    A worker process that dies (out of memory, kill -9) ends the run at once with exit 4, naming the file it held:
    the rows finished so far are committed to OUTPUT, marked incomplete (`dfdet info` warns). The same command with
    --resume then featurizes only the missing utterances; the store equals an uninterrupted run's.

    --augment N adds N copies of each input, each under a random chain of up to --augment-max-ops augmentations
    (noise at random SNR, telephone band and codecs, MP3/OGG/Opus, gain, resampling, RawBoost convolutive and
    impulsive noise) applied to the decoded audio. Drawn from (seed, utt_id, copy), so the same for any -j or
    --shard; the spec in each copy's `augment` column reproduces its audio exactly; the store's attrs record the
    configuration.

    \b
    Examples:
      dfdet featurize wavs/ -o feats.h5
      find wavs -name '*.wav' | dfdet featurize - -o feats.h5
      dfdet featurize --labels LA/ASVspoof2019_LA_cm_protocols/ASVspoof2019.LA.cm.train.trn.txt -o train.h5
      dfdet featurize wavs/ --shard 3/8 -o part3.h5   # then: dfdet merge part*.h5 -o feats.h5
      dfdet featurize wavs/ -o feats.h5 --resume        # after exit 4 (or to add new files of wavs/)
      dfdet featurize --recipe lfcc --labels realspeech/labels.csv -o rs_lfcc.h5   # whole-utterance LFCC frames
      dfdet featurize --labels labels.csv -o train.h5 --augment 2 --augment-kinds noise,telephone,mp3
    """
    from dfdet import console
    from dfdet.errors import PartialSuccess, UsageError
    from dfdet.features import get_recipe, recipe_hash
    from dfdet.featurize import available_cores
    from dfdet.featurize import featurize as run
    from dfdet.heap import keep_large_buffers
    from dfdet.protocols import resolve_utterances

    keep_large_buffers()  # one-shot process: per-file spectra stop page-faulting afresh (half the extractor time)
    if output == "-":
        raise UsageError("an HDF5 store cannot be written to stdout", "pass -o FILE.h5")
    jobs = jobs or available_cores()
    rec = get_recipe(recipe)
    utts = resolve_utterances(
        list(inputs),
        labels=labels,
        label_kind=label_kind,
        numeric_labels=numeric_labels,
        stdin=None,  # `-` reads sys.stdin (CliRunner swaps it in tests)
        audio_root=audio_root,
        missing_ok=skip_bad,
    )
    attrs = None
    if augment:
        from dfdet.augment import check_resume, resolve_config, with_copies

        cfg = resolve_config(augment, augment_seed, augment_kinds, augment_max_ops, warn=console.warn)
        if resume:
            check_resume(output, cfg)
        utts, attrs = with_copies(utts, cfg), {"augment": cfg.record()}
    console.verbose(
        f"featurize: {len(utts)} input(s); recipe {rec.name} (hash {recipe_hash(rec)}, {len(rec.feature_names)} dims); "
        f"jobs {jobs}; shard {f'{shard[0]}/{shard[1]}' if shard else 'all'}; chunk rows {chunk_rows}; "
        f"skip bad {skip_bad}; labels {labels or '-'} ({label_kind}); output {output}; resume {resume}"
    )
    result = run(
        utts,
        output,
        recipe=rec,
        jobs=jobs,
        shard=shard,
        skip_bad=skip_bad,
        chunk_rows=chunk_rows,
        attrs=attrs,
        resume=resume,
    )
    if result.resumed:
        console.info(f"resumed: {result.resumed} of {result.total} input(s) were already in {output}")
    if getattr(rec, "frames", False):
        console.info(f"wrote {output}: {result.done} rows, {result.frames} frames x {len(rec.feature_names)} features")
    else:
        console.info(f"wrote {output}: {result.done} rows x {len(rec.feature_names)} features")
    console.info(console.summary_line(result.done, result.total, result.skipped, result.seconds))
    if result.skipped:
        raise PartialSuccess(result.skipped)
