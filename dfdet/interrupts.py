"""Ctrl-C and SIGTERM that cannot be lost.

A signal handler's KeyboardInterrupt can land inside a weakref callback or a `__del__`, where Python prints
"Exception ignored" and carries on; the run would then finish and commit its output as if never stopped. The handler
therefore also records the request, and every atomic commit (and every progress step) checks it first.
"""

from __future__ import annotations

import contextlib
import signal
import sys

_requested = False


def _handle(signum: int, frame: object) -> None:  # pragma: no cover - exercised by the kill test in a subprocess
    global _requested
    _requested = True
    raise KeyboardInterrupt


def install() -> None:
    """Route SIGINT and SIGTERM through the recording handler (main thread only; elsewhere a no-op)."""
    global _requested
    _requested = False
    sigs = [signal.SIGINT] + ([signal.SIGTERM] if sys.platform != "win32" else [])
    for sig in sigs:
        with contextlib.suppress(ValueError):  # not in the main thread (e.g. some test runners)
            signal.signal(sig, _handle)


def requested() -> bool:
    return _requested


def check() -> None:
    """Raise KeyboardInterrupt if a stop was requested, even if the first one was swallowed."""
    if _requested:
        raise KeyboardInterrupt
