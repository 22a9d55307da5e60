"""Error types that the CLI turns into one-line messages and exit codes (see DESIGN.md)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3
EXIT_INTERRUPTED = 130


class DfdetError(Exception):
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


class PartialSuccess(Exception):
    """Raised by a command that finished but skipped inputs under --skip-bad (exit 3)."""

    def __init__(self, skipped: int) -> None:
        super().__init__(f"{skipped} input(s) skipped")
        self.skipped = skipped
