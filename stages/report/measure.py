"""Accuracy of every artifact by the shared protocol (shared/evaluation.py), on the same test images.

* detector (``yunet*``): the bare detector on the degraded images, raw 0..255 input;
* pipeline: the single-graph chain, [0, 1] input; detection metrics;
* enhancer: PSNR/SSIM of ``1`` -> ``0``; denoiser: ``0_noisy`` -> ``0``; other restoration
  nets: the eval variant -> ``0``;
* chain (a group with enhancer, denoiser and detector files): the three ONNX Runtime
  sessions composed, detector(255 * denoiser(enhancer(x))), detection on the eval variant
  and PSNR/SSIM of the restored image against the clean one.

Metrics the upstream stage computed for the same file with the same ``eval`` section are
taken as they are (``source`` names the stage); everything else is measured here.

``keep_dets=True`` (the systems of the JMMC table, stages/report/jmmc.py): measured here even
when the upstream stage has figures, and the per-image detections come back under ``dets``, so
the table's bootstrap intervals and the results row come from one detection pass.  A pipeline
graph measured that way also yields the PSNR/SSIM of its restored image: the tensor the graph
multiplies by 255 before the detector (``restored_tensor``) is made an extra output of the
same run.
"""
from __future__ import annotations

import time

import numpy as np

from shared import units
from shared.evaluation import (Protocol, accuracy_mode, as_fn, detect, evaluate_detection, evaluate_restoration,
                               ort_session)
from shared.metrics.detection import evaluate_detections
from stages.report.records import Artifact

DET_KEYS = ("ap", "nme", "top_box_iou", "missed", "n_gt", "n_images")
RES_KEYS = ("psnr", "ssim", "psnr_input", "ssim_input")


def _keep(m: dict, keys) -> dict:
    return {k: m[k] for k in keys if k in m}


def has_metrics(m: dict | None, role: str) -> bool:
    if not m:
        return False
    need = "psnr" if role in ("enhancer", "denoiser", "restoration") else "ap"
    return need in m


def from_upstream(a: Artifact, keep_dets: bool = False) -> bool:
    """Whether the file's upstream figures are used as they are (nothing to run here)."""
    return has_metrics(a.upstream, a.role) and not (keep_dets and a.role in ("detector", "pipeline"))


def evaluate_artifact(a: Artifact, test, proto: Protocol, log=None, keep_dets: bool = False) -> dict:
    """Metrics of one ONNX file (see the module docstring), plus ``source`` and ``eval_s``
    (and ``dets`` with ``keep_dets`` for a detector or pipeline)."""
    if from_upstream(a, keep_dets):
        return {**_keep(a.upstream, DET_KEYS + RES_KEYS), "source": f"{a.stage} manifest"}
    t0 = time.time()
    if a.role == "pipeline" and keep_dets:
        m = detect_and_restore(tapped_pipeline(a.path), test, proto, keep_dets=True)
    elif a.role in ("detector", "pipeline"):
        if keep_dets:
            dets = detect(ort_session(a.path), test, proto, input_range=a.input_range)
            m = {**_keep(evaluate_detections(dets, test.gts(len(dets)), proto.iou_thr), DET_KEYS), "dets": dets}
        else:
            m = _keep(evaluate_detection(ort_session(a.path), test, proto, input_range=a.input_range), DET_KEYS)
    elif a.role in ("enhancer", "denoiser", "restoration"):
        src = units.eval_variant(a.role, proto.variant)
        m = _keep(evaluate_restoration(ort_session(a.path), test, src, "0", proto.limit, proto.batch), RES_KEYS)
        m["src"] = src
    else:
        return {"source": "not evaluated (unknown role)"}
    m.update(source="measured here", eval_s=round(time.time() - t0, 2))
    if log:
        log.info("evaluated %s (%s) in %.1f s", a.name, a.role, m["eval_s"])
    return m


def _path(x):
    return x.path if isinstance(x, Artifact) else x


def chain_functions(group: dict):
    """(restore(x) -> [0,1] image, system(x) -> 12 YuNet outputs) over three ORT sessions
    (``group``: role -> Artifact or ONNX path)."""
    system, restore = units.chain(*(as_fn(ort_session(_path(group[r]))) for r in units.ORDER))
    return restore, system


def detect_and_restore(run, test, proto: Protocol, keep_dets: bool = False) -> dict:
    """Detection metrics of ``run(x) -> (outputs, restored image or None)``, plus PSNR/SSIM of the
    restored images against the clean ones (kept from the detection pass, not run again)."""
    restored = []

    def system(x):
        outs, r = run(x)
        restored.append(r if r is not None and r.shape == x.shape else None)
        return outs

    dets = detect(system, test, proto)
    m = _keep(evaluate_detections(dets, test.gts(len(dets)), proto.iou_thr), DET_KEYS)
    if restored and all(r is not None for r in restored):
        replay = iter(restored)

        def replayed(x):
            r = next(replay)
            if r.shape != x.shape:
                raise RuntimeError(f"chain replay out of step: {r.shape} vs {x.shape}")
            return [r]
        m.update(_keep(evaluate_restoration(replayed, test, proto.variant, "0", proto.limit, proto.batch), RES_KEYS))
        m["src"] = proto.variant
    if keep_dets:
        m["dets"] = dets
    return m


def evaluate_chain(group: dict, test, proto: Protocol, log=None, keep_dets: bool = False) -> dict:
    """The three sessions composed (``group``: role -> Artifact or ONNX path)."""
    t0 = time.time()
    restore, _ = chain_functions(group)
    det = as_fn(ort_session(_path(group["detector"])))

    def run(x):
        r = restore(x)
        return units.feed_detector(det, r), r

    m = detect_and_restore(run, test, proto, keep_dets)
    m.update(src=proto.variant, source="measured here", eval_s=round(time.time() - t0, 2))
    if log:
        log.info("evaluated chain %s in %.1f s: AP %.3f", _path(group["detector"]).parent, m["eval_s"], m["ap"])
    return m


def _const(name: str, consts: dict, producers: dict):
    """The scalar value of tensor ``name`` when it is a constant (initializer, Constant node, or a
    DequantizeLinear of constants), else None."""
    from onnx import numpy_helper
    if name in consts:
        v = numpy_helper.to_array(consts[name])
        return float(v.reshape(-1)[0]) if v.size == 1 else None
    n = producers.get(name)
    if n is not None and n.op_type == "DequantizeLinear":
        q, s = _const(n.input[0], consts, producers), _const(n.input[1], consts, producers)
        zp = _const(n.input[2], consts, producers) if len(n.input) > 2 and n.input[2] else 0.0
        return None if q is None or s is None or zp is None else (q - zp) * s
    return None


def restored_tensor(model) -> str | None:
    """The restored image in a pipeline graph: the data input of the first Mul by 255 (or Div by
    1/255), i.e. what detector(255 * denoiser(enhancer(x))) feeds the detector; None if none."""
    consts = {t.name: t for t in model.graph.initializer}
    producers = {}
    for n in model.graph.node:
        for o in n.output:
            producers[o] = n
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    consts[n.output[0]] = a.t
    target = {"Mul": units.PIXEL_SCALE, "Div": 1 / units.PIXEL_SCALE}
    for n in model.graph.node:
        if n.op_type in target and len(n.input) == 2:
            vals = [_const(i, consts, producers) for i in n.input]
            for k in (0, 1):
                v = vals[1 - k]
                if vals[k] is None and v is not None and abs(abs(v) - target[n.op_type]) < 1e-3 * target[n.op_type]:
                    return n.input[k]
    return None


def tapped_pipeline(path):
    """run(x) -> (12 outputs, restored image or None) in one ONNX Runtime pass: the pipeline with its
    restored image (``restored_tensor``) added as an extra graph output (a temporary copy of the file)."""
    import os
    import tempfile

    import onnx
    model = onnx.load(str(path))
    n_out = len(model.graph.output)
    name = restored_tensor(model)
    if name is None or name in {o.name for o in model.graph.output}:
        fn = as_fn(ort_session(path))
        return lambda x: (fn(x), None)
    model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    fd, tmp = tempfile.mkstemp(suffix=".onnx")
    os.close(fd)
    try:
        onnx.save(model, tmp)
        fn = as_fn(ort_session(tmp, mode=accuracy_mode(path)))
    finally:
        os.unlink(tmp)

    def run(x):
        outs = fn(x)
        return outs[:n_out], outs[n_out]
    return run


def restored_images(group: dict[str, Artifact], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(enhanced, denoised) float NCHW for the strip."""
    enh, den = (as_fn(ort_session(_path(group[r]))) for r in ("enhancer", "denoiser"))
    e = enh(x)[0]
    return e, den(e)[0]


def detections(system_fn, test, proto: Protocol, n: int, input_range: float = 1.0):
    from shared.evaluation import detect
    return detect(system_fn, test, Protocol(**{**proto.__dict__, "limit": n}), input_range=input_range)
