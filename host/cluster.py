"""The local Ray cluster (compose.ray.yaml): a head and N workers from the quantize image on the
internal network ``jmmc_ray``, for ``executor: {kind: ray}`` (docs/ray.md).

* ``up(workers)`` builds the quantize image if needed and starts (or rescales) the cluster;
* ``down()`` removes its containers;
* ``worker_containers()`` maps each running worker's hostname (what a cell's attempt line records,
  shared/executor.py) to its container, so a test can kill the one running a cell.
"""
from __future__ import annotations

import os
import subprocess

from host import images as img

SERVICES = ("ray-head", "ray-worker-quantize")


class ClusterError(RuntimeError):
    pass


def _compose() -> list[str]:
    os.environ["JMMC_RAY"] = "1"
    return img.compose_cmd() + ["--profile", "ray"]


def up(workers: int = 2) -> None:
    from host import driver
    if workers < 1:
        raise ClusterError(f"invoke cluster up: --workers must be at least 1, not {workers}")
    driver.build_images(["quantize"])    # head and workers run the stage's own image (same Ray, same code)
    rc = subprocess.run(_compose() + ["up", "-d", "--scale", f"ray-worker-quantize={workers}", *SERVICES]).returncode
    if rc != 0:
        raise ClusterError(f"docker compose up of the Ray cluster failed (exit {rc})")


def down() -> None:
    rc = subprocess.run(_compose() + ["rm", "-sf", *SERVICES]).returncode
    if rc != 0:
        raise ClusterError(f"docker compose rm of the Ray cluster failed (exit {rc})")


def worker_containers() -> dict[str, str]:
    """{hostname: container id} of the running ray-worker-quantize containers."""
    ids = subprocess.run(_compose() + ["ps", "-q", "ray-worker-quantize"], capture_output=True, text=True,
                         check=True).stdout.split()
    out = {}
    for cid in ids:
        host = subprocess.run(["docker", "inspect", "-f", "{{.Config.Hostname}}", cid], capture_output=True,
                              text=True, check=True).stdout.strip()
        out[host] = cid
    return out
