"""The report section of `dfdet score --segments` files: where in each file the detector hears a fake."""

from __future__ import annotations

from typing import Any

import numpy as np

from dfdet.report.context import Context
from dfdet.report.document import Figure, Section, Table, Text, num

MAX_PANELS = 8  # files drawn per segments file (the table lists them all)


def _files(table: dict[str, Any]) -> list[dict[str, Any]]:
    """The windows of a segments table grouped by file, in the file's order."""
    ids = table["utt_id"]
    order = list(dict.fromkeys(ids))
    idx = {u: [i for i, x in enumerate(ids) if x == u] for u in order}
    out = []
    for u in order:
        i = np.asarray(idx[u])
        f = {k: table[k][i] for k in ("start", "end", "score", "p_spoof", "decision")}
        f["utt_id"] = u
        f["threshold"] = threshold_band(f["score"], f["decision"])
        out.append(f)
    return out


def threshold_band(score: np.ndarray, decision: np.ndarray) -> tuple[float, float] | None:
    """Where the decision threshold lies, from the windows' decisions (score >= threshold -> bona fide): between the
    highest spoof score and the lowest bona fide score; None when the windows hold one decision only."""
    bona, spoof = score[decision == 0], score[decision == 1]
    if bona.size and spoof.size and bona.min() >= spoof.max():
        return float(spoof.max()), float(bona.min())
    return None


def segments_section(ctx: Context) -> Section:
    """Per segments file: a score-over-time figure (one panel per file) and a table of each file's lowest window."""
    from dfdet.report.figures import segments_figure

    sec = Section("segments", "Score over time")
    sec.add(
        Text(
            "Each window of audio scored as a clip of its own (`dfdet score --segments`): low scores are "
            "spoof-like, so a dip marks where in a file the detector hears a fake. The grey band holds the decision "
            "threshold (between the highest spoof and the lowest bona fide window); the red span is the "
            "lowest-scoring window."
        )
    )
    data = []
    for art in ctx.inputs.of("segments"):
        files = _files(art.table)
        shown = files[:MAX_PANELS]
        more = f" (the first {MAX_PANELS} of {len(files)} files)" if len(files) > MAX_PANELS else ""
        sec.add(
            Figure(
                segments_figure(shown, f"Score over time: {art.path.name}"),
                f"{art.path.name}: score per window{more}.",
                alt=f"score over time of {len(shown)} file(s) in {art.path.name}",
            )
        )
        rows = []
        for f in files:
            k = int(np.argmin(f["score"]))
            n_spoof = int((f["decision"] == 1).sum())
            rows.append(
                [f["utt_id"], str(len(f["score"])), f"{f['end'].max():.2f} s", str(n_spoof),
                 f"{f['start'][k]:.2f}-{f['end'][k]:.2f} s", num(f["score"][k])]
            )  # fmt: skip
            data.append(
                {
                    "file": str(art.path),
                    "utt_id": f["utt_id"],
                    "windows": len(f["score"]),
                    "spoof_windows": n_spoof,
                    "lowest": {"start": float(f["start"][k]), "end": float(f["end"][k]), "score": float(f["score"][k])},
                }
            )
        sec.add(
            Table(
                ["file", "windows", "length", "spoof windows", "lowest window", "lowest score"],
                rows,
                f"{art.path.name}: per file, the most spoof-like window.",
            )
        )
    sec.data = {"status": "ok", "results": data}
    return sec
