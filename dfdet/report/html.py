"""Writers: a self-contained `index.html` (inline CSS, figures as base64 PNG data URIs, no scripts, no external
links, so it opens offline and can be mailed as one file), `summary.md` and `summary.json`; all written atomically."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dfdet.jsonio import dumps
from dfdet.report.document import Bullets, Figure, Section, Table, Text

CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:0 auto;max-width:1180px;padding:0 24px 60px;
color:#222;line-height:1.45}
h1{border-bottom:3px solid #222;padding-bottom:6px}
h2{border-bottom:1px solid #bbb;padding-bottom:4px;margin-top:42px}
nav ul{columns:2;list-style:none;padding-left:0}
nav li.skipped a{color:#888}
table{border-collapse:collapse;margin:10px 0 18px;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right;vertical-align:top}
th{background:#f0f0f0}
td:first-child,th:first-child{text-align:left}
caption{caption-side:top;text-align:left;font-weight:600;padding:4px 0}
figure{margin:14px 0 22px}
figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:13px;color:#444}
p.note{color:#666;font-size:13px}
p.warn{background:#fff4e0;border-left:4px solid #f0a020;padding:6px 10px}
p.skip{color:#777;font-style:italic}
.statement{background:#f5f8ff;border:1px solid #c8d4f0;padding:8px 16px;margin:16px 0}
details>summary{cursor:pointer;font-weight:600;padding:4px 0}
#summary{background:#fafafa;border:1px solid #ccc;padding:4px 16px 8px;margin:16px 0}
#summary h2{margin-top:8px}
ul.warn{list-style:none;padding-left:0}
ul.warn li{background:#fff4e0;border-left:4px solid #f0a020;padding:4px 10px;margin:4px 0}
code{background:#f3f3f3;padding:0 3px}
.tw{overflow-x:auto;max-width:100%}
td.n{white-space:nowrap}
"""

# A cell that is a number (with its unit, interval or count): kept on one line. A space between a number and its unit
# becomes a non-breaking one in every cell and header ("25.00 %", "[1.00, 2.00] %", "10 dB").
_NUMERIC = re.compile(r"[-+\u2212±\d.,:;/%\s\[\]()=ne]*\d[-+\u2212±\d.,:;/%\s\[\]()=ne]*|-|-?inf")
_UNIT_SPACE = re.compile(r"(?<=[\d\]]) (?=%|(?:dB|kHz|Hz|ms|s)\b)")


def is_numeric(text: str) -> bool:
    """True for a table cell holding a number and its unit only ('40.00 %', '[0.1, 0.2]', '5/5', '0.3 ± 0.1 (n=3)')."""
    return bool(_NUMERIC.fullmatch(text.strip()))


def _cell(text: Any) -> str:
    """An escaped cell text whose numbers stay next to their units."""
    return _UNIT_SPACE.sub("&nbsp;", _esc(text))


def _td(text: Any) -> str:
    return f'<td class="n">{_cell(text)}</td>' if is_numeric(str(text)) else f"<td>{_cell(text)}</td>"


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _block_html(block: Any) -> str:
    if isinstance(block, Text):
        return f'<p class="{_esc(block.style)}">{_cell(block.text)}</p>'
    if isinstance(block, Bullets):
        cls = f' class="{_esc(block.style)}"' if block.style else ""
        return f"<ul{cls}>" + "".join(f"<li>{_cell(i)}</li>" for i in block.items) + "</ul>"
    if isinstance(block, Table):
        cap = f"<caption>{_esc(block.caption)}</caption>" if block.caption else ""
        head = "".join(f"<th>{_cell(c)}</th>" for c in block.columns)
        body = "".join("<tr>" + "".join(map(_td, row)) + "</tr>" for row in block.rows)
        return f'<div class="tw"><table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'
    if isinstance(block, Figure):
        alt = _esc(block.alt or block.caption)
        return (
            f'<figure><img src="{data_uri(block.png)}" alt="{alt}">'
            f"<figcaption>{_esc(block.caption)}</figcaption></figure>"
        )
    raise TypeError(f"unknown report block {type(block).__name__}")


def _section_html(s: Section) -> str:
    parts = [f'<section id="{_esc(s.id)}"><h2>{_esc(s.title)}</h2>']
    if s.skipped:
        parts.append(f'<p class="skip">Skipped: {_esc(s.skipped)}</p>')
    elif s.fold:
        parts += [f"<details><summary>{_esc(s.fold)}</summary>", *map(_block_html, s.blocks), "</details>"]
    else:
        parts.extend(map(_block_html, s.blocks))
    parts.append("</section>")
    return "\n".join(parts)


def render_html(
    title: str,
    statement: Sequence[Any],
    sections: Sequence[Section],
    footer: str = "",
    summary: Section | None = None,
) -> str:
    """The whole page as one string (nothing outside it is referenced): the summary first, then the data statement
    (folded), the table of contents and the sections."""
    nav = "".join(
        f'<li class="{s.status}"><a href="#{_esc(s.id)}">{_esc(s.title)}</a>{" (skipped)" if s.skipped else ""}</li>'
        for s in sections
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_esc(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{_esc(title)}</h1>",
    ]
    if summary is not None:
        parts.append(_section_html(summary))
    parts += [
        '<details class="statement" id="data-statement"><summary>What was measured on what data</summary>',
        *(_block_html(b) for b in statement),
        "</details>",
        f"<nav><ul>{nav}</ul></nav>",
        *(_section_html(s) for s in sections),
    ]
    if footer:
        parts.append(f'<p class="note">{_esc(footer)}</p>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


# --------------------------------------------------------------------------------------------------- markdown
def _md_cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _block_md(block: Any) -> str:
    if isinstance(block, Text):
        return (
            f"_{block.text}_" if block.style == "note" else (f"> {block.text}" if block.style == "warn" else block.text)
        )
    if isinstance(block, Bullets):
        mark = "**warning:** " if block.style == "warn" else ""
        return "\n".join(f"- {mark}{i}" for i in block.items)
    if isinstance(block, Table):
        lines = [f"**{block.caption}**", ""] if block.caption else []
        lines.append("| " + " | ".join(_md_cell(c) for c in block.columns) + " |")
        lines.append("|" + "|".join("---" for _ in block.columns) + "|")
        lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
        return "\n".join(lines)
    if isinstance(block, Figure):
        return f"_Figure (in index.html): {block.caption}_"
    raise TypeError(f"unknown report block {type(block).__name__}")


def render_markdown(
    title: str, statement: Sequence[Any], sections: Sequence[Section], summary: Section | None = None
) -> str:
    """The report's text and tables (figures referenced by caption) for a terminal, a diff or a pull request."""
    out = [f"# {title}", ""]
    if summary is not None:
        out += [f"## {summary.title}", ""] + [x for b in summary.blocks for x in (_block_md(b), "")]
    out += ["## What was measured on what data", ""]
    for b in statement:
        out += [_block_md(b), ""]
    for s in sections:
        out += [f"## {s.title}", ""]
        if s.skipped:
            out += [f"_Skipped: {s.skipped}_", ""]
            continue
        for b in s.blocks:
            out += [_block_md(b), ""]
    return "\n".join(out).rstrip() + "\n"


# --------------------------------------------------------------------------------------------------- JSON
def write_report(out_dir: str | Path, page: str, markdown: str, summary: dict[str, Any]) -> dict[str, Path]:
    """Write index.html, summary.md and summary.json into `out_dir` (created): each goes to a temp file first and
    all three replace their targets only after all three were written, so a failure leaves the old report whole."""
    import contextlib

    from dfdet.atomic import atomic_path

    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    paths = {"json": d / "summary.json", "markdown": d / "summary.md", "html": d / "index.html"}
    texts = {
        "json": dumps(summary) + "\n",
        "markdown": markdown,
        "html": page,
    }
    with contextlib.ExitStack() as stack:
        for key, target in paths.items():
            tmp = stack.enter_context(atomic_path(target))
            tmp.write_text(texts[key], encoding="utf-8")
    return paths
