"""The YuNet training loss, usable with or without mmdet's runner (train, prune, QAT).

One implementation of the loss of libfacedetection.train's ``YuNet_Head`` (config
``yunet_n.py``), written against the 12 flat outputs of ``YuNet.forward_train``
(``shared.models.yunet``: cls_8..32, obj_8..32, bbox_8..32, kps_8..32, each
[N, H_s*W_s, C], cls/obj as logits):

* priors: mmdet ``MlvlPointGenerator(strides, offset=0)`` -> (col*s, row*s, s, s), the
  same row-major cells as the outputs;
* decode (as OpenCV / ``yunet_decode.py``): centre = prior + bbox[:2]*s,
  size = exp(bbox[2:])*s; landmark k = prior + kps[2k:2k+2]*s;
* assignment: mmdet ``SimOTAAssigner(center_radius=2.5)`` on sigmoid(cls)*sigmoid(obj),
  with the priors shifted by half a stride (cell centres) and the decoded boxes, per image,
  without gradient;
* ``loss_cls``: sigmoid BCE on the positives, target = IoU of the decoded box with its
  GT (YOLOX / YuNet), summed, / num_pos;
* ``loss_obj``: sigmoid BCE on every prior, target 1 on positives and 0 elsewhere, summed,
  / num_pos;
* ``loss_bbox``: Smooth-EIoU (smooth point 0.1) of decoded positive boxes vs their GT,
  summed, / num_pos;
* ``loss_kps``: smooth-L1 (beta 1/9) of the encoded landmarks ((kps - prior) / s) on the
  positives, landmarks marked absent (-1) weighted 0, / the number of positives with
  landmarks (a positive with only some landmarks counts by the fraction it has);
* each term times its weight (cls 1, bbox 5, obj 1, kps 0.5); ``loss`` is their sum.  yunet_n weights
  the landmarks 0.1, which over its 640 epochs is enough; at this toolchain's budgets (12-24 epochs
  of a few hundred images) 0.1 leaves the landmarks at the mean-shape level (demo test NME 0.51
  against 0.44 for the box-scaled mean shape), 0.5 reaches 0.23 at the same AP
  (docs/decisions.md, "Landmarks").

num_pos is the number of positives in the batch (at least 1; averaged over processes
under torch.distributed, as mmdet's ``reduce_mean``).  Outputs are cast to float32 first,
so the loss may follow an autocast (fp16/bf16) forward.  Everything is differentiable
w.r.t. ``raw_outputs`` (only the assignment is not), so the chain enhancer -> denoiser ->
detector can be fine-tuned through it.

mmdet 2.28.2 has no EIoU loss (it came with mmdet 3), so ``eiou_loss`` here implements the
Smooth-EIoU that libfacedetection.train's ``EIoULoss`` computes (Extended-IoU loss,
https://ieeexplore.ieee.org/document/9429909).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

try:  # mmdet >= 2.18 location
    from mmdet.core.anchor import MlvlPointGenerator
    from mmdet.core.bbox.assigners import SimOTAAssigner
except ImportError as e:  # pragma: no cover - only outside the mm image
    raise ImportError("shared.detector_loss needs mmdet 2.x (the 'mm' image): " + str(e)) from e

N_GROUPS = 4  # cls, obj, bbox, kps


def eiou_loss(pred: torch.Tensor, target: torch.Tensor, smooth_point: float = 0.1,
              eps: float = 1e-7) -> torch.Tensor:
    """Smooth-EIoU per box pair, pred/target [n, 4] xyxy -> [n].

    The extended intersection equals the usual one for overlapping boxes and turns
    negative (by the gap times the extent of the other axis) for separated boxes, so
    disjoint predictions still get a gradient; x = 1 - inter_ext / union, and the loss
    is 0.5 x^2 / sp below the smooth point sp, x - 0.5 sp above.
    """
    lo = torch.minimum(pred[:, :2], target[:, :2])        # top-left of the enclosing box
    i1 = torch.maximum(pred[:, :2], target[:, :2]) - lo   # intersection corners, relative
    i2 = torch.minimum(pred[:, 2:], target[:, 2:]) - lo
    small, big = torch.minimum(i1, i2), torch.maximum(i1, i2)
    inter = (i2[:, 0] * i2[:, 1] + small[:, 0] * small[:, 1]
             - i1[:, 0] * big[:, 1] - big[:, 0] * i1[:, 1])
    area_p = (pred[:, 2] - pred[:, 0]) * (pred[:, 3] - pred[:, 1])
    area_t = (target[:, 2] - target[:, 0]) * (target[:, 3] - target[:, 1])
    x = 1.0 - inter / (area_p + area_t - inter + eps)
    quad = (x < smooth_point).detach()
    return torch.where(quad, 0.5 * x * x / smooth_point, x - 0.5 * smooth_point)


def _num_pos(n: int, device) -> float:
    """Positives averaged over processes (mmdet's reduce_mean), at least 1."""
    t = torch.tensor(float(n), device=device)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        t = t.clone()
        torch.distributed.all_reduce(t.div_(torch.distributed.get_world_size()))
    return max(float(t), 1.0)


class YuNetLoss:
    """YuNet training loss on ``YuNet.forward_train`` outputs; see the module docstring.

    ``loss(raw_outputs, gt_boxes, gt_kps, img_size)``:
        raw_outputs: the 12 tensors (cls/obj logits), [N, H_s*W_s, C] each.
        gt_boxes: per image a [n, 4] tensor/array of x1, y1, x2, y2 in input pixels.
        gt_kps: per image [n, 5, 2] landmarks in pixels, -1 (any negative) for an absent
            point; [n, 5, 3] with a visibility column (> 0 visible) is accepted too; or None.
        img_size: the network input (height, width), or an int for a square input.
    Returns dict(loss_cls, loss_bbox, loss_obj, loss_kps, loss, num_pos) -- the loss_*
    entries are weighted scalar tensors, ``loss`` their sum, ``num_pos`` a float.
    """

    def __init__(self, strides: Sequence[int] = (8, 16, 32), num_kps: int = 5,
                 w_cls: float = 1.0, w_bbox: float = 5.0, w_obj: float = 1.0, w_kps: float = 0.5,
                 center_radius: float = 2.5, kps_beta: float = 1.0 / 9.0,
                 eiou_smooth_point: float = 0.1):
        self.strides = tuple(int(s) for s in strides)
        self.num_kps = int(num_kps)
        self.w_cls, self.w_bbox, self.w_obj, self.w_kps = map(float, (w_cls, w_bbox, w_obj, w_kps))
        self.kps_beta = float(kps_beta)
        self.eiou_smooth_point = float(eiou_smooth_point)
        self.prior_generator = MlvlPointGenerator(list(self.strides), offset=0)
        self.assigner = SimOTAAssigner(center_radius=center_radius)

    # -- layout ---------------------------------------------------------------------------
    def _flatten(self, raw_outputs, img_size):
        n_lv = len(self.strides)
        if len(raw_outputs) != N_GROUPS * n_lv:
            raise ValueError(f"YuNetLoss: expected {N_GROUPS * n_lv} outputs "
                             f"(cls, obj, bbox, kps x {n_lv} strides), got {len(raw_outputs)}")
        h, w = (img_size, img_size) if isinstance(img_size, int) else map(int, img_size)
        sizes = [(-(-h // s), -(-w // s)) for s in self.strides]
        for i, (s, (fh, fw)) in enumerate(zip(self.strides, sizes)):
            for g in range(N_GROUPS):
                t = raw_outputs[g * n_lv + i]
                if t.dim() != 3 or t.shape[1] != fh * fw:
                    raise ValueError(f"YuNetLoss: output {g * n_lv + i} (stride {s}) has shape "
                                     f"{tuple(t.shape)}, expected [N, {fh * fw}, C] for input {h}x{w}")
        cat = [torch.cat([raw_outputs[g * n_lv + i].float() for i in range(n_lv)], 1)
               for g in range(N_GROUPS)]
        priors = torch.cat(self.prior_generator.grid_priors(
            sizes, dtype=torch.float32, device=cat[0].device, with_stride=True))
        return cat, priors

    @staticmethod
    def decode_boxes(priors: torch.Tensor, bbox: torch.Tensor) -> torch.Tensor:
        """[..., 4] raw box outputs -> xyxy pixels (OpenCV FaceDetectorYN decode)."""
        xy = priors[..., :2] + bbox[..., :2] * priors[..., 2:]
        wh = bbox[..., 2:].exp() * priors[..., 2:]
        return torch.cat([xy - wh / 2, xy + wh / 2], -1)

    def _gt(self, boxes, kps, device):
        boxes = torch.as_tensor(boxes, dtype=torch.float32, device=device).reshape(-1, 4)
        n = boxes.shape[0]
        if n == 0:  # an image without faces (negative sample)
            return boxes, boxes.new_zeros((0, self.num_kps, 2)), boxes.new_zeros((0, self.num_kps))
        if kps is None:
            pts = boxes.new_full((n, self.num_kps, 2), -1.0)
            vis = boxes.new_zeros((n, self.num_kps))
        else:
            kps = torch.as_tensor(kps, dtype=torch.float32, device=device)
            kps = kps.reshape(n, self.num_kps, -1)
            pts = kps[..., :2]
            vis = (kps[..., 2] > 0) if kps.shape[-1] == 3 else (pts >= 0).all(-1)
            vis = vis.float()
        return boxes, pts, vis

    # -- the loss -------------------------------------------------------------------------
    def __call__(self, raw_outputs, gt_boxes, gt_kps=None, img_size=None) -> dict:
        if img_size is None:
            raise ValueError("YuNetLoss: img_size (network input height, width) is required")
        # float32 maths even inside an autocast region (mmcv's auto_fp16 forward, QAT, ...):
        # the assigner's binary_cross_entropy is not allowed under CUDA autocast
        with torch.autocast(raw_outputs[0].device.type, enabled=False):
            return self._loss(raw_outputs, gt_boxes, gt_kps, img_size)

    def _loss(self, raw_outputs, gt_boxes, gt_kps, img_size) -> dict:
        (cls, obj, bbox, kps), priors = self._flatten(raw_outputs, img_size)
        bad = [g for g, t in zip(("cls", "obj", "bbox", "kps"), (cls, obj, bbox, kps))
               if not bool(torch.isfinite(t.detach()).all())]
        if bad:
            raise FloatingPointError(
                f"YuNetLoss: non-finite detector outputs ({', '.join(bad)}): training diverged; "
                "lower the lr, lengthen the warm-up or clip gradients")
        num_imgs, num_priors = cls.shape[:2]
        if len(gt_boxes) != num_imgs:
            raise ValueError(f"YuNetLoss: {len(gt_boxes)} gt entries for a batch of {num_imgs}")
        gt_kps = [None] * num_imgs if gt_kps is None else gt_kps
        decoded = self.decode_boxes(priors[None], bbox)                   # [N, P, 4]
        assign_priors = torch.cat([priors[:, :2] + priors[:, 2:] * 0.5, priors[:, 2:]], -1)

        pos_mask = torch.zeros(num_imgs, num_priors, dtype=torch.bool, device=cls.device)
        cls_t, box_t, kps_t, kps_w = [], [], [], []
        with torch.no_grad():
            scores = cls.detach().sigmoid() * obj.detach().sigmoid()
            for b in range(num_imgs):
                boxes, pts, vis = self._gt(gt_boxes[b], gt_kps[b], cls.device)
                if boxes.shape[0] == 0:
                    continue
                res = self.assigner.assign(scores[b], assign_priors, decoded[b].detach(), boxes,
                                           boxes.new_zeros(boxes.shape[0], dtype=torch.long))
                pos = torch.nonzero(res.gt_inds > 0, as_tuple=False).squeeze(1)
                g = res.gt_inds[pos] - 1
                pos_mask[b, pos] = True
                cls_t.append(res.max_overlaps[pos].float())
                box_t.append(boxes[g])
                kps_t.append(pts[g])
                kps_w.append(vis[g])
        num_pos = int(pos_mask.sum())
        denom = _num_pos(num_pos, cls.device)
        cat = (lambda xs, shape: torch.cat(xs) if xs else cls.new_zeros(shape))
        cls_t, box_t = cat(cls_t, (0,)), cat(box_t, (0, 4))
        kps_t, kps_w = cat(kps_t, (0, self.num_kps, 2)), cat(kps_w, (0, self.num_kps))

        loss_obj = F.binary_cross_entropy_with_logits(
            obj.reshape(-1), pos_mask.reshape(-1).float(), reduction="sum") / denom
        loss_cls = F.binary_cross_entropy_with_logits(
            cls[pos_mask].reshape(-1), cls_t, reduction="sum") / denom
        loss_bbox = eiou_loss(decoded[pos_mask], box_t, self.eiou_smooth_point).sum() / denom
        pos_priors = priors[None].expand(num_imgs, -1, -1)[pos_mask]
        enc = (kps_t - pos_priors[:, None, :2]) / pos_priors[:, None, 2:]
        enc = torch.where(kps_w[..., None] > 0, enc, torch.zeros_like(enc))  # no -1 garbage
        pred_kps = kps[pos_mask].reshape(-1, self.num_kps, 2)
        per = F.smooth_l1_loss(pred_kps, enc, beta=self.kps_beta, reduction="none")
        kps_avg = kps_w.sum() / self.num_kps                  # positives with landmarks
        loss_kps = (per * kps_w[..., None]).sum() / (kps_avg + torch.finfo(torch.float32).eps)

        out = {"loss_cls": self.w_cls * loss_cls, "loss_bbox": self.w_bbox * loss_bbox,
               "loss_obj": self.w_obj * loss_obj, "loss_kps": self.w_kps * loss_kps}
        out["loss"] = out["loss_cls"] + out["loss_bbox"] + out["loss_obj"] + out["loss_kps"]
        out["num_pos"] = float(num_pos)
        return out
