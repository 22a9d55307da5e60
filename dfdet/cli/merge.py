"""`dfdet merge`: combine shard stores from `featurize --shard K/N` into one store."""

from __future__ import annotations

import click


@click.command("merge")
@click.argument("shards", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="HDF5 store to write.")
def merge(shards: tuple[str, ...], output: str) -> None:
    """Merge feature stores (e.g. the N shards of `featurize --shard K/N`) into OUTPUT.

    The stores must share the recipe (hash) and feature names; rows are sorted by utt_id, an utt_id present in two
    stores is an error, and inputs that failed in any shard stay listed in the result. Frame stores (--recipe lfcc)
    merge with their frames; a frame store and a vector store do not merge.

    \b
    Example:
      dfdet merge part1.h5 part2.h5 part3.h5 -o feats.h5
    """
    from dfdet import console
    from dfdet.store import merge_stores

    merged = merge_stores(list(shards), output)
    n_failed = len(merged.failures)
    frames = f", {int(merged.frames.n_frames.sum())} frames" if merged.frames is not None else ""
    console.info(f"merged {len(shards)} store(s) into {output}: {len(merged)} rows{frames}, {n_failed} failed inputs")
    if n_failed:
        console.warn(f"{n_failed} input(s) failed during featurizing; `dfdet info {output}` lists them")
