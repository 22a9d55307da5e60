"""`dfdet report INPUTS... -o DIR`: the study's figures and tables as one self-contained HTML page."""

from __future__ import annotations

import click

from dfdet.errors import UsageError


def _domains(values: tuple[str, ...]) -> list[tuple[str, str]]:
    out = []
    for v in values:
        name, sep, pattern = v.partition("=")
        if not sep or not name.strip() or not pattern.strip():
            raise UsageError(f"--domain {v!r} is not NAME=GLOB", "e.g. --domain wild='scores/*wild*'")
        out.append((name.strip(), pattern.strip()))
    return out


@click.command("report")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True), metavar="INPUTS...")
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False), help="Report directory.")
@click.option("--title", default="dfdet report", show_default=True, help="Title of the page.")
@click.option(
    "--domain",
    "domains",
    multiple=True,
    metavar="NAME=GLOB",
    help="Tag score files matching GLOB with domain NAME (repeatable; first match wins). Otherwise a `domain` "
    "column or a file name containing wild/ood/itw/lab/test tags them.",
)
@click.option(
    "--ci",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.95,
    show_default=True,
    help="Level of the bootstrap confidence intervals.",
)
@click.option(
    "--bootstrap",
    "n_boot",
    type=click.IntRange(0),
    default=1000,
    show_default=True,
    help="Bootstrap resamples per score file (0 = no intervals).",
)
@click.option("--skip-bad", is_flag=True, help="Warn about unreadable inputs and go on (exit 3) instead of failing.")
def report(
    inputs: tuple[str, ...],
    out_dir: str,
    title: str,
    domains: tuple[str, ...],
    ci: float,
    n_boot: int,
    skip_bad: bool,
) -> None:
    """Write OUT/index.html (self-contained: figures embedded, no external links), OUT/summary.md and
    OUT/summary.json from the artifacts under INPUTS (files or directories, walked recursively).

    Reads model files and their histories, score files with labels, calibration / ensemble / landscape /
    explain / shortcut-scan / attack JSON; each is recognised by its content. Sections whose inputs are absent are
    kept as a one-line note. Scores are bona-fide-positive (higher = more likely genuine). Prints the path of
    index.html on stdout.
    """
    import time

    from dfdet import console
    from dfdet.errors import PartialSuccess
    from dfdet.report import build_report

    t0 = time.perf_counter()
    settings = console.current_settings()
    res = build_report(
        list(inputs),
        out_dir,
        title=title,
        domains=_domains(domains),
        ci=ci,
        n_boot=n_boot,
        seed=settings.seed,
        skip_bad=skip_bad,
        warn=console.warn,
    )
    found = res["inputs"]
    sections = res["summary"]["sections"]
    done = [k for k, v in sections.items() if v["status"] == "ok"]
    missing = [k for k, v in sections.items() if v["status"] != "ok"]
    for k in missing:
        console.verbose(f"section {k} skipped: {sections[k].get('note')}")
    n_in = len(found.items) + len(found.bad)
    console.info(
        f"report: {len(found.items)} artifact(s), sections {', '.join(done)}"
        + (f"; skipped {', '.join(missing)}" if missing else "")
    )
    console.info(console.summary_line(len(found.items), n_in, len(found.bad), time.perf_counter() - t0))
    click.echo(str(res["paths"]["html"]))
    if found.bad:
        raise PartialSuccess(len(found.bad))
