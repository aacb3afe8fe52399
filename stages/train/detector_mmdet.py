"""Train YuNet through mmdet 2.x, as libfacedetection.train does (``configs/yunet_n.py``).

``train_detector(data_root, out_dir, cfg, log)`` builds an mmcv ``Config`` (model
``YuNet`` = shared backbone/neck/head registered by ``mmdet_registry``, loss
``shared.detector_loss.YuNetLoss``; ``RetinaFaceDataset`` over the dataset stage's
``<data_root>/<split>/labels.txt``, one dataset per train variant, concatenated), then runs
mmdet's dataloader/optimizer builders and an mmcv ``EpochBasedRunner`` with the usual hooks
(lr warmup + step/cosine, optimizer, checkpoints, text + json log).  It returns the trained
weights in a plain ``shared.models.yunet.YuNet`` and the per-epoch history.

cfg keys (defaults in ``DEFAULTS``):
    epochs (int), batch_size (int), lr (float), weight_decay (float),
    optimizer: "sgd" (momentum ``momentum``, as the original) | "adamw",
    warmup_iters (int, linear warmup from lr * 0.001; 0 = none),
    lr_schedule: "step" (x0.1 at the epochs ``lr_steps``, default 50/80 and 68/80 of the
        run, as yunet_n) | "cosine" (down to lr * min_lr_ratio),
    input_size: [h, w] (multiples of 32; images are resized keeping their ratio and padded),
    train_variants: image suffixes, e.g. ["0", "1_noisy"]: one dataset per variant
        (``_0`` -> ``_1_noisy`` in the file names), concatenated,
    workers (int, dataloader processes; 0 = in the main process),
    amp (bool): CPU -> forward under torch.autocast bfloat16 (loss in float32);
        CUDA -> mmcv's Fp16OptimizerHook (fp16 autocast + dynamic loss scaling),
    seed (int), device ("auto" | "cpu" | "cuda"), split ("train"), flip_ratio (0.5),
    checkpoint_interval (epochs; 0 = the last only), log_interval (iterations),
    grad_clip (max grad norm, 35; null = none as yunet_n, but then SGD at lr 0.01 diverges
        on small synthetic sets within ~100 iterations), momentum (0.9, sgd),
    detector (YuNet kwargs, e.g. stage_channels / feat_channels; {} = yunet_n),
    loss (YuNetLoss weights: w_cls, w_bbox, w_obj, w_kps).

Writes in ``out_dir``: ``yunet_mmdet_config.py`` (the mmcv config), ``epoch_<n>.pth`` and
``latest.pth`` (mmcv checkpoints without mmcv's wall-clock ``meta.time``; state_dict keys = shared
YuNet's), ``<time>.log.json``
(mmcv TextLoggerHook), ``mmdet_train.log`` (the text log) and ``history.json``.
"""
from __future__ import annotations

import copy
import json
import logging
import time
from pathlib import Path

import torch
from mmcv import Config
from mmcv.parallel import MMDataParallel
from mmcv.runner import EpochBasedRunner, Fp16OptimizerHook, Hook, build_optimizer
from mmdet.apis import set_random_seed
from mmdet.datasets import build_dataloader, build_dataset
from mmdet.models import build_detector

from shared.models.yunet import YUNET_N_STAGES
from stages.train import mmdet_registry  # noqa: F401  (registers the YuNet pieces)

DEFAULTS = dict(epochs=80, batch_size=16, lr=0.01, weight_decay=5e-4, optimizer="sgd",
                momentum=0.9, warmup_iters=1500, lr_schedule="step", lr_steps=None,
                min_lr_ratio=0.01, input_size=[256, 256], train_variants=["0"], workers=2,
                amp=False, seed=0, device="auto", split="train", flip_ratio=0.5,
                checkpoint_interval=0, log_interval=50, grad_clip=35.0, detector={}, loss={})


def _model_cfg(c: dict, autocast_dtype) -> dict:
    det = dict(c["detector"])
    stages = [list(s) for s in det.pop("stage_channels", YUNET_N_STAGES)]
    out_idx = list(det.pop("out_idx", (3, 4, 5)))
    width = stages[out_idx[0]][-1]
    model = dict(
        type="YuNet", autocast_dtype=autocast_dtype,
        backbone=dict(type="YuNetBackbone", stage_channels=stages,
                      downsample_idx=list(det.pop("downsample_idx", (0, 2, 3, 4))),
                      out_idx=out_idx),
        neck=dict(type="TFPN", in_channels=[width] * len(out_idx)),
        bbox_head=dict(type="YuNetHead", in_channels=width,
                       feat_channels=det.pop("feat_channels", 64), num_levels=len(out_idx),
                       shared_stacked_convs=det.pop("shared_stacked_convs", 1),
                       num_kps=det.pop("num_kps", 5), loss=dict(c["loss"])),
        train_cfg=dict(assigner=dict(type="SimOTAAssigner", center_radius=2.5)),
        test_cfg=dict(score_thr=0.02, nms_iou=0.45, top_k=5000))
    if det:
        raise KeyError(f"train_detector: unknown detector keys {sorted(det)}")
    return model


def build_config(data_root: Path, out_dir: Path, cfg: dict, device: str) -> Config:
    """The mmcv Config of a run (see the module docstring for ``cfg``)."""
    unknown = sorted(set(cfg) - set(DEFAULTS))
    if unknown:
        raise KeyError(f"train_detector: unknown cfg keys {unknown} (known: {sorted(DEFAULTS)})")
    c = {**DEFAULTS, **cfg}
    h, w = (int(v) for v in c["input_size"])
    if h % 32 or w % 32:
        raise ValueError(f"input_size must be multiples of 32 (YuNet strides), got {[h, w]}")
    split = Path(data_root) / c["split"]
    if not (split / "labels.txt").is_file():
        raise FileNotFoundError(f"{split / 'labels.txt'} not found (the dataset stage's labels)")
    pipeline = [
        dict(type="LoadImageFromFile", to_float32=True),
        dict(type="LoadFaceAnnotations", with_bbox=True),
        dict(type="ResizeFaces", size=(h, w)),
        dict(type="FaceRandomFlip", flip_ratio=c["flip_ratio"]),
        dict(type="Normalize", mean=[0.0] * 3, std=[1.0] * 3, to_rgb=False),  # raw 0..255 BGR
        dict(type="Pad", size=(h, w), pad_val=dict(img=0)),
        dict(type="FaceFormatBundle"),
        dict(type="Collect", keys=["img", "gt_bboxes", "gt_labels", "gt_keypointss"]),
    ]
    train = [dict(type="RetinaFaceDataset", ann_file=str(split / "labels.txt"),
                  img_prefix=str(split) + "/", variant=str(v), pipeline=pipeline)
             for v in c["train_variants"]]
    if not train:
        raise ValueError("train_variants is empty")
    epochs = int(c["epochs"])
    if c["optimizer"] == "sgd":
        optimizer = dict(type="SGD", lr=c["lr"], momentum=c["momentum"],
                         weight_decay=c["weight_decay"])
    elif c["optimizer"] == "adamw":
        optimizer = dict(type="AdamW", lr=c["lr"], weight_decay=c["weight_decay"])
    else:
        raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {c['optimizer']!r}")
    warm = dict(warmup="linear", warmup_iters=int(c["warmup_iters"]), warmup_ratio=0.001) \
        if c["warmup_iters"] > 0 else dict(warmup=None)
    if c["lr_schedule"] == "cosine":
        lr_config = dict(policy="CosineAnnealing", min_lr_ratio=c["min_lr_ratio"], **warm)
    elif c["lr_schedule"] == "step":
        steps = c["lr_steps"] or [max(1, round(epochs * 50 / 80)), max(1, round(epochs * 68 / 80))]
        lr_config = dict(policy="step", step=[int(s) for s in steps], **warm)
    else:
        raise ValueError(f"lr_schedule must be 'cosine' or 'step', got {c['lr_schedule']!r}")
    amp = bool(c["amp"])
    return Config(dict(
        model=_model_cfg(c, "bfloat16" if amp and device == "cpu" else None),
        data=dict(samples_per_gpu=int(c["batch_size"]), workers_per_gpu=int(c["workers"]),
                  train=train if len(train) > 1 else train[0]),
        optimizer=optimizer,
        optimizer_config=dict(grad_clip=dict(max_norm=c["grad_clip"]) if c["grad_clip"] else None),
        fp16=dict(loss_scale="dynamic") if amp and device == "cuda" else None,
        lr_config=lr_config,
        runner=dict(type="EpochBasedRunner", max_epochs=epochs),
        checkpoint_config=dict(interval=int(c["checkpoint_interval"]) or epochs, max_keep_ckpts=3),
        log_config=dict(interval=int(c["log_interval"]), hooks=[dict(type="TextLoggerHook")]),
        seed=int(c["seed"]), device=device, work_dir=str(out_dir), input_size=[h, w],
        yunet_kwargs=dict(c["detector"])))


class EpochHistoryHook(Hook):
    """Per-epoch means of the logged loss terms, images/s; appended to ``history``."""

    def __init__(self, history: list, out_file: Path, log: logging.Logger):
        self.history, self.out_file, self.log = history, Path(out_file), log

    def before_train_epoch(self, runner):
        self.sums, self.n, self.t0 = {}, 0, None

    def before_train_iter(self, runner):
        if self.t0 is None:  # after the first batch is loaded and mmcv's 2 s epoch pause
            self.t0 = time.perf_counter()

    def after_train_iter(self, runner):
        k = int(runner.outputs["num_samples"])
        for name, v in runner.outputs["log_vars"].items():
            self.sums[name] = self.sums.get(name, 0.0) + float(v) * k
        self.n += k

    def after_train_epoch(self, runner):
        secs = time.perf_counter() - (self.t0 or time.perf_counter())
        rec = {"epoch": runner.epoch + 1, "lr": float(runner.current_lr()[0]),
               **{k: v / max(self.n, 1) for k, v in self.sums.items()},
               "images": self.n, "seconds": round(secs, 3),
               "images_per_s": round(self.n / secs, 2) if secs > 0 else None}
        self.history.append(rec)
        self.out_file.write_text(json.dumps(self.history, indent=1))
        self.log.info("detector epoch %d/%d: loss %.4f (cls %.4f bbox %.4f obj %.4f kps %.4f) "
                      "lr %.2e, %.1f img/s", rec["epoch"], runner.max_epochs, rec.get("loss", 0),
                      rec.get("loss_cls", 0), rec.get("loss_bbox", 0), rec.get("loss_obj", 0),
                      rec.get("loss_kps", 0), rec["lr"], rec["images_per_s"] or 0)


def train_detector(data_root: Path, out_dir: Path, cfg: dict, log: logging.Logger):
    """Train YuNet with mmdet; returns (shared YuNet with the trained weights, history).

    history: one dict per epoch: epoch, lr (at its end), the epoch means of the logged
    per-batch values loss, loss_cls, loss_bbox, loss_obj, loss_kps, num_pos (positives per
    batch) and grad_norm (with grad_clip), images, seconds, images_per_s (training steps only:
    from the first batch's forward to the epoch's end).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = str(cfg.get("device", "auto"))
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train_detector: device cuda was asked for but no GPU is visible")
    device = "cuda" if device in ("auto", "cuda") and torch.cuda.is_available() else "cpu"
    mcfg = build_config(Path(data_root), out_dir, cfg, device)
    if cfg.get("amp") and device == "cpu" and not _cpu_has_bf16():
        log.warning("detector amp: this CPU has no native bf16 (AVX512-BF16/AMX); bf16 autocast "
                    "is emulated and ~15x slower than float32 here")
    dumped = copy.deepcopy(mcfg)
    dumped.work_dir = out_dir.name      # not the stage's temp dir: the dump describes the run, not where it ran
    dumped.dump(str(out_dir / "yunet_mmdet_config.py"))
    set_random_seed(mcfg.seed, deterministic=False)

    mlog = logging.getLogger(f"{log.name}.mmdet")
    handler = logging.FileHandler(out_dir / "mmdet_train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    mlog.addHandler(handler)
    mlog.setLevel(logging.INFO)
    try:
        datasets = build_dataset(mcfg.data.train)
        loader = build_dataloader(datasets, mcfg.data.samples_per_gpu, mcfg.data.workers_per_gpu,
                                  num_gpus=1, dist=False, seed=mcfg.seed,
                                  persistent_workers=mcfg.data.workers_per_gpu > 0)
        model = build_detector(mcfg.model)
        model.init_weights()
        model = MMDataParallel(model.cuda(), device_ids=[0]) if device == "cuda" \
            else MMDataParallel(model)
        optimizer = build_optimizer(model, mcfg.optimizer)
        runner = EpochBasedRunner(model, optimizer=optimizer, work_dir=str(out_dir), logger=mlog,
                                  meta=dict(seed=mcfg.seed, exp_name="yunet"),
                                  max_epochs=mcfg.runner.max_epochs)
        runner.timestamp = time.strftime("%Y%m%d_%H%M%S", time.localtime())
        opt_hook = Fp16OptimizerHook(**mcfg.optimizer_config, **mcfg.fp16) if mcfg.fp16 \
            else mcfg.optimizer_config
        runner.register_training_hooks(mcfg.lr_config, opt_hook, mcfg.checkpoint_config,
                                       mcfg.log_config)
        history: list[dict] = []
        runner.register_hook(EpochHistoryHook(history, out_dir / "history.json", log), "LOW")
        log.info("detector: %d training images x %d epochs, batch %d, %s on %s%s",
                 len(datasets), mcfg.runner.max_epochs, mcfg.data.samples_per_gpu,
                 mcfg.optimizer.type, device, " (amp)" if cfg.get("amp") else "")
        runner.run([loader], [("train", 1)])
    finally:
        mlog.removeHandler(handler)
        handler.close()
    _drop_checkpoint_times(out_dir)
    det = model.module
    return det.to_yunet(**_yunet_kwargs(mcfg.yunet_kwargs)), history


def _drop_checkpoint_times(out_dir: Path) -> None:
    """mmcv stamps each checkpoint's meta with the wall-clock time; without it a rerun that trains the
    same weights writes the same bytes (the stage's manifest says when it ran), so the stages below
    keep their cache (shared/manifest.py content digests)."""
    for p in sorted(out_dir.glob("*.pth")):
        if p.is_symlink():
            continue
        ckpt = torch.load(p, map_location="cpu", weights_only=False)
        if (ckpt.get("meta") or {}).pop("time", None) is not None:
            torch.save(ckpt, p)


def _yunet_kwargs(det: dict) -> dict:
    kw = dict(det)
    if "stage_channels" in kw:
        kw["stage_channels"] = [tuple(s) for s in kw["stage_channels"]]
    return kw


def _cpu_has_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return True  # unknown: no warning
