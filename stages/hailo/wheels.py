"""Find the Hailo DFC / HailoRT wheels, check that they are a compatible pair, fetch them.

Runs twice: at image build (``python wheels.py fetch DIR``, stdlib + PyYAML only, before the
rest of the stage is copied in) and inside the stage (``check_installed()``, for the manifest).

The wheels are login-gated downloads from Hailo's Developer Zone, on no public registry; the
user drops them in ``volumes/wheelhouse/`` and the build serves that folder to pip as
find-links (``PIP_FIND_LINKS``: http URLs or folders).  File names carry the versions::

    hailo_dataflow_compiler-3.33.0-py3-none-linux_x86_64.whl
    hailort-4.23.0-cp310-cp310-linux_x86_64.whl

Compatible pairs are data: ``sdk_pairs.yaml`` beside this file.  Both wheels present but not a
listed pair -> :class:`WheelError` (exit 1 at build) naming both files and the right partner.
No wheel at all -> the build goes on and says the SDK is absent.
"""
from __future__ import annotations

import html.parser
import os
import re
import shutil
import sys
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

PAIRS_FILE = Path(__file__).with_name("sdk_pairs.yaml")
PACKAGES = {"dfc": "hailo_dataflow_compiler", "hailort": "hailort"}
_WHEEL = re.compile(r"^(?P<name>[A-Za-z0-9_.]+?)-(?P<version>\d+(?:\.\d+)*)(?:-\d[^-]*)?-(?P<py>[^-]+)-(?P<abi>[^-]+)-"
                    r"(?P<plat>[^-]+)\.whl$")


class WheelError(RuntimeError):
    pass


@dataclass(frozen=True)
class Wheel:
    kind: str        # dfc | hailort
    file: str        # file name
    url: str         # where to fetch it (URL or path)
    version: str     # e.g. 3.33.0
    python: str      # wheel python tag, e.g. py3 or cp310

    @property
    def minor(self) -> str:
        return ".".join(self.version.split(".")[:2])


def parse(file: str, url: str = "") -> Wheel | None:
    """A Wheel for a DFC/HailoRT wheel file name, None for any other file."""
    m = _WHEEL.match(Path(file).name)
    if not m:
        return None
    name = m["name"].lower().replace("-", "_")
    kind = next((k for k, pkg in PACKAGES.items() if name == pkg), None)
    return Wheel(kind, Path(file).name, url or file, m["version"], m["py"]) if kind else None


def load_pairs(path: Path = PAIRS_FILE) -> dict:
    data = yaml.safe_load(Path(path).read_text())
    try:
        pairs = [(str(p["dfc"]), str(p["hailort"])) for p in data["pairs"]]
        default = (str(data["default"]["dfc"]), str(data["default"]["hailort"]))
    except (KeyError, TypeError) as e:
        raise WheelError(f"{path}: needs `default: {{dfc, hailort}}` and `pairs: [{{dfc, hailort}}, ...]` ({e})") from None
    return {"pairs": pairs, "default": default}


class _Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.hrefs += [v for k, v in attrs if k == "href" and v]


def list_source(src: str) -> list[Wheel]:
    """Hailo wheels in one find-links source: a folder, a file:// URL or an http(s) listing."""
    if src.startswith("file://"):
        src = src[len("file://"):]
    if "://" not in src:
        p = Path(src)
        return [w for f in sorted(p.glob("*.whl")) if (w := parse(f.name, str(f)))] if p.is_dir() else []
    try:
        with urllib.request.urlopen(src, timeout=20) as r:  # noqa: S310 - the build's own package server
            page = r.read().decode("utf-8", "replace")
    except OSError:
        return []
    links = _Links()
    links.feed(page)
    base = src if src.endswith("/") else src + "/"
    out = []
    for href in links.hrefs:
        name = urllib.request.url2pathname(href.rsplit("/", 1)[-1].split("#")[0])
        if (w := parse(name, urllib.parse.urljoin(base, href))) is not None:
            out.append(w)
    return out


def find(sources: list[str]) -> dict[str, Wheel]:
    """The newest DFC and HailoRT wheel over all sources: {"dfc": Wheel, "hailort": Wheel} (either may miss)."""
    found: dict[str, Wheel] = {}
    key = lambda w: tuple(int(x) for x in w.version.split("."))  # noqa: E731
    for src in sources:
        for w in list_source(src):
            if w.kind not in found or key(w) > key(found[w.kind]):
                found[w.kind] = w
    return found


def check(found: dict[str, Wheel], python: tuple[int, int] = sys.version_info[:2], pairs=None) -> str:
    """One line saying what is there; WheelError when the pair or the interpreter does not fit."""
    pairs = pairs or load_pairs()
    dfc, rt = found.get("dfc"), found.get("hailort")
    if not dfc and not rt:
        d = pairs["default"]
        return (f"Hailo SDK absent: no hailo_dataflow_compiler/hailort wheel in the wheelhouse "
                f"(get DFC {d[0]} + HailoRT {d[1]} from Hailo's Developer Zone into volumes/wheelhouse/)")
    for w in (dfc, rt):
        if w and w.python.startswith("cp") and w.python != f"cp{python[0]}{python[1]}":
            raise WheelError(f"{w.file} is built for Python {w.python[2]}.{w.python[3:]} but this image has "
                             f"Python {python[0]}.{python[1]}: build the hailo image on Ubuntu 22.04 "
                             f"(JMMC_OS_HEAVY=ubuntu:22.04) or get the {PACKAGES[w.kind]} wheel for cp{python[0]}{python[1]}")
    if dfc and rt and (dfc.minor, rt.minor) not in pairs["pairs"]:
        want = [h for d, h in pairs["pairs"] if d == dfc.minor]
        hint = f"DFC {dfc.minor} needs HailoRT {want[0]}" if want else f"DFC {dfc.minor} is not in {PAIRS_FILE.name}"
        raise WheelError(f"mismatched Hailo wheels: {dfc.file} with {rt.file} ({hint}; a HEF only runs on the "
                         f"HailoRT it was compiled for). Compatible pairs: "
                         + ", ".join(f"DFC {d}/HailoRT {h}" for d, h in pairs["pairs"]))
    parts = [f"{w.kind} {w.version} ({w.file})" for w in (dfc, rt) if w]
    missing = [k for k, w in (("Dataflow Compiler (no parse/optimize/compile)", dfc),
                              ("HailoRT (no on-device runtime)", rt)) if not w]
    return "Hailo SDK wheels: " + ", ".join(parts) + (f"; missing: {', '.join(missing)}" if missing else "")


def fetch(found: dict[str, Wheel], dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for w in found.values():
        target = dest / w.file
        if "://" in w.url:
            with urllib.request.urlopen(w.url, timeout=600) as r, open(target, "wb") as fh:  # noqa: S310
                shutil.copyfileobj(r, fh)
        else:
            shutil.copyfile(w.url, target)
        out.append(target)
    return out


def check_installed(pairs=None) -> dict:
    """Versions of the installed SDK packages and whether they pair (for the manifest)."""
    from importlib import metadata
    pairs = pairs or load_pairs()
    got = {}
    for kind, dist in (("dfc", "hailo_dataflow_compiler"), ("hailort", "hailort")):
        try:
            got[kind] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            got[kind] = None
    minor = {k: ".".join(v.split(".")[:2]) if v else None for k, v in got.items()}
    ok = None if None in minor.values() else (minor["dfc"], minor["hailort"]) in pairs["pairs"]
    return {"dfc": got["dfc"], "hailort": got["hailort"], "pair_ok": ok}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("fetch", "check"):
        print("usage: python wheels.py fetch DEST | check DEST  (sources: $PIP_FIND_LINKS)", file=sys.stderr)
        return 2
    sources = os.environ.get("PIP_FIND_LINKS", "").split() + [argv[1]] * (argv[0] == "check")
    found = find(sources)
    try:
        print("hailo:", check(found))
    except WheelError as e:
        print(f"hailo: error: {e}", file=sys.stderr)
        return 1
    if argv[0] == "fetch" and found:
        for p in fetch(found, Path(argv[1])):
            print(f"hailo: fetched {p.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
