"""Catch the Dataflow Compiler's silent downgrades in its log and report them in the manifest.

Without a GPU the DFC prints e.g. ``Reducing optimization level to 0 (the accuracy won't be
optimized and compression won't be used) because there's no available GPU`` and goes on: the
quantized figures are then not those of the configured level.  :func:`watch` listens to every
``hailo*`` logger and the root logger, and afterwards scans the DFC's own log file
(``hailo_sdk.client.log`` in the working directory, opened when the DFC is imported: the stage
imports it and runs it inside :func:`cwd` of ``<out>/dfc``), so such lines end up in the manifest.
"""
from __future__ import annotations

import logging
import os
import re
from contextlib import contextmanager
from pathlib import Path

PATTERNS = [re.compile(p, re.I) for p in (
    r"reduc\w* (the )?(optimization|compression) level",
    r"no available gpu",
    r"(optimization|compression) level .*(reduced|lowered|downgraded)",
    r"zero level of optimization",
)]
DFC_LOG = "hailo_sdk.client.log"


@contextmanager
def cwd(path: Path):
    """Run the block in ``path`` (created): the DFC and HailoRT write their log files there."""
    Path(path).mkdir(parents=True, exist_ok=True)
    old = os.getcwd()
    os.chdir(path)
    try:
        yield Path(path)
    finally:
        os.chdir(old)


def downgrade_lines(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines() if any(p.search(ln) for p in PATTERNS)]


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        try:
            self.lines += downgrade_lines(record.getMessage())
        except Exception:  # noqa: BLE001 - a log handler never raises
            pass


@contextmanager
def watch(workdir: Path, found: list):
    """Append every downgrade line seen while the block runs to ``found`` (deduplicated)."""
    log_file = Path(workdir) / DFC_LOG
    start = log_file.stat().st_size if log_file.exists() else 0
    handler = _Collect()
    loggers = [logging.getLogger()] + [logging.getLogger(n) for n in list(logging.root.manager.loggerDict)
                                       if n.lower().startswith("hailo")]
    for lg in loggers:
        lg.addHandler(handler)
    try:
        yield found
    finally:
        for lg in loggers:
            lg.removeHandler(handler)
        lines = list(handler.lines)
        if log_file.exists():
            with open(log_file, errors="replace") as fh:
                fh.seek(start)
                lines += downgrade_lines(fh.read())
        for ln in lines:
            if ln not in found:
                found.append(ln)
