"""Expected errors: bad input, a missing upstream output, a bad config.

Each is one line naming the file, line or key.  A stage prints that line and writes the
traceback between the two markers below; the host driver keeps the marked lines in the
stage log (``<run>/.logs/<stage>.log``) and off the console unless ``--verbose``.  Any
other exception is a bug: its traceback is shown in full.
"""
from __future__ import annotations

import sys
import traceback

TRACEBACK_BEGIN = "----- traceback (stage log only; --verbose shows it) -----"
TRACEBACK_END = "----- end of traceback -----"


class ExpectedError(Exception):
    """Base of the errors a user fixes by changing the input or the config, not the code."""


def print_for_log(exc: BaseException, stream=None) -> None:
    """The traceback of ``exc`` between the markers (for the stage log only)."""
    stream = stream or sys.stderr
    print(TRACEBACK_BEGIN, file=stream)
    traceback.print_exception(exc, file=stream)
    print(TRACEBACK_END, file=stream, flush=True)


class LogOnlyFilter:
    """Line filter for the host: drops the marked traceback lines from the console (kept in the log)."""

    def __init__(self, verbose: bool = False):
        self.verbose, self.inside = verbose, False

    def show(self, line: str) -> bool:
        s = line.rstrip("\n")
        if s == TRACEBACK_BEGIN:
            self.inside = True
            return self.verbose
        if s == TRACEBACK_END:
            self.inside = False
            return self.verbose
        return self.verbose or not self.inside
