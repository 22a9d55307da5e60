"""Options several commands share, declared once so they read and behave the same everywhere."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

F = TypeVar("F", bound=Callable)

LABEL_KINDS = ["auto", "asvspoof2019", "itw", "table"]


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
                help="ASVspoof: the dir holding ASVspoof2019_LA_{train,dev,eval}/ "
                "[default: the protocol dir's parent].",
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
