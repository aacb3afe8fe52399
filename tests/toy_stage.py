"""A toy stage for the driver's tests: writes <run>/<name>/data.txt atomically with a manifest.

    python tests/toy_stage.py NAME RUN_DIR KEY [--sleep S] [--fail] [--content TEXT] [--pid-file F]

It behaves like a real stage towards the driver (atomic output, manifest with the cache key,
sizes and sha256 of its outputs) without any image or model.
"""
import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from shared import manifest as mf  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("name")
p.add_argument("run_dir", type=Path)
p.add_argument("key")
p.add_argument("--sleep", type=float, default=0.0)
p.add_argument("--fail", action="store_true")
p.add_argument("--content", default=None)
p.add_argument("--pid-file", type=Path, default=None)
a = p.parse_args()
if a.pid_file:
    a.pid_file.write_text(str(os.getpid()))
t0 = time.time()
with mf.AtomicStageDir(a.run_dir, a.name) as out:
    (out / "data.txt").write_text(a.content or a.name)
    time.sleep(a.sleep)
    if a.fail:
        print(f"error: {a.name} was told to fail", file=sys.stderr)
        sys.exit(1)
    times = a.run_dir.parent / "times"         # outside the outputs: a rerun reproduces them byte for byte
    times.mkdir(exist_ok=True)
    with open(times / a.name, "a") as f:
        f.write(f"{t0} {time.time()}\n")
    mf.write_json(out / mf.MANIFEST, {"stage": a.name, "cache_key": a.key, "wall_s": time.time() - t0,
                                      "files": mf.list_files(out), "hashes": mf.hash_files(out)})
