"""`dfdet split`: cut a feature store into seeded, stratified (optionally speaker-disjoint) parts."""

from __future__ import annotations

import json

import click

from dfdet import console
from dfdet.cli.options import json_flag
from dfdet.errors import UsageError


@click.command("split")
@click.argument("feats", type=click.Path(dir_okay=False))
@click.option(
    "--parts", default="train=0.8,test=0.2", show_default=True, help="NAME=FRACTION,... (fractions sum to 1)."
)
@click.option("-o", "--output-dir", type=click.Path(file_okay=False), help="Write DIR/NAME.h5 for each part.")
@click.option("--out-pattern", help="Output path with {part}, e.g. 'splits/la_{part}.h5' (instead of -o).")
@click.option("--group-by", type=click.Choice(["speaker"]), default=None, help="Keep each speaker in one part.")
@click.option(
    "--sklearn-compatible",
    is_flag=True,
    help="Exactly train_test_split(test_size=<second fraction>, stratify=y, random_state=SEED) for 2 parts, rows in "
    "scikit-learn's order (the study's 80/20 split: --parts train=0.8,test=0.2 --seed 42).",
)
@click.option("--seed", type=int, default=None, help="Split seed (default: the root --seed, 42).")
@json_flag("Print a JSON summary of the parts on stdout.")
def split(
    feats: str,
    parts: str,
    output_dir: str | None,
    out_pattern: str | None,
    group_by: str | None,
    sklearn_compatible: bool,
    seed: int | None,
    as_json: bool,
) -> None:
    """Split FEATS (HDF5 store or study .npz) into parts written as HDF5 stores.

    Stratified by label: every part gets its fraction of bona fide and of spoof rows (seeded permutation per class,
    rows keep the input order). With --group-by speaker, whole speakers go to one part (parts are speaker-disjoint;
    class proportions then hold as far as speakers allow).

    \b
    Examples:
      dfdet split feats.h5 --parts train=0.8,test=0.2 -o splits/
      dfdet split feats.h5 --parts train=0.6,val=0.2,test=0.2 --group-by speaker --out-pattern 'la_{part}.h5'
      dfdet split features_robust.npz --sklearn-compatible -o study/     # the study's 80/20 split
    """
    from pathlib import Path

    from dfdet.splitting import parse_parts, split_featureset
    from dfdet.store import load_features, write_features

    if bool(output_dir) == bool(out_pattern):
        raise UsageError(
            "give exactly one of -o DIR and --out-pattern", "e.g. -o splits/ or --out-pattern 'x_{part}.h5'"
        )
    if out_pattern and "{part}" not in out_pattern:
        raise UsageError(f"--out-pattern {out_pattern!r} lacks {{part}}", "e.g. --out-pattern 'splits/{part}.h5'")
    spec = parse_parts(parts)
    if sklearn_compatible and len(spec) != 2:
        raise UsageError("--sklearn-compatible needs exactly 2 parts", "e.g. --parts train=0.8,test=0.2")
    if sklearn_compatible and group_by:
        raise UsageError("--sklearn-compatible cannot group by speaker", "drop one of the two options")
    seed = console.current_settings().seed if seed is None else seed
    fs = load_features(feats)
    pieces = split_featureset(fs, spec, seed=seed, group_by=group_by, sklearn_compatible=sklearn_compatible)
    mode = "sklearn" if sklearn_compatible else ("speaker" if group_by else "stratified")
    summary = {}
    paths = {
        name: Path(out_pattern.format(part=name)) if out_pattern else Path(output_dir) / f"{name}.h5" for name in spec
    }
    if len(set(paths.values())) != len(paths):
        raise UsageError("two parts would be written to the same file", "put {part} in --out-pattern")
    if Path(feats).resolve() in {p.resolve() for p in paths.values()}:
        raise UsageError("an output would overwrite the input store", "write the parts elsewhere")
    for name, part in pieces.items():
        info = {
            "part": name,
            "fraction": spec[name],
            "seed": seed,
            "mode": mode,
            "source": str(feats),
            "rows": len(part),
        }
        write_features(paths[name], part, split=json.dumps(info, sort_keys=True))
        summary[name] = {
            "path": str(paths[name]),
            "rows": len(part),
            "bonafide": int((part.y == 0).sum()),
            "spoof": int((part.y == 1).sum()),
            "unlabelled": int((part.y == -1).sum()),
            "speakers": len({s for s in part.speaker if s}),
        }
        console.info(
            f"{name}: {len(part)} rows ({summary[name]['bonafide']} bona fide, {summary[name]['spoof']} spoof"
            + (f", {_speakers(summary[name]['speakers'])}" if summary[name]["speakers"] else "")
            + f") -> {paths[name]}"
        )
    if as_json:
        click.echo(json.dumps({"source": str(feats), "seed": seed, "mode": mode, "parts": summary}, sort_keys=True))


def _speakers(n: int) -> str:
    return f"{n} speaker{'' if n == 1 else 's'}"
