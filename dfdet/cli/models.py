"""`dfdet models`: the shipped detectors (and those in --models DIRs), one summary row each."""

from __future__ import annotations

import click

from dfdet.cli.options import json_flag

COLUMNS = ("name", "kind", "domain", "training_data", "headline", "path")


@click.command("models")
@click.option(
    "--models",
    "dirs",
    multiple=True,
    type=click.Path(exists=True, file_okay=False),
    help="Also list this directory's detector folders (with a detector.json), or else its model .pt, calibration "
    "and ensemble JSON files. Repeatable.",
)
@json_flag("Print the rows (and each shipped detector's card index) as JSON.")
def models(dirs: tuple[str, ...], as_json: bool) -> None:
    """List the detectors `dfdet score --detector NAME` and `dfdet app` can use, as a TSV on stdout.

    Columns: name, kind (model / calibration / ensemble), domain (lab: trained on a feature matrix of one corpus;
    real: trained on real recordings and generators), training data, the headline figure of its MODEL_CARD.md (with
    what it was measured on) and the main artifact's path. Shipped detectors come from the checkout's models/ or,
    installed from a wheel, from the package. The one called `default` scores when no detector is named.
    """
    from dfdet.jsonio import dumps
    from dfdet.shipped import shipped

    found = shipped(list(dirs))
    if as_json:
        click.echo(dumps([{**d.row(), "card": d.card} for d in found]))
        return
    click.echo("\t".join(COLUMNS))
    for d in found:
        row = d.row()
        click.echo("\t".join(row[c] for c in COLUMNS))
