"""The model bundle: one self-describing folder per chained system, read and written by every stage.

A bundle is what a stage hands the next one instead of a pickled module (nanoGPT's
"a checkpoint that describes itself", MMDeploy's deploy record)::

    <dir>/bundle.json     format, base architecture (``build_models`` config), input size,
                          per part: role, input range, parameter count, conv widths, file;
                          ``made_by`` (stage, method, ... how these weights were made)
    <dir>/enhancer.pt     state dicts (``torch.save(module.state_dict())``), loaded with
    <dir>/denoiser.pt     ``weights_only=True``
    <dir>/detector.pt

Pruned nets have narrower layers than their base config says, and depth-pruned ones fewer
residual blocks (``parts.<part>.dropped``: the blocks ``load_bundle`` replaces by the identity).  ``load_bundle`` builds the
base architecture, then ``conform``s every Conv2d / ConvTranspose2d / BatchNorm2d to the
shapes in the state dict before loading it, so a reader needs no knowledge of how the
widths were chosen (torch-pruning's output loads like train's).  ``save_bundle`` checks
that this reproduces the module it was given (layer by layer) before it returns.

The base config travels with the module: ``load_bundle`` sets ``pipe.base_config`` (a
``copy.deepcopy`` keeps it), so a stage that loads a bundle, prunes or fine-tunes a copy
and saves it again need not pass ``base``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn as nn

from .pipeline import Pipeline, build_models
from .restoration import drop_blocks, dropped_blocks

from shared.errors import ExpectedError
from shared.manifest import read_json
from shared.units import PIXEL_SCALE

FORMAT = "jmmc-bundle/1"
FILE = "bundle.json"
PARTS = ("enhancer", "denoiser", "detector")
ROLES = {
    "enhancer": {"role": "low-light enhancer: degraded image -> enhanced image", "input_range": [0.0, 1.0]},
    "denoiser": {"role": "denoiser: enhanced image -> denoised image", "input_range": [0.0, 1.0]},
    "detector": {"role": "YuNet face detector: 255 x denoised image (channel order as given) -> cls/obj/bbox/kps",
                 "input_range": [0.0, PIXEL_SCALE]},
}


class BundleError(ExpectedError, ValueError):
    """A bundle that cannot be read or written; ``str()`` names the file."""


def _widths(m: nn.Module) -> dict[str, int]:
    return {n: c.out_channels for n, c in m.named_modules() if isinstance(c, (nn.Conv2d, nn.ConvTranspose2d))}


def describe(pipe: Pipeline) -> dict[str, dict]:
    """Per part: role, input range, parameter count, output width of every convolution and, where
    depth pruning removed residual blocks, their names (``dropped``)."""
    out = {}
    for p in PARTS:
        m = getattr(pipe, p)
        dropped = dropped_blocks(m)
        out[p] = {**ROLES[p], "params": int(sum(t.numel() for t in m.parameters())), "widths": _widths(m),
                  **({"dropped": dropped} if dropped else {})}
    return out


def is_bundle(path: Path) -> bool:
    return (Path(path) / FILE).is_file()


def _json_default(v):
    if isinstance(v, (int, float)) or hasattr(v, "item"):
        return v.item() if hasattr(v, "item") else float(v)
    if isinstance(v, (tuple, set)):
        return list(v)
    return str(v)


def _signature(m: nn.Module) -> dict[str, tuple]:
    """What a state dict does not pin down: conv groups/strides/paddings, BN settings, the module tree."""
    out = {}
    for n, c in m.named_modules():
        if isinstance(c, (nn.Conv2d, nn.ConvTranspose2d)):
            out[n] = (type(c).__name__, c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding,
                      c.dilation, c.groups, c.bias is not None)
        elif isinstance(c, nn.BatchNorm2d):
            out[n] = ("BatchNorm2d", c.num_features, c.eps, c.affine)
        else:
            out[n] = (type(c).__name__,)
    return out


def save_bundle(dir_: Path, pipe: Pipeline, base: Mapping[str, Any] | None, made_by: Mapping[str, Any],
                extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``pipe`` as a bundle in ``dir_`` (created); returns the path of ``bundle.json``.

    ``base`` is the ``build_models`` config the architecture started from (None: the
    ``pipe.base_config`` that ``load_bundle`` set); ``made_by`` says how it was made
    (``{"stage": ..., "method": ...}``, plus whatever the stage knows); ``extra`` adds
    top-level keys.  Raises ``BundleError`` when the bundle would not load back into the
    same architecture."""
    dir_ = Path(dir_)
    base = base if base is not None else getattr(pipe, "base_config", None)
    if base is None:
        raise BundleError(f"{dir_ / FILE}: no base architecture (pass base=, or save a Pipeline that "
                          "load_bundle returned or a copy of one)")
    if "stage" not in made_by:
        raise BundleError(f"{dir_ / FILE}: made_by needs a 'stage' key, got {dict(made_by)!r}")
    dir_.mkdir(parents=True, exist_ok=True)
    parts = describe(pipe)
    for p in PARTS:
        sd = {k: v.detach().cpu() for k, v in getattr(pipe, p).state_dict().items()}
        torch.save(sd, dir_ / f"{p}.pt")
        parts[p]["file"] = f"{p}.pt"
    rec = {"format": FORMAT, "base": json.loads(json.dumps(dict(base), default=_json_default)),
           "input_size": list(pipe.input_size), "swap_rb": bool(pipe.swap_rb), "clamp": bool(pipe.clamp),
           "parts": parts, "made_by": dict(made_by), "torch": torch.__version__,
           **(dict(extra) if extra else {})}
    path = dir_ / FILE
    path.write_text(json.dumps(rec, indent=1, default=_json_default) + "\n")
    back, _ = load_bundle(dir_)
    for p in PARTS:
        want, got = _signature(getattr(pipe, p)), _signature(getattr(back, p))
        if want != got:
            diff = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))[:3]
            raise BundleError(f"{path}: the {p} does not load back as saved (first differences: "
                              + "; ".join(f"{k}: saved {want.get(k)}, loads as {got.get(k)}" for k in diff) + ")")
    pipe.base_config = rec["base"]
    return path


def read_record(dir_: Path) -> dict:
    """The checked ``bundle.json`` of ``dir_``."""
    path = Path(dir_) / FILE
    if not path.is_file():
        raise BundleError(f"{path}: missing (not a model bundle; the producing stage writes it)")
    rec = read_json(path, BundleError, "bundle record")
    if not isinstance(rec, dict):
        raise BundleError(f"{path}: not a bundle record (a JSON object), got {type(rec).__name__}")
    if rec.get("format") != FORMAT:
        raise BundleError(f"{path}: format {rec.get('format')!r}, expected {FORMAT!r}")
    for key in ("base", "parts", "made_by"):
        if key not in rec:
            raise BundleError(f"{path}: key {key!r} missing")
    missing = [p for p in PARTS if not isinstance(rec["parts"].get(p), dict)]
    if missing:
        raise BundleError(f"{path}: parts: {', '.join(missing)} missing")
    return rec


def _new_conv(old: nn.Conv2d, w: torch.Tensor, has_bias: bool) -> nn.Conv2d:
    out_c = w.shape[0]
    depthwise = old.groups > 1 and old.groups == old.in_channels == old.out_channels
    groups, in_c = (out_c, out_c) if depthwise else (old.groups, w.shape[1] * old.groups)
    return nn.Conv2d(in_c, out_c, old.kernel_size, old.stride, old.padding, old.dilation, groups,
                     bias=has_bias, padding_mode=old.padding_mode)


def _new_deconv(old: nn.ConvTranspose2d, w: torch.Tensor, has_bias: bool) -> nn.ConvTranspose2d:
    in_c, out_c = w.shape[0], w.shape[1] * old.groups
    return nn.ConvTranspose2d(in_c, out_c, old.kernel_size, old.stride, old.padding, old.output_padding,
                              old.groups, bias=has_bias, dilation=old.dilation)


def conform(module: nn.Module, state: Mapping[str, torch.Tensor]) -> nn.Module:
    """Resize every conv / BN of ``module`` in place to the shapes of ``state`` (a state dict)."""
    for name, child in list(module.named_modules()):
        if not name:
            continue
        prefix = name + "."
        w = state.get(prefix + "weight")
        if isinstance(child, nn.ConvTranspose2d) and w is not None and w.shape != child.weight.shape:
            new = _new_deconv(child, w, prefix + "bias" in state)
        elif isinstance(child, nn.Conv2d) and w is not None and w.shape != child.weight.shape:
            new = _new_conv(child, w, prefix + "bias" in state)
        elif isinstance(child, nn.BatchNorm2d):
            ref = w if w is not None else state.get(prefix + "running_mean")
            if ref is None or ref.shape[0] == child.num_features:
                continue
            new = nn.BatchNorm2d(ref.shape[0], child.eps, child.momentum, child.affine, child.track_running_stats)
        else:
            continue
        parent_name, _, leaf = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        setattr(parent, leaf, new)
    return module


def load_bundle(dir_: Path) -> tuple[Pipeline, dict]:
    """(the Pipeline on CPU in eval mode, with ``.base_config`` set; the bundle record)."""
    dir_ = Path(dir_)
    rec = read_record(dir_)
    try:
        pipe = build_models({**rec["base"], **({"input_size": rec["input_size"]} if "input_size" in rec else {}),
                             "swap_rb": rec.get("swap_rb", False), "clamp": rec.get("clamp", False)})
    except (KeyError, ValueError, TypeError) as e:
        raise BundleError(f"{dir_ / FILE}: base: cannot build the models ({e})") from None
    for p in PARTS:
        dropped = rec["parts"][p].get("dropped", [])
        if dropped:
            try:
                drop_blocks(getattr(pipe, p), dropped)
            except ValueError as e:
                raise BundleError(f"{dir_ / FILE}: parts.{p}.dropped: {e}") from None
        f = dir_ / rec["parts"][p].get("file", f"{p}.pt")
        if not f.is_file():
            raise BundleError(f"{f}: missing state dict of {p} (listed in {dir_ / FILE})")
        try:
            state = torch.load(f, map_location="cpu", weights_only=True)
        except Exception as e:  # truncated / not a torch file / pickled objects beyond tensors
            raise BundleError(f"{f}: cannot read the state dict of {p} ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''})") from None
        if not isinstance(state, Mapping):
            raise BundleError(f"{f}: not a state dict (a {type(state).__name__})")
        part = conform(getattr(pipe, p), state)
        try:
            part.load_state_dict(state)
        except RuntimeError as e:
            raise BundleError(f"{f}: does not fit the {p} of {dir_ / FILE} ({str(e).splitlines()[0]})") from None
    pipe.base_config = rec["base"]
    return pipe.eval(), rec
