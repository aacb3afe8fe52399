"""ESP-IDF commands for the generated project and parsing of ``idf.py size``.

Commands (run in the project directory, with the IDF environment exported by the
espressif/idf image's entrypoint, or sourced from ``$IDF_PATH/export.sh`` otherwise):
  idf.py set-target esp32s3 ; idf.py build ; idf.py size
``parse_size`` reads both ``idf.py size`` layouts: the esp-idf-size table of IDF >= 5.3
("│ Flash Code │ 95414 │ 2.92 │ ...") and the older "Used static DRAM: N bytes" lines.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

TARGET = "esp32s3"


def idf_available() -> bool:
    return bool(shutil.which("idf.py") or (os.environ.get("IDF_PATH") and
                                           Path(os.environ["IDF_PATH"], "tools", "idf.py").exists()))


def commands(project: Path, target: str = TARGET) -> list[list[str]]:
    """The argv lists run in order (each through :func:`shell` so the IDF environment is present)."""
    p = str(project)
    return [["idf.py", "-C", p, "set-target", target], ["idf.py", "-C", p, "build"], ["idf.py", "-C", p, "size"]]


def shell(argv: list[str]) -> list[str]:
    """argv wrapped to run with the IDF environment (sourced when idf.py is not on PATH yet)."""
    if shutil.which("idf.py"):
        return argv
    quoted = " ".join("'" + a.replace("'", "'\\''") + "'" for a in argv)
    return ["bash", "-c", f'. "$IDF_PATH/export.sh" >/dev/null 2>&1 && {quoted}']


_ROW = re.compile(r"^[│|]\s*(?P<name>[^│|]+?)\s*[│|]\s*(?P<used>\d+)\s*[│|]\s*(?P<pct>[\d.]*)\s*[│|]\s*"
                  r"(?P<remain>\d*)\s*[│|]\s*(?P<total>\d*)\s*[│|]")
_OLD = re.compile(r"^\s*Used (?P<name>.+?)\s*:\s*(?P<used>\d+) bytes(?: \(\s*(?P<remain>\d+) remain, "
                  r"(?P<pct>[\d.]+)% used\))?")
_TOTAL = re.compile(r"Total image size:\s*(\d+) bytes")


def parse_size(text: str, app_bin: Path | None = None) -> dict:
    """{"total_image_bytes": N, "memory": {name: {used, used_pct, remain, total}}} from ``idf.py size`` output.

    Newer esp-idf-size no longer prints "Total image size" (and may leave "Used [%]" empty); then
    the size of the built app binary ``app_bin`` stands in for it."""
    mem: dict[str, dict] = {}
    for line in text.splitlines():
        m = _ROW.match(line.strip()) or _OLD.match(line)
        if not m:
            continue
        d = m.groupdict()
        name = d["name"].strip()
        mem[name] = {"used": int(d["used"]), "used_pct": float(d["pct"]) if d.get("pct") else None,
                     "remain": int(d["remain"]) if d.get("remain") else None,
                     "total": int(d["total"]) if d.get("total") else None}
    total = _TOTAL.search(text)
    if total is None and not mem:
        raise ValueError("idf.py size: no 'Total image size' and no memory rows in its output")
    if total:
        image = int(total.group(1))
    else:
        image = app_bin.stat().st_size if app_bin is not None and app_bin.exists() else None
    return {"total_image_bytes": image, "memory": mem}
