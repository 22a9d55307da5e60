"""`dfdet info`: what is in a feature store (rows, dims, recipe, labels, systems, failures)."""

from __future__ import annotations

from typing import Any

import click

from dfdet.cli.options import json_flag


def _counts(d: dict[str, int], limit: int = 12) -> str:
    items = [f"{k} {v}" for k, v in d.items()]
    if len(items) > limit:
        items = items[:limit] + [f"... ({len(items) - limit} more)"]
    return ", ".join(items) or "-"


def format_summary(s: dict[str, Any]) -> str:
    """Aligned `key  value` lines, then the failed inputs with their reasons."""
    dur = s.get("duration_s") or {}
    rows = [
        ("file", s.get("source") or "-"),
        ("rows", str(s["rows"])),
        ("dims", str(s["dims"]) + (" (mean and std of each frame dimension)" if s.get("frames") else "")),
        ("recipe", f"{s.get('recipe') or '-'} (hash {s.get('recipe_hash') or '-'})"),
        ("labels", _counts(s.get("labels", {}))),
        ("systems", _counts(s.get("systems", {}))),
        ("speakers", str(s.get("speakers", 0))),
        ("domains", _counts(s.get("domains", {}))),
        *[(key, _counts(s[key])) for key in ("families", "collections") if s.get(key)],
    ]
    if dur.get("total") is not None:
        rows.append(("duration", f"{dur['total']:.1f} s total ({dur['min']:.2f}-{dur['max']:.2f} s per file)"))
    if s.get("groups"):
        rows.append(("groups", ", ".join(f"{n} {a}-{b}" for n, a, b in s["groups"])))
    fr = s.get("frames")
    if fr:
        per = fr["per_row"]
        spread = f" ({per['min']}/{per['median']:g}/{per['max']} per row, min/median/max)" if fr["total"] else ""
        rows.append(("frames", f"{fr['total']} x {fr['dim']}{spread}"))
        rows.append(("frame groups", ", ".join(f"{n} {a}-{b}" for n, a, b in fr["groups"])))
    for key in ("shard", "created", "dfdet_version"):
        if s.get(key):
            rows.append((key, str(s[key])))
    rows.append(("failures", str(s.get("failures", 0))))
    width = max(len(k) for k, _ in rows)
    lines = [f"{k.ljust(width)}  {v}" for k, v in rows]
    lines += [f"  {f['path']}: {f['reason']}" for f in s.get("failed", [])]
    return "\n".join(lines)


@click.command("info")
@click.argument("file", type=click.Path(dir_okay=False))
@json_flag("Print the summary as JSON.")
def info(file: str, as_json: bool) -> None:
    """Summarise a feature store (HDF5 from `dfdet featurize`, or a study .npz) on stdout.

    Shows rows, dimensions, the recipe and its hash, label / system / domain counts, speakers, durations, feature
    groups, and every input that was skipped under --skip-bad with its reason. For a frame store (e.g. --recipe
    lfcc) also the total frames, frames per row (min/median/max) and the frame dimension.
    """
    from dfdet.jsonio import dumps
    from dfdet.store import describe, load_features

    summary = describe(load_features(file))
    click.echo(dumps(summary, sort_keys=True) if as_json else format_summary(summary))
