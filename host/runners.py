"""Where a stage runs: in its Docker image (default) or in a local virtualenv.

``choose_runner("auto")`` takes Docker when an engine answers, else the local
runner with a warning.  The local runner builds one virtualenv per image under
``volumes/.venvs/`` from the same pinned requirement files as the images.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import subprocess
import sys
import venv
from pathlib import Path

from shared.config import REPO
from shared.errors import LogOnlyFilter
from host import images as img
from shared.dag import Stage

log = logging.getLogger("runner")
VOLUMES = REPO / "volumes"


class RunnerError(RuntimeError):
    pass


def stage_module(name: str) -> str:
    return f"stages.{name.replace('-', '_')}"


def engine_answers() -> tuple[bool, str]:
    try:
        r = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True,
                           text=True, timeout=15)
    except FileNotFoundError:
        return False, "docker CLI not installed"
    except subprocess.TimeoutExpired:
        return False, "docker info timed out"
    if r.returncode != 0:
        return False, (r.stderr.strip().splitlines() or ["docker info failed"])[-1]
    return True, r.stdout.strip()


def choose_runner(requested: str) -> str:
    if requested not in ("auto", "docker", "local"):
        raise RunnerError(f"--runner must be auto, docker or local, not '{requested}'")
    if requested == "local":
        return "local"
    ok, why = engine_answers()
    if ok:
        return "docker"
    if requested == "docker":
        raise RunnerError(f"no Docker engine answers ({why}); start one (`dockerd &`) or use --runner local")
    log.warning("no Docker engine answers (%s): running stages in local virtualenvs (--runner local)", why)
    return "local"


class DockerRunner:
    kind = "docker"

    def __init__(self, os_images: dict[str, str]):
        self.images = img.load_images()
        self.os_images = os_images

    def env_id(self, image: str) -> str:
        return f"docker:{img.fingerprint(self.images, image, self.os_images, computes_only=True)}"

    def prepare(self, image: str, env: dict, force: bool = False) -> None:
        img.build(self.images, image, env, force)

    def command(self, stage: Stage, config_path: Path, key: str, env_id: str, run: str = "run",
                threads: int = 0) -> list[str]:
        inner = Path("/work") / config_path.relative_to(VOLUMES)
        return img.compose_cmd() + [
            "run", "--rm", "-T", "--name", container_name(run, stage.name), "-e", f"JMMC_ENV_ID={env_id}",
            *thread_env_args(threads), stage.name,
            "python", "-m", stage_module(stage.name), "--config", str(inner), "--work", "/work",
            "--cache-key", key, "--env-id", env_id]

    def stop(self, run: str, names: list[str]) -> None:
        """Stop and remove the containers of ``names`` in ``run`` (an interrupted driver)."""
        ids = [container_name(run, n) for n in names]
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, timeout=120)
        terminate_children()        # the compose clients

    def stop_orphans(self, run: str) -> list[str]:
        """Containers of this run left by a driver that was killed (SIGKILL, a closed terminal): stopped."""
        r = subprocess.run(["docker", "ps", "-a", "--filter", f"name=^{container_name(run, '')}",
                            "--format", "{{.Names}}"], capture_output=True, text=True, timeout=60)
        names = [n for n in r.stdout.split() if n.startswith(container_name(run, ""))]
        if names:
            log.warning("stopping container(s) left running by an earlier, killed run: %s", ", ".join(names))
            subprocess.run(["docker", "rm", "-f", *names], capture_output=True, timeout=120)
        return names


class LocalRunner:
    kind = "local"

    def __init__(self, os_images=None):
        self.images = img.load_images()

    def env_id(self, image: str) -> str:
        h = hashlib.sha256(sys.version.encode())
        for f in img.requirement_files(self.images, image):
            h.update(f.read_bytes())
        h.update(img.fingerprint(self.images, image, computes_only=True).encode())
        return f"local:{h.hexdigest()[:16]}"

    def venv_dir(self, image: str) -> Path:
        return VOLUMES / ".venvs" / image

    def prepare(self, image: str, env: dict | None = None, force: bool = False) -> None:
        d = self.venv_dir(image)
        stamp = d / "jmmc-requirements.sha256"
        reqs = img.requirement_files(self.images, image)
        want = hashlib.sha256(b"".join(f.read_bytes() for f in reqs)).hexdigest()
        if not force and stamp.exists() and stamp.read_text() == want:
            return
        log.info("creating virtualenv %s from %s", d, ", ".join(str(f.relative_to(REPO)) for f in reqs))
        venv.EnvBuilder(with_pip=True, clear=True).create(d)
        for f in reqs:
            r = subprocess.run([str(d / "bin" / "python"), "-m", "pip", "install", "-q", "-r", str(f)])
            if r.returncode != 0:
                raise RunnerError(f"pip install -r {f.relative_to(REPO)} failed in {d} (exit {r.returncode})")
        stamp.write_text(want)

    def command(self, stage: Stage, config_path: Path, key: str, env_id: str, run: str = "run",
                threads: int = 0) -> list[str]:
        env = ["env", "PYTHONHASHSEED=0", *[a for a in thread_env_args(threads) if a != "-e"]]   # as compose.yaml
        return env + [str(self.venv_dir(stage.image) / "bin" / "python"), "-m", stage_module(stage.name),
                      "--config", str(config_path), "--work", str(VOLUMES), "--cache-key", key, "--env-id", env_id]

    def stop(self, run: str, names: list[str]) -> None:
        """Local stage processes are the driver's children: terminated."""
        terminate_children()

    def stop_orphans(self, run: str) -> list[str]:
        return []


def container_name(run: str, stage: str) -> str:
    """The stage container's name (one per run and stage; docker's name rules)."""
    return re.sub(r"[^a-zA-Z0-9_.-]", "-", f"jmmc-{run}-{stage}")


def thread_env_args(threads: int) -> list[str]:
    """The share of the cores a stage gets when several run at once (torch reads OMP_NUM_THREADS,
    shared/ort_runtime.py JMMC_THREADS)."""
    if not threads:
        return []
    return ["-e", f"JMMC_THREADS={threads}", "-e", f"OMP_NUM_THREADS={threads}", "-e", f"MKL_NUM_THREADS={threads}"]


def make_runner(kind: str, os_images: dict[str, str]):
    return DockerRunner(os_images) if kind == "docker" else LocalRunner(os_images)


def run_logged(cmd: list[str], log_path: Path, env: dict | None = None, prefix: str = "") -> int:
    """Run ``cmd`` streaming its output to the terminal (each line after ``prefix``) and to ``log_path``.
    The traceback of an expected error (shared/errors.py markers) goes to the log only, unless
    JMMC_VERBOSE=1.  Interrupted, the child is terminated (then killed) before this returns."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    console = LogOnlyFilter(verbose=os.environ.get("JMMC_VERBOSE") == "1")
    with open(log_path, "w") as fh:
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
                             env={**os.environ, **(env or {})}, bufsize=1, start_new_session=True)
        CHILDREN.add(p)
        try:
            for line in p.stdout:
                if console.show(line):
                    sys.stderr.write(prefix + line)
                fh.write(line)
            return p.wait()
        finally:
            CHILDREN.discard(p)
            _end(p)


CHILDREN: set[subprocess.Popen] = set()      # the stage processes run_logged is streaming


def _end(p: subprocess.Popen) -> None:
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def terminate_children() -> None:
    """Stop every stage process still streaming (the worker threads then return)."""
    for p in list(CHILDREN):
        _end(p)
