"""Atomic file outputs: a temp file in the target directory, renamed over the target only on success."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from dfdet import interrupts


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temp_in(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    # mkstemp makes 0600 files; outputs get the permissions a plain open() would give them.
    os.fchmod(fd, 0o666 & ~_umask())
    os.close(fd)
    return Path(name)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside `target`; it replaces `target` only if the block succeeds.

    Any exception (including KeyboardInterrupt) deletes the temp file, so a reader never sees a half-written output.
    """
    target = Path(target)
    tmp = _temp_in(target)
    try:
        yield tmp
        interrupts.check()  # a swallowed Ctrl-C/SIGTERM must not commit a partial output
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_open(target: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open `target` for writing atomically; `-` means stdout (written directly, never closed)."""
    if str(target) == "-":
        if "b" in mode:
            yield sys.stdout.buffer
            sys.stdout.buffer.flush()
        else:
            yield sys.stdout
            sys.stdout.flush()
        return
    with atomic_path(target) as tmp:
        kwargs = {} if "b" in mode else {"encoding": encoding, "newline": ""}
        with open(tmp, mode, **kwargs) as fh:
            yield fh


def write_text_atomic(target: str | os.PathLike, text: str) -> None:
    with atomic_open(target, "w") as fh:
        fh.write(text)
