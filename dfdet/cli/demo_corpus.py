"""`dfdet demo-corpus`: write the embedded synthetic demo corpus (lab + wild domains, label CSVs)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from dfdet.console import current_settings, info, progress, summary_line, verbose
from dfdet.errors import UsageError


def _seconds(ctx: click.Context, param: click.Parameter, value: str) -> tuple[float, float]:
    text = value.strip()
    try:
        if "-" in text[1:] or ":" in text:
            lo, hi = (float(v) for v in text.replace(":", "-").split("-", 1))
        else:
            lo = hi = float(text)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not S or MIN-MAX (seconds), e.g. 2 or 1.5-3.5") from None
    if not 0.2 <= lo <= hi <= 30:
        raise click.BadParameter(f"need 0.2 <= MIN <= MAX <= 30 seconds, got {value!r}")
    return lo, hi


@click.command("demo-corpus")
@click.argument("outdir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--n-per-class",
    type=click.IntRange(min=1),
    default=120,
    show_default=True,
    help="Lab clips per class (bona fide and spoof each).",
)
@click.option(
    "--n-wild-per-class",
    type=click.IntRange(min=0),
    default=None,
    help="Wild clips per class  [default: half of --n-per-class, at least 1]",
)
@click.option(
    "--seconds",
    "seconds",
    default="1.5-3.5",
    show_default=True,
    callback=_seconds,
    help="Clip length in seconds: MIN-MAX (each clip draws its length) or one value S.",
)
def demo_corpus(outdir: Path, n_per_class: int, n_wild_per_class: int | None, seconds: tuple[float, float]) -> None:
    """Write a small synthetic labelled corpus to OUTDIR (`dfdet --seed N demo-corpus ...`; same seed, same bytes).

    SYNTHETIC: it only exercises the pipeline; real studies use ASVspoof 2019 LA / In-the-Wild.
    Bona fide clips are source-filter "speech" from several synthetic speakers; spoofs are the same utterances
    resynthesized (system GL: mel + Griffin-Lim, ENV: smoothed envelope on a buzz excitation, LBW: band-limited
    low-rate vocoder; PV: phase-vocoder round trip, wild only). Two domains with disjoint speakers: `lab`
    (clean 16 kHz WAV) and `wild` (noise, reverberation, 8 kHz band-limiting, level changes, clipping; some
    8/44.1 kHz and FLAC files).

    \b
    Writes OUTDIR/{lab,wild}/{bonafide,spoof}/*.wav|flac, README.txt, and the label tables lab.csv, wild.csv
    and labels.csv (header path,label,speaker,system,domain; labels.csv is written last). Prints the path of
    labels.csv on stdout (nothing else), the summary on stderr:
      dfdet featurize --labels "$(dfdet demo-corpus demo/corpus)" -o all.h5
    """
    from dfdet.democorpus import make_demo_corpus

    if outdir.exists() and not outdir.is_dir():
        raise UsageError(f"{outdir}: exists and is not a directory", "choose a new or existing directory for OUTDIR")
    n_wild = max(1, n_per_class // 2) if n_wild_per_class is None else n_wild_per_class
    seed = current_settings().seed
    verbose(
        f"demo-corpus: outdir={outdir} seed={seed} n_per_class={n_per_class} n_wild_per_class={n_wild} "
        f"seconds={seconds[0]}-{seconds[1]}"
    )
    start = time.perf_counter()

    def bar(items: list) -> object:
        return progress(items, total=len(items), desc="demo-corpus", unit="utt")

    result = make_demo_corpus(
        outdir, n_per_class=n_per_class, n_wild_per_class=n_wild, seed=seed, seconds=seconds, progress=bar
    )
    n = result["n_files"]
    c = result["counts"]
    info(
        f"lab: {c['lab']['bonafide']} bona fide + {c['lab']['spoof']} spoof; "
        f"wild: {c['wild']['bonafide']} bona fide + {c['wild']['spoof']} spoof -> {result['paths']['labels']}"
    )
    if result["removed_stale"]:
        info(f"removed {result['removed_stale']} clip(s) left over from an earlier, larger corpus in {outdir}")
    info(summary_line(n, n, 0, time.perf_counter() - start))
    click.echo(result["paths"]["labels"])
