"""`dfdet export`: a torch-free copy of a linear model for fast scoring (dfdet.portable)."""

from __future__ import annotations

import click


@click.command("export")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Where to write (default MODEL.portable.npz).")
def export(model: str, output: str | None) -> None:
    """Write MODEL.portable.npz beside a linear or logreg MODEL.pt: numpy weights, scaler and metadata, and the
    SHA-256 of the .pt it copies.

    `dfdet score` (and calibrations or ensembles that name MODEL.pt) then score without importing torch, which
    takes longer than scoring a file. The copy is used only while it matches the .pt byte for byte; retraining the
    model makes it stale and scoring falls back to torch. Scores agree with torch's within the score contract.

      dfdet export models/default/model.pt
    """
    from dfdet import console
    from dfdet.portable import export_portable

    out = export_portable(model, output)
    console.info(f"export: {model} -> {out} (torch-free scoring)")
