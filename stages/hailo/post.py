"""Host side of a cut graph: Hailo NHWC outputs -> the ONNX model's outputs, and model chaining.

The emulator and HailoRT return each end node's tensor as NHWC.  The ops the cut left to the
host (graph.end_nodes) are redone here: YuNet's Transpose+Reshape become a reshape of the NHWC
map to [N, H*W, C] (row-major cells, OpenCV's layout) and Sigmoid a sigmoid; an output with no
host ops goes back to NCHW (restoration nets).  :func:`map_outputs` tells which emulator output
is which ONNX end node from the HN (Hailo's JSON graph: output layers and ``original_names``).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from shared import units

Fn = Callable[[np.ndarray], list]


def host_post(nhwc: np.ndarray, ops: Sequence[str]) -> np.ndarray:
    x = np.asarray(nhwc, dtype=np.float32)
    if x.ndim != 4:
        raise ValueError(f"expected an NHWC map, got shape {x.shape}")
    if "Reshape" in ops or "Flatten" in ops:
        x = x.reshape(x.shape[0], -1, x.shape[-1])
    else:
        x = x.transpose(0, 3, 1, 2)
    if "Sigmoid" in ops:
        x = 1.0 / (1.0 + np.exp(-x))
    return np.ascontiguousarray(x)


def map_outputs(hn: dict, end_nodes: Sequence[str], scope: str | None = None) -> list[str]:
    """For each output the SDK returns (HN output order), the ONNX end node it comes from."""
    layers = hn["layers"]
    order = (hn.get("net_params") or {}).get("output_layers_order") or [
        n for n, l in layers.items() if l.get("type") == "output_layer"]
    if scope:
        order = [n for n in order if n.startswith(scope + "/")]
    out = []
    for name in order:
        src = layers[name]["input"][0]
        names = set(layers[src].get("original_names", [])) | set(layers[name].get("original_names", []))
        hit = [e for e in end_nodes if e in names]
        if len(hit) != 1:
            raise ValueError(f"HN output {name} (from {src}, original names {sorted(names)}) matches "
                             f"{hit or 'none'} of the end nodes {list(end_nodes)}")
        out.append(hit[0])
    if sorted(out) != sorted(set(end_nodes)):
        raise ValueError(f"HN outputs {out} do not cover the end nodes {list(end_nodes)}")
    return out


def as_onnx_outputs(raw: list, returned: Sequence[str], info) -> list[np.ndarray]:
    """SDK outputs (NHWC, in `returned` end-node order) -> the ONNX graph's outputs, in its order."""
    by_node = dict(zip(returned, raw))
    return [host_post(by_node[info.end_nodes[o]], info.cut_ops[o]) for o in info.outputs]


def wrap_nhwc(fn_nhwc: Fn, returned: Sequence[str], info, in_scale: float) -> Fn:
    """fn(NCHW batch in [0,1] units of the protocol) for a model the SDK runs on NHWC input."""
    def fn(x: np.ndarray) -> list:
        nhwc = np.ascontiguousarray(np.asarray(x, np.float32).transpose(0, 2, 3, 1)) * np.float32(in_scale)
        return as_onnx_outputs(fn_nhwc(nhwc), returned, info)
    return fn


def chain(enhancer: Fn, denoiser: Fn, detector: Fn, pixel_scale: float = units.PIXEL_SCALE) -> tuple[Fn, Fn]:
    """(detect, restore): the Pipeline's glue, enhancer -> denoiser -> detector(255 * x), no clamp.

    Each fn takes NCHW and returns a list; enhancer/denoiser take and give [0, 1] images,
    the detector takes 0..255 pixels (as shared.models.Pipeline)."""
    detect, restore = units.chain(enhancer, denoiser, detector, pixel_scale)
    return detect, lambda x: [restore(x)]
