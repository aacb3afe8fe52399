"""`invoke readme`: put a run's results table and plot into README.md (nothing hand-edited).

The report stage writes ``volumes/<run>/report/README_snippet.md`` and ``ap_vs_bytes.png``;
this copies every figure the snippet links (``docs/figures/<run>_<name>``, e.g. the AP-vs-size plot
and the real-photos grid) from the report folder (the README links them there,
since ``volumes/`` is never committed) and replaces the text between the README markers
``<!-- results:<run>:begin -->`` and ``<!-- results:<run>:end -->``.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

from shared.config import REPO

PLOT = "ap_vs_bytes.png"


class ReadmeError(RuntimeError):
    pass


def markers(run: str) -> tuple[str, str]:
    return f"<!-- results:{run}:begin -->", f"<!-- results:{run}:end -->"


def splice(text: str, run: str, snippet: str, where: str = "README.md") -> str:
    """``text`` with the block between the run's markers replaced by ``snippet``."""
    begin, end = markers(run)
    i, j = text.find(begin), text.find(end)
    if i < 0 or j < 0 or j < i:
        raise ReadmeError(f"{where}: markers {begin} ... {end} not found (add them where the table goes)")
    return text[:i + len(begin)] + "\n" + snippet.strip("\n") + "\n" + text[j:]


def update(run: str, volumes: Path, repo: Path = REPO) -> list[Path]:
    """Copy the run's snippet and plot into the repo; returns the files written."""
    report = volumes / run / "report"
    snippet_path = report / "README_snippet.md"
    if not snippet_path.exists():
        raise ReadmeError(f"{snippet_path}: missing; run `invoke all --config configs/{run}.yaml` first")
    readme = repo / "README.md"
    text = splice(readme.read_text(), run, snippet_path.read_text(), str(readme))
    written = []
    # every figure the snippet links (docs/figures/<run>_<name>) comes from the report's <name>
    for name in sorted(set(re.findall(rf"docs/figures/{re.escape(run)}_([\w.-]+\.png)", text)) | {PLOT}):
        if (report / name).exists():
            fig = repo / "docs" / "figures" / f"{run}_{name}"
            fig.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(report / name, fig)
            written.append(fig)
    tmp = readme.with_suffix(".md.tmp")
    tmp.write_text(text)
    tmp.replace(readme)
    return [readme] + written
