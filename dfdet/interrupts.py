"""Ctrl-C and SIGTERM that cannot be lost.

A signal handler's KeyboardInterrupt can land inside a weakref callback or a `__del__`, where Python prints
"Exception ignored" and carries on; the run would then finish and commit its output as if never stopped. The handler
therefore also records the request, and every atomic commit (and every progress step) checks it first.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys

_requested = False
_owner = os.getpid()  # the process that installed the handler


def _handle(signum: int, frame: object) -> None:  # pragma: no cover - exercised by the kill test in a subprocess
    global _requested
    if os.getpid() != _owner:
        # A forked pool worker signalled before its initializer reset the handlers (Pool.terminate right after
        # start): raising here would unwind the copy of the parent's stack it still runs on, cleanup handlers
        # included. It dies as the default action would instead.
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    _requested = True
    raise KeyboardInterrupt


def install() -> None:
    """Route SIGINT and SIGTERM through the recording handler (main thread only; elsewhere a no-op)."""
    global _requested, _owner
    _requested, _owner = False, os.getpid()
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
