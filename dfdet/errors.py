"""Error types that the CLI turns into one-line messages and exit codes (see DESIGN.md)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3
EXIT_WORKER_DIED = 4
EXIT_INTERRUPTED = 130


def _rebuild(cls: type[BaseException], args: tuple, state: dict) -> BaseException:
    """Unpickle without calling `__init__`: `args` is what `BaseException` keeps, `state` the attributes."""
    e = cls.__new__(cls, *args)  # sets e.args
    e.__dict__.update(state)
    return e


class _Picklable(Exception):
    """Pickles as (type, args, attributes), whatever the constructor's signature.

    Why: default pickling calls `cls(*self.args)`; our constructors take other arguments (InputError(path, what,
    fix)), so unpickling failed in a pool's result thread, which dies and leaves `imap` hanging.
    """

    def __reduce__(self) -> tuple:
        return _rebuild, (type(self), self.args, self.__dict__)


class DfdetError(_Picklable):
    """An expected failure: printed as `dfdet CMD: error: WHAT (FIX)` without a traceback."""

    exit_code = EXIT_ERROR

    def __init__(self, what: str, fix: str | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.what} ({self.fix})" if self.fix else self.what


class InputError(DfdetError):
    """A bad input file: unreadable, empty, too short, non-audio, NaN, wrong format."""

    def __init__(self, path: object, what: str, fix: str | None = None) -> None:
        super().__init__(f"{path}: {what}", fix)
        self.path = str(path)
        self.reason = what


class UsageError(DfdetError):
    """Inconsistent options that click itself cannot detect."""

    exit_code = EXIT_USAGE


class WorkerDied(DfdetError):
    """A pool worker process died mid-run (the kernel's OOM killer, kill -9, a crash in a native library): exit 4.

    Distinct from bad input (exit 1): the input may be fine and a rerun with more memory or a lower -j succeed.
    `path` is the file the worker held (None if it held none); `finished` the results done after the last row
    handed out, as (item, result) pairs in input order, so the caller can keep every finished row.
    """

    exit_code = EXIT_WORKER_DIED

    def __init__(self, path: str | None, how: str, fix: str | None = None) -> None:
        where = f" while processing {path}" if path is not None else ""
        super().__init__(f"a worker process {how}{where}", fix or "lower -j or free memory, then run again")
        self.path = path
        self.how = how
        self.finished: list = []


class PartialSuccess(_Picklable):
    """Raised by a command that finished but skipped inputs under --skip-bad (exit 3)."""

    def __init__(self, skipped: int) -> None:
        super().__init__(f"{skipped} input(s) skipped")
        self.skipped = skipped
