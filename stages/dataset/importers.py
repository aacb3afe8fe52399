"""Bring-your-own data: WIDER FACE (RetinaFace labels) and logynthetic folders.

* ``wider``: ``root`` is a folder holding ``label.txt`` (or the file itself);
  image paths in it are relative to ``<that folder>/images`` when that exists,
  else to the folder (the layout of the RetinaFace ``retinaface_gt`` release).
* ``logynthetic``: ``root`` holds ``<stem>.json`` files, each next to its image
  ``<stem>.png|jpg|...`` (searched recursively).  JSON files whose stem ends in
  a variant suffix (``_1``, ``_2``, ``_0_noisy``, ``_1_noisy``) are ignored:
  only clean images are imported, the variants are re-made by this stage.

Checking happens in two steps: :func:`check_sample` (main process; label
lines, file presence, image header size, boxes/landmarks inside the image)
and :func:`load_image` (workers; full decode).  Both raise
:class:`~stages.dataset.labels.BadSample` naming the file and line.
Accepted images are letterboxed to the output size with :func:`letterbox`.
"""
from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from stages.dataset.labels import BadSample, RawSample, check_faces, read_logynthetic_json, read_wider

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
VARIANT_STEM = re.compile(r"_(1|2|0_noisy|1_noisy)$")


def find_samples(source: str, root: str | Path) -> list[RawSample]:
    """Every sample the labels under ``root`` name, in file order (not yet checked)."""
    root = Path(root)
    if source == "wider":
        label = root if root.is_file() else root / "label.txt"
        if not label.is_file():
            raise BadSample(f"{label}: WIDER label file not found (dataset.root should hold label.txt)")
        image_dir = label.parent / "images" if (label.parent / "images").is_dir() else label.parent
        return confine(read_wider(label, image_dir), label.parent)
    if source == "logynthetic":
        if not root.is_dir():
            raise BadSample(f"{root}: not a folder (dataset.root should hold <stem>.json + image pairs)")
        out = []
        for js in sorted(root.rglob("*.json")):
            if VARIANT_STEM.search(js.stem):
                continue
            image = next((js.with_suffix(e) for e in IMAGE_EXTS if js.with_suffix(e).is_file()),
                         js.with_suffix(".png"))
            s = RawSample(image, image.name, f"{js}:1")
            try:
                s.faces = read_logynthetic_json(js)
            except BadSample as e:
                s.error = str(e)
            if not image.is_file():
                s.error = s.error or f"{js}:1: no image {js.stem}.<{'|'.join(e[1:] for e in IMAGE_EXTS)}> next to it"
            out.append(s)
        return confine(out, root)
    raise ValueError(f"unknown importer source {source!r}")


def confine(samples: list[RawSample], root: Path) -> list[RawSample]:
    """Mark every sample whose image resolves outside ``root`` (``../``, an absolute path, a link
    pointing out) as bad, naming the label file and line: no file outside the dataset is opened."""
    top = Path(root).resolve()
    for s in samples:
        real = Path(s.image).resolve()
        if not real.is_relative_to(top):
            s.error = s.error or f"{s.where}: image path {s.name!r} leaves the dataset root {root} (resolves to {real})"
            s.image = top / ".refused-outside-root"   # nothing downstream may open the outside path
    return samples


def check_sample(raw: RawSample, tol: float) -> tuple[int, int, list[dict]]:
    """(width, height, checked faces) from labels and the image header; raises BadSample."""
    if raw.error:
        raise BadSample(raw.error)
    if not raw.image.is_file():
        raise BadSample(f"{raw.where}: label names {raw.name} but {raw.image} does not exist")
    try:
        with Image.open(raw.image) as im:
            width, height = im.size
    except Exception as e:  # noqa: BLE001 - PIL raises many kinds for broken files
        raise BadSample(f"{raw.where}: cannot read image {raw.image} (corrupt or not an image: "
                        f"{type(e).__name__})") from None
    return width, height, check_faces(raw.faces, width, height, raw.name, tol)


def load_image(path: str | Path, size: tuple[int, int], where: str) -> np.ndarray:
    """Decode fully (BGR, EXIF orientation ignored like the labels); raises BadSample."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if img is None:
        raise BadSample(f"{where}: cannot decode image {path} (corrupt?)")
    if (img.shape[1], img.shape[0]) != tuple(size):
        raise BadSample(f"{where}: image {path} decodes to {img.shape[1]}x{img.shape[0]}, "
                        f"header said {size[0]}x{size[1]}")
    return img


def letterbox(img: np.ndarray, faces: list[dict], out_h: int, out_w: int,
              min_face: float) -> tuple[np.ndarray, list[dict], int]:
    """Resize keeping aspect, pad (black) to ``out_h x out_w``; transform labels.

    Returns (image, faces, number of faces dropped for being under ``min_face`` px high)."""
    h, w = img.shape[:2]
    k = min(out_h / h, out_w / w)
    nh, nw = max(1, round(h * k)), max(1, round(w * k))
    interp = cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR
    small = cv2.resize(img, (nw, nh), interpolation=interp)
    py, px = (out_h - nh) // 2, (out_w - nw) // 2
    out = np.zeros((out_h, out_w, 3), np.uint8)
    out[py:py + nh, px:px + nw] = small
    kept, dropped = [], 0
    for f in faces:
        x1, y1, x2, y2 = f["box"]
        box = [x1 * k + px, y1 * k + py, x2 * k + px, y2 * k + py]
        if box[3] - box[1] < min_face:
            dropped += 1
            continue
        lms = [[x * k + px, y * k + py] for x, y in f["landmarks"]] if f.get("landmarks") else None
        kept.append({"box": [round(v, 2) for v in box],
                     "landmarks": [[round(x, 2), round(y, 2)] for x, y in lms] if lms else None})
    return out, kept, dropped
