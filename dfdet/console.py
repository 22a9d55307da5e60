"""Messages and progress on stderr: stdout carries data only."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

import click

T = TypeVar("T")


@dataclass
class Settings:
    """Root options shared by every subcommand (ctx.obj)."""

    verbose: int = 0
    quiet: bool = False
    debug: bool = False
    seed: int = 42
    started: float = field(default_factory=time.perf_counter)


def current_settings() -> Settings:
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        obj = ctx.find_object(Settings)
        if obj is not None:
            return obj
    return Settings()


def info(text: str) -> None:
    """An informational line on stderr, hidden by -q."""
    if not current_settings().quiet:
        click.echo(text, err=True)


def verbose(text: str) -> None:
    """A line shown only with -v."""
    s = current_settings()
    if s.verbose and not s.quiet:
        click.echo(text, err=True)


def warn(text: str) -> None:
    """A warning line on stderr; shown even with -q because it reports lost or doubtful work."""
    click.echo(f"warning: {text}", err=True)


def progress_enabled() -> bool:
    return not current_settings().quiet and sys.stderr.isatty()


def progress(iterable: Iterable[T], total: int | None = None, desc: str = "", unit: str = "it") -> Iterator[T]:
    """Wrap an iterable in a tqdm bar on stderr, off when stderr is not a TTY or with -q."""
    from dfdet import interrupts

    if not progress_enabled():
        for item in iterable:
            interrupts.check()
            yield item
        return
    from tqdm import tqdm

    with tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True, leave=False) as bar:
        for item in bar:
            interrupts.check()
            yield item


def summary_line(done: int, total: int, skipped: int, seconds: float) -> str:
    """`done 998 of 1000 (2 skipped) in 41 s`: the closing line of every batch command."""
    secs = f"{seconds:.1f}" if seconds < 10 else f"{seconds:.0f}"
    return f"done {done} of {total} ({skipped} skipped) in {secs} s"
