"""Numpy decode of YuNet's 12 outputs, identical to OpenCV's FaceDetectorYN post-processing.

Mirrors ``FaceDetectorYNImpl::postProcess`` (opencv modules/objdetect/src/face_detect.cpp):

* per stride s in (8, 16, 32), cell idx = row * cols + col on the 32-padded input grid;
* score = sqrt(clip(cls, 0, 1) * clip(obj, 0, 1)); cells with score < score_thr are dropped;
* cx = (col + bbox[0]) * s, cy = (row + bbox[1]) * s, w = exp(bbox[2]) * s,
  h = exp(bbox[3]) * s, x1 = cx - w/2, y1 = cy - h/2;
* landmark k: ((kps[2k] + col) * s, (kps[2k+1] + row) * s), k = 0..4 in OpenCV's order
  right eye, left eye, nose tip, right mouth corner, left mouth corner (subject's right, i.e.
  the eye on the image left: the order of the RetinaFace/WIDER labels the model is trained on);
* NMS as ``cv2.dnn.NMSBoxes`` on the boxes truncated to int (x1, y1, w, h): candidates with
  score > score_thr, stable-sorted by score, the first ``top_k`` kept as candidates, greedy
  suppression of IoU > nms_iou.  With a single candidate OpenCV skips NMS; so does this.

The result per image is float32 [K, 15]: x1, y1, x2, y2, 5 x (x, y), score (``box="xyxy"``,
default) or OpenCV's own x1, y1, w, h, ..., score (``box="xywh"``), sorted by score.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

STRIDES = (8, 16, 32)


def _np(t) -> np.ndarray:
    if hasattr(t, "detach"):  # torch tensor, without importing torch
        t = t.detach().cpu().numpy()
    return np.asarray(t, dtype=np.float32)


def _size(input_size) -> tuple[int, int]:
    """(width, height) as cv2 takes it; an int means a square input."""
    if np.isscalar(input_size):
        return int(input_size), int(input_size)
    w, h = input_size
    return int(w), int(h)


def _rect_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of one rect a = (x, y, w, h) with rects b [M, 4], as cv::Rect (area = w * h)."""
    iw = np.minimum(a[0] + a[2], b[:, 0] + b[:, 2]) - np.maximum(a[0], b[:, 0])
    ih = np.minimum(a[1] + a[3], b[:, 1] + b[:, 3]) - np.maximum(a[1], b[:, 1])
    inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
    areas = a[2] * a[3] + b[:, 2] * b[:, 3]
    # cv::jaccardDistance: two empty rects count as identical (IoU 1)
    return np.where(areas > 0, inter / np.maximum(areas - inter, 1e-12), 1.0)


def nms_boxes(rects: np.ndarray, scores: np.ndarray, score_thr: float, nms_iou: float,
              top_k: int = 0) -> np.ndarray:
    """Indices kept by cv2.dnn.NMSBoxes(rects, scores, score_thr, nms_iou, 1.0, top_k)."""
    rects = np.asarray(rects, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float32)
    cand = np.nonzero(scores > score_thr)[0]
    cand = cand[np.argsort(-scores[cand], kind="stable")]
    if top_k > 0:
        cand = cand[:top_k]
    keep: list[int] = []
    for i in cand:
        if not keep or np.all(_rect_iou(rects[i], rects[keep]) <= nms_iou):
            keep.append(int(i))
    return np.asarray(keep, dtype=np.int64)


def decode_image(outputs: Sequence, input_size, score_thr: float = 0.02,
                 nms_iou: float = 0.45, top_k: int = 5000, box: str = "xyxy",
                 batch_index: int = 0) -> np.ndarray:
    """Decode one image of a batch; see the module docstring."""
    w_in, h_in = _size(input_size)
    pad_w, pad_h = ((w_in - 1) // 32 + 1) * 32, ((h_in - 1) // 32 + 1) * 32
    n_lv = len(STRIDES)
    faces = []
    for i, s in enumerate(STRIDES):
        cols, rows = pad_w // s, pad_h // s
        cls, obj, bbox, kps = (_np(outputs[i + n_lv * j])[batch_index].reshape(rows * cols, -1)
                               for j in range(4))
        score = np.sqrt(np.clip(cls[:, 0], 0, 1) * np.clip(obj[:, 0], 0, 1))
        idx = np.nonzero(~(score < score_thr))[0]
        col = (idx % cols).astype(np.float32)
        row = (idx // cols).astype(np.float32)
        b = bbox[idx]
        cx = (col + b[:, 0]) * np.float32(s)
        cy = (row + b[:, 1]) * np.float32(s)
        w = np.exp(b[:, 2]) * np.float32(s)
        h = np.exp(b[:, 3]) * np.float32(s)
        k = kps[idx].reshape(-1, 5, 2)
        lm = np.stack([(k[:, :, 0] + col[:, None]) * s, (k[:, :, 1] + row[:, None]) * s], -1)
        faces.append(np.concatenate([np.stack([cx - w / 2, cy - h / 2, w, h], 1),
                                     lm.reshape(-1, 10), score[idx, None]], 1))
    faces = np.concatenate(faces, 0).astype(np.float32) if faces else np.zeros((0, 15), np.float32)
    # an untrained or badly quantized head can overflow exp(): such boxes are dropped, not drawn
    faces = faces[np.isfinite(faces).all(axis=1)]
    if len(faces) > 1:
        # OpenCV: Rect2i(int(x1), int(y1), int(w), int(h)) -> truncation toward zero
        rects = np.trunc(faces[:, :4]).astype(np.float64)
        faces = faces[nms_boxes(rects, faces[:, 14], score_thr, nms_iou, top_k)]
    if box == "xyxy":
        faces = faces.copy()
        faces[:, 2] += faces[:, 0]
        faces[:, 3] += faces[:, 1]
    elif box != "xywh":
        raise ValueError(f"box must be 'xyxy' or 'xywh', got {box!r}")
    return faces.reshape(-1, 15).astype(np.float32)


def decode(outputs: Sequence, input_size, score_thr: float = 0.02, nms_iou: float = 0.45,
           top_k: int = 5000, box: str = "xyxy") -> list[np.ndarray]:
    """Decode a batch of YuNet outputs (12 arrays/tensors, ``OUTPUT_NAMES`` order).

    Args:
        outputs: cls_8, cls_16, cls_32, obj_*, bbox_*, kps_*; each [N, H_s*W_s, C] with
            cls/obj already sigmoid-ed (``YuNet.forward`` / the ONNX model).
        input_size: (width, height) of the network input as in cv2, or an int (square).
        score_thr, nms_iou, top_k: as in ``cv2.FaceDetectorYN.create``.
        box: "xyxy" (default) or OpenCV's "xywh" for the first 4 columns.
    Returns:
        one float32 array [K, 15] per image: box (4), landmarks (10), score.
    """
    n = _np(outputs[0]).shape[0]
    return [decode_image(outputs, input_size, score_thr, nms_iou, top_k, box, b) for b in range(n)]
