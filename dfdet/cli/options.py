"""Options several commands share, declared once so they read and behave the same everywhere."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import click

F = TypeVar("F", bound=Callable)

LABEL_KINDS = ["auto", "asvspoof2019", "asvspoof5", "itw", "realspeech", "table"]  # dfdet.protocols.LABEL_KINDS


def label_options(f: F) -> F:
    """--labels, --label-kind, --numeric-labels, --audio-root: where labels and corpus audio come from."""
    for opt in reversed(
        [
            click.option(
                "--labels", type=click.Path(exists=True, dir_okay=False), help="Protocol / meta.csv / CSV-TSV table."
            ),
            click.option(
                "--label-kind",
                type=click.Choice(LABEL_KINDS),
                default="auto",
                show_default=True,
                help="Format of --labels.",
            ),
            click.option(
                "--numeric-labels", is_flag=True, help="Accept 0/1 labels in tables (0 = bona fide, 1 = spoof)."
            ),
            click.option(
                "--audio-root",
                type=click.Path(file_okay=False),
                help="ASVspoof: the dir holding ASVspoof2019_LA_{train,dev,eval}/ or ASVspoof 5's flac_T/, flac_D/, "
                "flac_E_eval/ [default: the protocol dir's parent; ASVspoof 5: its own dir if they are there].",
            ),
        ]
    ):
        f = opt(f)
    return f


jobs_option = click.option(
    "-j", "--jobs", type=click.IntRange(min=1), default=None, help="Worker processes [default: all cores available]."
)


def cost_options(f: F) -> F:
    """--p-spoof, --c-miss, --c-fa: the ASVspoof 5 detection cost model (Bayes thresholds, minDCF/actDCF)."""
    for opt in reversed(
        [
            click.option(
                "--p-spoof",
                type=click.FloatRange(0, 1, min_open=True, max_open=True),
                default=0.05,
                show_default=True,
                help="Spoof prior (ASVspoof 5 cost model).",
            ),
            click.option(
                "--c-miss",
                type=click.FloatRange(0, min_open=True),
                default=1.0,
                show_default=True,
                help="Cost of rejecting bona fide.",
            ),
            click.option(
                "--c-fa",
                type=click.FloatRange(0, min_open=True),
                default=10.0,
                show_default=True,
                help="Cost of accepting a spoof.",
            ),
        ]
    ):
        f = opt(f)
    return f


# ------------------------------------------------------------------ fit-or-apply commands (calibrate, ensemble)
# Same option, same shape in every command; the help says what the option means for that command.
def fit_output_option(help: str) -> Callable[[F], F]:
    """-o/--output: the fitted JSON, or with --apply the output score file (default stdout)."""
    return click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True), default=None, help=help)


def method_option(choices: Sequence[str], default: str, help: str) -> Callable[[F], F]:
    """--method: one of the command's registered methods."""
    return click.option("--method", type=click.Choice(list(choices)), default=default, show_default=True, help=help)


def threshold_policy_option(default: str, help: str) -> Callable[[F], F]:
    """--threshold POLICY (parameter `policy`): how the decision threshold is chosen when fitting."""
    return click.option("--threshold", "policy", default=default, show_default=True, metavar="POLICY", help=help)


def key_labels_option(help: str) -> Callable[[F], F]:
    """--labels KEYFILE: labels joined by utt_id onto score files that lack them."""
    return click.option("--labels", type=click.Path(exists=True, dir_okay=False), default=None, help=help)


def on_features_option(help: str) -> Callable[[F], F]:
    """--on FEATURES: a feature store (HDF5/.npz) that detectors are scored on."""
    return click.option(
        "--on", "on", type=click.Path(exists=True, dir_okay=False), default=None, metavar="FEATURES", help=help
    )


def apply_option(help: str) -> Callable[[F], F]:
    """--apply FILE (parameter `apply_path`): apply a fitted JSON instead of fitting."""
    return click.option("--apply", "apply_path", type=click.Path(exists=True, dir_okay=False), default=None, help=help)


def json_flag(help: str) -> Callable[[F], F]:
    """--json (parameter `as_json`): also print a JSON document on stdout."""
    return click.option("--json", "as_json", is_flag=True, help=help)


# Score-file formats of dfdet.scores.FORMATS (kept here so --help imports nothing heavy; a test checks they agree).
SCORE_FORMATS = ["tsv", "asvspoof5", "asvspoof", "asvspoof2019"]


def score_format_option(help: str) -> Callable[[F], F]:
    """--format (parameter `fmt`): the score file format written."""
    return click.option(
        "--format", "fmt", type=click.Choice(SCORE_FORMATS), default="tsv", show_default=True, help=help
    )


def min_seconds_option(f: F) -> F:
    """--min-seconds: the shortest clip given a verdict (score and app alike; dfdet.caveats.MIN_SECONDS)."""
    from dfdet.caveats import MIN_SECONDS

    return click.option(
        "--min-seconds",
        type=click.FloatRange(min=0.0),
        default=MIN_SECONDS,
        show_default=True,
        help="Shorter clips get an error instead of a verdict (the features would describe mostly zero padding).",
    )(f)
