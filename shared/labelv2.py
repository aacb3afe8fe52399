"""The ``labelv2`` face-label format: one reader and one writer for every stage.

Written by the dataset stage (``<split>/labels.txt``), read by the train stage's mmdet
dataset and by tests; the format is libfacedetection.train's::

    # images/<id>_0.png <width> <height>
    x1 y1 x2 y2 lx1 ly1 1.0 lx2 ly2 1.0 lx3 ly3 1.0 lx4 ly4 1.0 lx5 ly5 1.0

Landmarks absent: ``-1 -1 -1`` for each of the five points, or the line stops after the box.
A face is ``{"box": [x1, y1, x2, y2], "landmarks": [[x, y] * 5] or None}`` in pixels.
Every problem raises :class:`BadSample` whose message starts with ``file:line``.
"""
from __future__ import annotations

import math
from pathlib import Path

from shared.errors import ExpectedError


class BadSample(ExpectedError, ValueError):
    """A sample that cannot be used; ``str()`` is ``where: what``."""


def fmt(v: float) -> str:
    s = f"{v:.2f}".rstrip("0").rstrip(".")
    return "0" if s == "-0" else s


def format_face(face: dict) -> str:
    vals = [fmt(v) for v in face["box"]]
    if face.get("landmarks"):
        for x, y in face["landmarks"]:
            vals += [fmt(x), fmt(y), "1.0"]
    else:
        vals += ["-1", "-1", "-1"] * 5
    return " ".join(vals)


def write_labelv2(path: Path, records: list[dict]) -> None:
    """One ``#`` line per record (its ``_0`` image), then one line per face."""
    lines = []
    for r in records:
        lines.append(f"# {r['images']['0']} {r['width']} {r['height']}")
        lines += [format_face(f) for f in r["faces"]]
    Path(path).write_text("\n".join(lines) + ("\n" if lines else ""))


def floats(text: str, where: str) -> list[float]:
    """The numbers of one label line; ``BadSample`` naming ``where`` on anything else."""
    try:
        vals = [float(t) for t in text.split()]
    except ValueError:
        raise BadSample(f"{where}: expected numbers, got {text.strip()!r}") from None
    if not all(math.isfinite(v) for v in vals):
        raise BadSample(f"{where}: non-finite number in {text.strip()!r}")
    return vals


def landmarks(vals: list[float], where: str) -> list[list[float]] | None:
    """5 x (x, y, flag) -> [[x, y] * 5], or None when all are -1 (absent)."""
    pts = [vals[i:i + 2] for i in range(0, 15, 3)]
    if all(x < 0 and y < 0 for x, y in pts):
        return None
    if any(x < 0 or y < 0 for x, y in pts):
        raise BadSample(f"{where}: some landmarks are -1 (absent) and some not: {pts}")
    return pts


def label_lines(path: Path):
    """``(where, line)`` for every non-blank line of a label file, ``where`` = "file:line", stripped."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise BadSample(f"{path}: cannot read label file ({e.strerror})") from None
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            yield f"{path}:{n}", line.strip()


def read_labelv2(path: Path) -> list[dict]:
    """Parse a labelv2 file into ``[{"image", "width", "height", "faces", "where"}]``."""
    out: list[dict] = []
    for where, line in label_lines(path):
        if line.startswith("#"):
            parts = line[1:].split()
            if len(parts) != 3 or not (parts[1].isdigit() and parts[2].isdigit()):
                raise BadSample(f"{where}: expected '# <image> <width> <height>', got {line!r}")
            out.append({"image": parts[0], "width": int(parts[1]), "height": int(parts[2]),
                        "faces": [], "where": where})
            continue
        if not out:
            raise BadSample(f"{where}: face line before any '# <image>' line")
        vals = floats(line, where)
        if len(vals) not in (4, 19):
            raise BadSample(f"{where}: expected 19 values (box + 5 landmarks x y visibility) "
                            f"or 4 (box only), got {len(vals)}")
        if not (vals[2] > vals[0] and vals[3] > vals[1]):
            raise BadSample(f"{where}: box {vals[:4]} has no area")
        lms = landmarks(vals[4:], where) if len(vals) == 19 else None
        out[-1]["faces"].append({"box": vals[:4], "landmarks": lms})
    return out
