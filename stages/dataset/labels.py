"""Face label formats: reading, writing and checking.

A face is ``{"box": [x1, y1, x2, y2], "landmarks": [[x, y] * 5] or None}`` in
pixels, ``x2 = x1 + width``.  Landmark order follows RetinaFace / WIDER FACE
(as seen in the image, so "left" is image-left):

    0 eye on the image-left (the person's right eye)
    1 eye on the image-right (the person's left eye)
    2 nose tip
    3 mouth corner on the image-left
    4 mouth corner on the image-right

Formats:

* ``labelv2`` (written; read by libfacedetection.train's RetinaFaceDataset)::

      # images/<id>_0.png <width> <height>
      x1 y1 x2 y2 lx1 ly1 1.0 lx2 ly2 1.0 lx3 ly3 1.0 lx4 ly4 1.0 lx5 ly5 1.0

  landmarks absent: ``-1 -1 -1`` for each of the five points.
* WIDER FACE RetinaFace ``label.txt`` (read)::

      # <relative image path>
      x y w h l0x l0y 0.0 ... l4x l4y 0.0 score        (landmarks -1 when absent)

* logynthetic JSON (read), one file per image::

      {"person_0": {"face_bbox_coordinates": {"2d_corners": [[x, y], ...]},
                    "landmarks_coordinates": {"2d": [[x, y] * 5]}}, ...}

Every problem is a :class:`BadSample` whose message starts with ``file:line``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from shared.labelv2 import BadSample, floats, fmt, label_lines, landmarks


@dataclass
class RawSample:
    """An image named by a label file, before its image has been looked at."""
    image: Path                      # absolute path of the image file
    name: str                        # the path as the label file wrote it
    where: str                       # "label-file:line" of the image's entry
    faces: list[dict] = field(default_factory=list)   # each with a "where" key too
    error: str | None = None         # set when the label lines themselves are bad


def read_wider(path: Path, image_dir: Path) -> list[RawSample]:
    """Parse a WIDER FACE RetinaFace ``label.txt``; images are under ``image_dir``."""
    samples: list[RawSample] = []
    for where, line in label_lines(path):
        if line.startswith("#"):
            name = line[1:].strip()
            if not name:
                raise BadSample(f"{where}: '#' line without an image path")
            samples.append(RawSample(image_dir / name, name, where))
            continue
        if not samples:
            raise BadSample(f"{where}: face line before any '# <image>' line")
        s = samples[-1]
        if s.error:
            continue
        try:
            vals = floats(line, where)
            if len(vals) not in (4, 5, 19, 20):
                raise BadSample(f"{where}: expected x y w h + 5 landmarks (x y flag) + score = 20 values "
                                f"(or 4 without landmarks), got {len(vals)}: wrong landmark count")
            x, y, w, h = vals[:4]
            lms = landmarks(vals[4:19], where) if len(vals) >= 19 else None
            s.faces.append({"box": [x, y, x + w, y + h], "landmarks": lms, "where": where})
        except BadSample as e:
            s.error = str(e)
    return samples


def _line_of(text: str, key: str) -> int:
    i = text.find(f'"{key}"')
    return text.count("\n", 0, i) + 1 if i >= 0 else 1


def read_logynthetic_json(path: Path) -> list[dict]:
    """Faces of one logynthetic JSON file (each face with a ``where``)."""
    path = Path(path)
    try:
        text = path.read_text()
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise BadSample(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None
    except OSError as e:
        raise BadSample(f"{path}: cannot read ({e.strerror})") from None
    if not isinstance(data, dict):
        raise BadSample(f"{path}:1: expected a mapping of person_<n> entries")
    faces = []
    for key, person in data.items():
        if not str(key).startswith("person"):
            continue
        where = f"{path}:{_line_of(text, key)}"
        try:
            corners = person["face_bbox_coordinates"]["2d_corners"]
        except (KeyError, TypeError):
            raise BadSample(f"{where}: {key}: missing face_bbox_coordinates.2d_corners") from None
        if not isinstance(corners, list) or len(corners) not in (2, 4) \
                or not all(isinstance(c, list) and len(c) == 2 for c in corners):
            raise BadSample(f"{where}: {key}: 2d_corners must be 2 or 4 [x, y] points, got {corners!r}")
        xs, ys = [float(c[0]) for c in corners], [float(c[1]) for c in corners]
        lm = (person.get("landmarks_coordinates") or {}).get("2d")
        if lm is not None:
            if not isinstance(lm, list) or len(lm) != 5 or not all(isinstance(p, list) and len(p) == 2 for p in lm):
                n = len(lm) if isinstance(lm, list) else type(lm).__name__
                raise BadSample(f"{where}: {key}: landmarks_coordinates.2d needs 5 [x, y] points, got {n}: "
                                "wrong landmark count")
            lm = [[float(x), float(y)] for x, y in lm]
        faces.append({"box": [min(xs), min(ys), max(xs), max(ys)], "landmarks": lm, "where": where})
    return faces


def check_faces(faces: list[dict], width: int, height: int, image_name: str, tol: float) -> list[dict]:
    """Validate faces against the image size; clip within ``tol`` px; drop ``where``."""
    out = []
    for f in faces:
        x1, y1, x2, y2 = f["box"]
        where = f.get("where", image_name)
        shown = "[" + ", ".join(fmt(v) for v in f["box"]) + "]"
        if not (x2 > x1 and y2 > y1):
            raise BadSample(f"{where}: box {shown} has no area (of {image_name})")
        if x1 < -tol or y1 < -tol or x2 > width + tol or y2 > height + tol:
            raise BadSample(f"{where}: box {shown} lies outside 0..{width} x 0..{height} of {image_name}")
        box = [max(0.0, x1), max(0.0, y1), min(float(width), x2), min(float(height), y2)]
        lms = f.get("landmarks")
        if lms:
            if any(x < -tol or y < -tol or x > width + tol or y > height + tol for x, y in lms):
                raise BadSample(f"{where}: landmarks {lms} lie outside 0..{width} x 0..{height} of {image_name}")
            lms = [[min(max(x, 0.0), float(width)), min(max(y, 0.0), float(height))] for x, y in lms]
        out.append({"box": box, "landmarks": lms})
    return out
