"""YuNet in mmdet 2.x's registries, built from the shared plain-PyTorch modules.

Importing this module registers (``force=True``, so re-imports are harmless):

* ``BACKBONES['YuNetBackbone']`` and ``NECKS['TFPN']``: the classes of
  ``shared.models.yunet`` themselves (no copy of the architecture);
* ``HEADS['YuNetHead']``: ``shared.models.yunet.YuNetHead`` plus the mmdet head API
  (``forward_train``/``loss`` through ``shared.detector_loss.YuNetLoss``, ``simple_test``
  through ``shared.models.yunet_decode``, i.e. OpenCV's post-processing);
* ``DETECTORS['YuNet']``: a ``SingleStageDetector`` that passes ``gt_keypointss`` to the
  head and can run its forward under a CPU bf16 autocast (``autocast_dtype``);
* ``DATASETS['RetinaFaceDataset']``: labelv2 ``labels.txt`` (the dataset stage's), with
  ``variant`` choosing which image of each sample is read (``_0`` -> ``_<variant>``);
* ``PIPELINES`` ``LoadFaceAnnotations``, ``ResizeFaces``, ``FaceRandomFlip``,
  ``FaceFormatBundle``: mmdet's LoadAnnotations / Resize / RandomFlip /
  DefaultFormatBundle extended to the [n, 5, 3] landmarks (x, y, visible).

The detector's ``state_dict`` keys are those of ``shared.models.yunet.YuNet``
(``backbone.*``, ``neck.*``, ``bbox_head.*``); ``YuNetDetector.to_yunet()`` copies the
weights into a plain ``YuNet``.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import torch
from mmcv.parallel import DataContainer as DC
from mmdet.datasets.builder import DATASETS, PIPELINES
from mmdet.datasets.custom import CustomDataset
from mmdet.datasets.pipelines import DefaultFormatBundle, LoadAnnotations, RandomFlip, Resize
from mmdet.datasets.pipelines.formatting import to_tensor
from mmdet.models.builder import BACKBONES, DETECTORS, HEADS, NECKS
from mmdet.models.detectors import BaseDetector, SingleStageDetector

from shared.detector_loss import YuNetLoss
from shared.labelv2 import BadSample, read_labelv2
from shared.models import yunet
from shared.models.yunet_decode import decode

NUM_KPS = 5
FLIP_ORDER = [1, 0, 2, 4, 3]  # image-left/right eyes and mouth corners swap under a flip

BACKBONES.register_module(name="YuNetBackbone", module=yunet.YuNetBackbone, force=True)
NECKS.register_module(name="TFPN", module=yunet.TFPN, force=True)


@HEADS.register_module(name="YuNetHead", force=True)
class MMYuNetHead(yunet.YuNetHead):
    """The shared head + mmdet's head API; ``loss`` holds YuNetLoss kwargs (weights)."""

    num_classes = 1

    def __init__(self, in_channels=64, feat_channels=64, num_levels=3, shared_stacked_convs=1,
                 num_kps=NUM_KPS, strides=yunet.STRIDES, loss=None, train_cfg=None, test_cfg=None):
        super().__init__(in_channels, feat_channels, num_levels, shared_stacked_convs, num_kps)
        assigner = dict((train_cfg or {}).get("assigner") or {})
        self.strides = tuple(strides)
        self.loss_fn = YuNetLoss(self.strides, num_kps,
                                 center_radius=assigner.get("center_radius", 2.5), **(loss or {}))
        self.test_cfg = dict(test_cfg or {})

    def loss(self, maps, gt_bboxes, gt_keypointss, img_size) -> dict:
        """mmdet loss dict: the four weighted terms (summed by mmdet) + num_pos (logged)."""
        flat = tuple(yunet._flat(t) for group in maps for t in group)
        out = self.loss_fn(flat, gt_bboxes, gt_keypointss, img_size)
        losses = {k: v for k, v in out.items() if k.startswith("loss_")}
        losses["num_pos"] = torch.tensor(out["num_pos"], device=flat[0].device)
        return losses

    def forward_train(self, x, img_metas, gt_bboxes, gt_labels=None, gt_keypointss=None,
                      gt_bboxes_ignore=None, proposal_cfg=None, **kwargs):
        return self.loss(self(x), gt_bboxes, gt_keypointss, img_metas[0]["batch_input_shape"])

    def simple_test(self, feats, img_metas, rescale=False):
        """[(dets [k, 5] x1 y1 x2 y2 score, labels [k])] per image, OpenCV's decode + NMS."""
        cls, obj, bbox, kps = self(feats)
        outs = ([yunet._flat(t).sigmoid() for t in cls] + [yunet._flat(t).sigmoid() for t in obj]
                + [yunet._flat(t) for t in bbox] + [yunet._flat(t) for t in kps])
        h, w = img_metas[0]["batch_input_shape"]
        cfg = self.test_cfg
        res = []
        for meta, faces in zip(img_metas, decode(outs, (w, h), cfg.get("score_thr", 0.02),
                                                 cfg.get("nms_iou", 0.45), cfg.get("top_k", 5000))):
            dets = torch.from_numpy(faces[:, [0, 1, 2, 3, 14]].copy())
            if rescale:
                dets[:, :4] /= dets.new_tensor(np.asarray(meta["scale_factor"], np.float32))
            res.append((dets, torch.zeros(len(dets), dtype=torch.long)))
        return res


@DETECTORS.register_module(name="YuNet", force=True)
class YuNetDetector(SingleStageDetector):
    """SingleStageDetector with landmarks; ``autocast_dtype`` 'bfloat16' runs the forward
    (not the loss) under torch.autocast on the input's device."""

    def __init__(self, backbone, neck, bbox_head, train_cfg=None, test_cfg=None,
                 autocast_dtype=None, pretrained=None, init_cfg=None):
        super().__init__(backbone, neck, bbox_head, train_cfg, test_cfg, pretrained, init_cfg)
        self.autocast_dtype = autocast_dtype

    def init_weights(self):
        yunet.YuNet.init_weights(self)  # the shared (= original) initialisation

    def _autocast(self, img):
        if not self.autocast_dtype:
            return contextlib.nullcontext()
        return torch.autocast(img.device.type, dtype=getattr(torch, self.autocast_dtype))

    def forward_train(self, img, img_metas, gt_bboxes, gt_labels, gt_keypointss=None,
                      gt_bboxes_ignore=None):
        BaseDetector.forward_train(self, img, img_metas)  # sets batch_input_shape
        with self._autocast(img):
            maps = self.bbox_head(self.extract_feat(img))
        return self.bbox_head.loss(maps, gt_bboxes, gt_keypointss, tuple(img.shape[-2:]))

    def to_yunet(self, **yunet_kwargs) -> yunet.YuNet:
        """A plain ``shared.models.yunet.YuNet`` (CPU, eval) with these weights."""
        model = yunet.YuNet(**yunet_kwargs)
        model.load_state_dict({k: v.detach().cpu() for k, v in self.state_dict().items()})
        return model.eval()


# -- data ------------------------------------------------------------------------------------
def read_labels(path: Path, variant: str = "0", check_images: bool = True) -> list[dict]:
    """labelv2 (``shared.labelv2``) -> mmdet data_infos; problems raise ValueError('file:line: ...')."""
    path = Path(path)
    infos: list[dict] = []
    for rec in read_labelv2(path):
        name, suffix = rec["image"], Path(rec["image"]).suffix
        if variant != "0":
            if not name.endswith("_0" + suffix):
                raise BadSample(f"{rec['where']}: image {name} does not end in _0{suffix}, "
                                f"so its variant _{variant} cannot be named")
            name = name[:-len("_0" + suffix)] + f"_{variant}{suffix}"
        if check_images and not (path.parent / name).is_file():
            raise BadSample(f"{rec['where']}: image {path.parent / name} not found")
        faces = rec["faces"]
        kps = np.full((len(faces), NUM_KPS, 3), -1.0, np.float32)
        for i, f in enumerate(faces):
            if f["landmarks"]:
                kps[i, :, :2], kps[i, :, 2] = f["landmarks"], 1.0
        kps[kps[..., 2] < 0, 2] = 0.0
        infos.append(dict(filename=name, width=rec["width"], height=rec["height"], ann=dict(
            bboxes=np.asarray([f["box"] for f in faces], np.float32).reshape(-1, 4),
            labels=np.zeros(len(faces), np.int64), keypointss=kps,
            bboxes_ignore=np.zeros((0, 4), np.float32))))
    return infos


@DATASETS.register_module(name="RetinaFaceDataset", force=True)
class RetinaFaceDataset(CustomDataset):
    """labelv2 faces; ``variant`` '1_noisy' reads images/<id>_1_noisy.png for <id>_0.png.
    ``keep_empty`` keeps images without faces (background-only; the original drops them)."""

    CLASSES = ("face",)

    def __init__(self, variant="0", keep_empty=True, **kwargs):
        self.variant, self.keep_empty = str(variant), bool(keep_empty)
        super().__init__(**kwargs)

    def load_annotations(self, ann_file):
        return read_labels(Path(ann_file), self.variant)

    def get_ann_info(self, idx):
        return self.data_infos[idx]["ann"]

    def get_cat_ids(self, idx):
        return self.data_infos[idx]["ann"]["labels"].tolist()

    def _filter_imgs(self, min_size=32):
        return [i for i, info in enumerate(self.data_infos)
                if self.keep_empty or len(info["ann"]["bboxes"])]


@PIPELINES.register_module(force=True)
class LoadFaceAnnotations(LoadAnnotations):
    """mmdet LoadAnnotations (boxes, labels) + ``gt_keypointss`` [n, 5, 3]."""

    def __call__(self, results):
        results = super().__call__(results)
        results["gt_keypointss"] = results["ann_info"]["keypointss"].copy()
        return results


@PIPELINES.register_module(force=True)
class ResizeFaces(Resize):
    """Keep-ratio resize so the image fits in ``size`` = (h, w) (then Pad to it);
    boxes as mmdet's Resize, visible landmarks scaled alike."""

    def __init__(self, size):
        self.size = (int(size[0]), int(size[1]))
        super().__init__(img_scale=(self.size[1], self.size[0]), keep_ratio=True)

    def _random_scale(self, results):
        h, w = results["img"].shape[:2]
        results["scale"] = min(self.size[0] / h, self.size[1] / w)  # a factor for imrescale
        results["scale_idx"] = None

    def _resize_bboxes(self, results):
        super()._resize_bboxes(results)
        if "gt_keypointss" in results:
            kps = results["gt_keypointss"]
            vis = kps[..., 2] > 0
            kps[..., :2][vis] *= np.asarray(results["scale_factor"][:2], np.float32)


@PIPELINES.register_module(force=True)
class FaceRandomFlip(RandomFlip):
    """Horizontal mmdet RandomFlip; landmarks mirrored (x -> w - x) and re-ordered so that
    index 0/1 (3/4) stay the image-left/right eye (mouth corner)."""

    def __init__(self, flip_ratio=0.5):
        super().__init__(flip_ratio=flip_ratio, direction="horizontal")

    def __call__(self, results):
        results = super().__call__(results)
        if results["flip"] and "gt_keypointss" in results:
            kps = results["gt_keypointss"]
            vis = kps[..., 2] > 0
            kps[..., 0] = np.where(vis, results["img_shape"][1] - kps[..., 0], kps[..., 0])
            results["gt_keypointss"] = kps[:, FLIP_ORDER].copy()
        return results


@PIPELINES.register_module(force=True)
class FaceFormatBundle(DefaultFormatBundle):
    """DefaultFormatBundle + ``gt_keypointss`` as a (non-stacked) DataContainer."""

    def __call__(self, results):
        results = super().__call__(results)
        if "gt_keypointss" in results:
            results["gt_keypointss"] = DC(to_tensor(results["gt_keypointss"]))
        return results
