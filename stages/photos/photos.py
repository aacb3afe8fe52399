"""Real photographs that ship with installed packages, fitted to the network input, and their reference faces.

* Photos: ``skimage.data`` files that the scikit-image wheel itself carries (its ``legacy_datasets``
  list and present in the package folder); anything skimage would fetch with pooch is refused.
  ``lfw_mosaic`` tiles the first N face crops of the bundled ``lfw_subset.npy`` (Labeled Faces in
  the Wild, 25x25 grey) into one picture.
* Reference faces: facenet-pytorch's pretrained MTCNN (P/R/O-Net weights inside its wheel), run
  on the photo at its own resolution; boxes are then mapped into the letterboxed network input.
* Letterbox as the dataset importers do: keep the aspect ratio, centre, pad black.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from shared.errors import ExpectedError

LFW = "lfw_mosaic"


class PhotoError(ExpectedError, RuntimeError):
    """A photo that is not in the installed wheel, or a reference labeller that cannot load offline."""


@dataclass
class Photo:
    name: str
    rgb: np.ndarray              # uint8 HxWx3, RGB, as shipped
    source: str
    ref: np.ndarray = field(default_factory=lambda: np.zeros((0, 5), np.float32))  # x1 y1 x2 y2 prob (photo px)


def bundled_dir() -> str:
    import skimage.data
    return os.path.dirname(skimage.data.__file__)


def bundled_files() -> list[str]:
    """Files of skimage.data that the installed wheel carries (no download)."""
    from skimage.data._registry import legacy_datasets
    d = bundled_dir()
    return [f for f in legacy_datasets if os.path.isfile(os.path.join(d, f))]


def _rgb(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.dtype != np.uint8:
        img = (np.clip(img.astype(np.float64), 0, 1) * 255 + 0.5).astype(np.uint8) if img.max() <= 1 else \
            np.clip(img, 0, 255).astype(np.uint8)
    if img.ndim == 2:
        img = np.stack([img] * 3, -1)
    return np.ascontiguousarray(img[..., :3])


def lfw_mosaic(n: int, tile: int) -> np.ndarray:
    """The first ``n`` faces of skimage's lfw_subset (its first 100 entries are faces), ``tile`` px each,
    on a square grid (black where the grid is not full)."""
    import cv2
    faces = np.load(os.path.join(bundled_dir(), "lfw_subset.npy"))[:min(n, 100)]
    side = int(np.ceil(np.sqrt(len(faces))))
    out = np.zeros((side * tile, side * tile), np.uint8)
    for i, f in enumerate(faces):
        r, c = divmod(i, side)
        out[r * tile:(r + 1) * tile, c * tile:(c + 1) * tile] = cv2.resize(
            (np.clip(f, 0, 1) * 255 + 0.5).astype(np.uint8), (tile, tile), interpolation=cv2.INTER_CUBIC)
    return _rgb(out)


def load_photos(names: list[str], lfw_faces: int = 16, lfw_tile: int = 64) -> list[Photo]:
    import skimage
    import skimage.io
    have = bundled_files()
    out = []
    for name in names:
        if name == LFW:
            if "lfw_subset.npy" not in have:
                raise PhotoError("lfw_mosaic: lfw_subset.npy is not in the installed scikit-image wheel")
            out.append(Photo(name, lfw_mosaic(lfw_faces, lfw_tile),
                             f"skimage.data.lfw_subset()[:{lfw_faces}] tiled {lfw_tile} px (scikit-image {skimage.__version__})"))
            continue
        files = [f for f in have if os.path.splitext(f)[0] == name and f.endswith((".png", ".jpg"))]
        if not files:
            photos = sorted(os.path.splitext(f)[0] for f in have if f.endswith((".png", ".jpg")))
            raise PhotoError(f"photos.images: '{name}' is not a photo inside the installed scikit-image "
                             f"{skimage.__version__} wheel (others are fetched from the network); bundled: "
                             f"{', '.join(photos)}, or {LFW}")
        img = skimage.io.imread(os.path.join(bundled_dir(), files[0]))
        out.append(Photo(name, _rgb(img), f"skimage.data.{name}() ({files[0]}, bundled in scikit-image {skimage.__version__})"))
    return out


# ----------------------------------------------------------------- reference labeller
def load_mtcnn(threads: int = 0):
    """facenet-pytorch's MTCNN with the weights of its wheel, on the CPU (nothing downloaded)."""
    try:
        import facenet_pytorch
        from facenet_pytorch import MTCNN
    except ImportError as e:
        raise PhotoError(f"needs facenet-pytorch ({e}); the photos image installs it with --no-deps "
                         "(docker/photos/requirements-nodeps.txt): invoke images --stage photos") from None
    wdir = os.path.join(os.path.dirname(facenet_pytorch.__file__), "data")
    missing = [f for f in ("pnet.pt", "rnet.pt", "onet.pt") if not os.path.isfile(os.path.join(wdir, f))]
    if missing:
        raise PhotoError(f"facenet-pytorch at {wdir} lacks its bundled MTCNN weights {missing}")
    import torch
    if threads:
        torch.set_num_threads(threads)
    return MTCNN(keep_all=True, device="cpu").eval()


def mtcnn_faces(mtcnn, rgb: np.ndarray) -> np.ndarray:
    """[K, 5] float32: x1, y1, x2, y2, probability (photo pixels), most probable first."""
    import torch
    with torch.no_grad():
        try:
            boxes, probs = mtcnn.detect(rgb)
        except ValueError:      # facenet-pytorch 2.6 raises on images too small for a single P-Net scale
            boxes, probs = None, None
    if boxes is None:
        return np.zeros((0, 5), np.float32)
    out = np.concatenate([np.asarray(boxes, np.float64).reshape(-1, 4),
                          np.asarray(probs, np.float64).reshape(-1, 1)], 1).astype(np.float32)
    return out[np.argsort(-out[:, 4], kind="stable")]


# ----------------------------------------------------------------- fitting to the network input
@dataclass(frozen=True)
class Fit:
    k: float        # scale
    px: int         # left pad
    py: int         # top pad
    h: int
    w: int

    def boxes(self, b: np.ndarray) -> np.ndarray:
        b = np.asarray(b, np.float32).reshape(-1, 4)
        return b * np.float32(self.k) + np.array([self.px, self.py, self.px, self.py], np.float32)


def letterbox(img: np.ndarray, out_h: int, out_w: int) -> tuple[np.ndarray, Fit]:
    """Resize keeping aspect, centre, pad black to out_h x out_w (as stages/dataset/importers.letterbox)."""
    import cv2
    h, w = img.shape[:2]
    k = min(out_h / h, out_w / w)
    nh, nw = max(1, round(h * k)), max(1, round(w * k))
    small = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR)
    py, px = (out_h - nh) // 2, (out_w - nw) // 2
    out = np.zeros((out_h, out_w, 3), np.uint8)
    out[py:py + nh, px:px + nw] = small
    return out, Fit(k, px, py, out_h, out_w)


def reference_boxes(photo: Photo, fit: Fit, min_prob: float, min_face_px: float) -> np.ndarray:
    """Reference faces at the network input: [M, 4] boxes, MTCNN prob >= min_prob and height >= min_face_px."""
    r = photo.ref[photo.ref[:, 4] >= min_prob] if len(photo.ref) else photo.ref
    b = fit.boxes(r[:, :4]) if len(r) else np.zeros((0, 4), np.float32)
    b[:, [0, 2]] = np.clip(b[:, [0, 2]], 0, fit.w)
    b[:, [1, 3]] = np.clip(b[:, [1, 3]], 0, fit.h)
    return b[(b[:, 3] - b[:, 1]) >= min_face_px]
