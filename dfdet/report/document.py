"""The report as data: sections made of paragraphs, tables and figures, rendered to HTML and markdown alike."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Text:
    """A paragraph; `style` "note" (small, grey), "warn" (highlighted) or "p"."""

    text: str
    style: str = "p"


@dataclass
class Bullets:
    """A list; `style` "warn" highlights every item (the summary's warnings)."""

    items: list[str]
    style: str = ""


@dataclass
class Table:
    """Cells are display strings already (numbers formatted by the section that made them)."""

    columns: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class Figure:
    png: bytes
    caption: str
    alt: str = ""


Block = Text | Bullets | Table | Figure


@dataclass
class Section:
    """One report section; `skipped` holds the one-line note when its inputs are absent; `fold` (a one-line
    summary) folds the blocks under it in the HTML, for reference material nobody reads first (provenance)."""

    id: str
    title: str
    blocks: list[Block] = field(default_factory=list)
    skipped: str | None = None
    data: dict[str, Any] = field(default_factory=dict)  # what summary.json records for this section
    fold: str | None = None

    def add(self, *blocks: Block) -> Section:
        self.blocks.extend(blocks)
        return self

    @property
    def status(self) -> str:
        return "skipped" if self.skipped else "ok"


def skipped(id: str, title: str, note: str) -> Section:
    return Section(id, title, skipped=note, data={"status": "skipped", "note": note})


# --------------------------------------------------------------------------------------------------- formatting
def num(value: Any, digits: int = 4) -> str:
    """A number for a table cell: '-' for missing / NaN, `digits` significant digits otherwise."""
    if value is None or isinstance(value, str):
        return "-" if value in (None, "") else str(value)
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(v):
        return "-"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if float(v).is_integer() and abs(v) < 1e6 and isinstance(value, int):
        return str(int(v))
    return f"{v:.{digits}g}"


def pct(value: Any, digits: int = 2) -> str:
    """A fraction as percent ('-' when missing)."""
    if value is None:
        return "-"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "-"
    return "-" if math.isnan(v) else f"{100 * v:.{digits}f} %"


def ci_pct(ci: Any) -> str:
    if not ci or len(ci) != 2 or ci[0] is None:
        return "-"
    return f"[{100 * float(ci[0]):.2f}, {100 * float(ci[1]):.2f}] %"


def ci_num(ci: Any) -> str:
    if not ci or len(ci) != 2 or ci[0] is None:
        return "-"
    return f"[{float(ci[0]):.4f}, {float(ci[1]):.4f}]"


def mean_sd(values: list[float], fmt: Any = num) -> str:
    """'mean ± sd (n)' of the finite values, or the value alone when n = 1."""
    v = [float(x) for x in values if x is not None and not math.isnan(float(x))]
    if not v:
        return "-"
    if len(v) == 1:
        return fmt(v[0])
    m = sum(v) / len(v)
    sd = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1))
    return f"{fmt(m)} ± {fmt(sd)} (n={len(v)})"
