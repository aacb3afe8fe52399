"""``run(ctx)``: build the ESP-IDF project the esp stage generated and measure its image.

In the esp-build image (FROM espressif/idf:v5.3.2): copy ``<run>/esp/firmware`` to a work
dir, add the esp-dl component fetched when the image was built (``$JMMC_IDF_DEPS``: stage
containers have no network), run ``idf.py set-target esp32s3``, ``idf.py build``,
``idf.py size``; keep the .bin files, flasher_args.json, the size report (text + parsed
JSON) and the build log.  Without ESP-IDF the stage says what it needs (the driver already
skips it host-side when the base image is missing).

Outputs (``<run>/esp-build/``): bin/*.bin, bin/flasher_args.json, size.txt, size.json, build.log
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from stages.esp_build.idf_cmd import TARGET, commands, idf_available, parse_size, shell

IDF_IMAGE = "espressif/idf:v5.3.2"
SKIP = (f"needs {IDF_IMAGE}; docker pull {IDF_IMAGE} (or docker load) and rerun `invoke stage esp-build`")
BINARIES = ("*.bin", "bootloader/bootloader.bin", "partition_table/partition-table.bin", "flasher_args.json")


class BuildError(RuntimeError):
    pass


def add_prefetched_components(project: Path, deps: Path | None) -> bool:
    """Copy managed_components/ + dependencies.lock of the image's stub project (fetched at image build)."""
    if deps is None or not (deps / "managed_components").is_dir():
        return False
    shutil.copytree(deps / "managed_components", project / "managed_components", dirs_exist_ok=True)
    if (deps / "dependencies.lock").exists():
        shutil.copy(deps / "dependencies.lock", project / "dependencies.lock")
    return True


def run_logged(argv: list[str], log_fh, cwd: Path, timeout: int = 3600) -> str:
    log_fh.write(f"$ {' '.join(argv)}\n")
    log_fh.flush()
    p = subprocess.run(shell(argv), cwd=cwd, capture_output=True, text=True, timeout=timeout)
    log_fh.write(p.stdout + p.stderr)
    if p.returncode != 0:
        tail = "\n".join((p.stdout + p.stderr).splitlines()[-15:])
        raise BuildError(f"`{' '.join(argv)}` failed (exit {p.returncode}); log: build.log\n{tail}")
    return p.stdout


def collect_binaries(build: Path, dst: Path) -> dict[str, int]:
    dst.mkdir(parents=True, exist_ok=True)
    out = {}
    for pattern in BINARIES:
        for f in build.glob(pattern):
            shutil.copy(f, dst / f.name)
            out[f.name] = f.stat().st_size
    return out


def run(ctx) -> dict:
    esp = ctx.input_manifests["esp"]
    if esp.get("skipped"):
        return {"skipped": f"needs the esp stage's ESP-IDF project; esp was skipped: {esp['skipped']}", "metrics": {}}
    src = ctx.input("esp") / "firmware"
    if not (src / "CMakeLists.txt").exists():
        raise FileNotFoundError(f"{src}/CMakeLists.txt: missing (rerun `invoke stage esp`)")
    if not idf_available():
        return {"skipped": SKIP, "metrics": {}}
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="jmmc-idf-") as tmp, open(ctx.out / "build.log", "w") as log_fh:
        project = Path(tmp) / "firmware"
        shutil.copytree(src, project)
        deps = os.environ.get("JMMC_IDF_DEPS")
        prefetched = add_prefetched_components(project, Path(deps) if deps else None)
        ctx.log.info("building %s for %s (esp-dl prefetched: %s)", src, TARGET, prefetched)
        outputs = [run_logged(argv, log_fh, project) for argv in commands(project)]
        (ctx.out / "size.txt").write_text(outputs[-1])
        size = parse_size(outputs[-1], project / "build" / "jmmc_esp.bin")
        (ctx.out / "size.json").write_text(json.dumps(size, indent=2) + "\n")
        bins = collect_binaries(project / "build", ctx.out / "bin")
    project_info = json.loads((src / "jmmc_project.json").read_text()) if (src / "jmmc_project.json").exists() else {}
    ctx.log.info("built in %.0f s: image %s B", time.time() - t0, size["total_image_bytes"])
    return {"metrics": {"total_image_bytes": size["total_image_bytes"], "memory": size["memory"], "binaries": bins,
                        "project": project_info, "build_seconds": round(time.time() - t0, 1),
                        "flash": "idf.py -p PORT flash monitor (in <run>/esp/firmware, see stages/esp/README.md)"}}
