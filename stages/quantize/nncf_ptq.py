"""NNCF post-training quantization (``nncf.quantize``), the second backend next to AIMET.

``from_edgy(path)`` takes the quantization entry of an EDGY-style JSON config, read and
checked by ``shared.edgy`` (the same reader the prune stage uses for its entries), as
``nncf.quantize`` arguments; ``ignored_scopes`` become ``nncf.IgnoredScope(names=...)``.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch

from shared.edgy import EdgyConfigError, load_edgy

def from_edgy(path: str | Path | None, subset_size: int) -> dict:
    """nncf.quantize kwargs (preset, subset_size, ignored) from an EDGY JSON, or defaults."""
    args = {"preset": "performance", "subset_size": subset_size, "ignored": [], "source": None}
    if not path:
        return args
    p = Path(path)
    if not p.is_absolute() and not p.exists():
        from shared.config import REPO
        p = REPO / p          # configs/edgy/... relative to the repo (/app in the image)
    jobs = [j for j in load_edgy(p) if j["kind"] == "quantization"]
    if not jobs:
        raise EdgyConfigError(f"{p}: compression: no entry with \"algorithm\": \"quantization\"")
    q = jobs[0]
    args.update(preset=q["preset"], subset_size=q["subset_size"] or subset_size, ignored=q["ignored"],
                weights_per_channel=q["weights_per_channel"], source=str(p))
    return args


def quantize(model: torch.nn.Module, calib: list[torch.Tensor], args: dict) -> torch.nn.Module:
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, QuantizationParameters
    samples = [x[i:i + 1] for x in calib for i in range(len(x))]
    kw = {"preset": nncf.QuantizationPreset(args["preset"]), "subset_size": min(args["subset_size"], len(samples))}
    # activations per tensor: ONNX Runtime's fused QLinearConv takes only a scalar input zero point
    kw["advanced_parameters"] = AdvancedQuantizationParameters(
        activations_quantization_params=QuantizationParameters(per_channel=False),
        weights_quantization_params=QuantizationParameters(per_channel=args.get("weights_per_channel")))
    if args["ignored"]:
        kw["ignored_scope"] = nncf.IgnoredScope(names=args["ignored"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return nncf.quantize(model.eval(), nncf.Dataset(samples), **kw)


def export_onnx(qmodel: torch.nn.Module, name: str, dummy: torch.Tensor, path: Path, opset: int) -> Path:
    """ONNX with QuantizeLinear/DequantizeLinear pairs (NNCF's default is its own FakeQuantize op,
    which ONNX Runtime cannot load)."""
    from nncf.torch.quantization.layers import QuantizerExportMode
    from stages.quantize.onnx_io import export_fp32
    n = 0
    for m in qmodel.modules():
        if hasattr(m, "set_export_mode"):
            m.set_export_mode(QuantizerExportMode.ONNX_QUANTIZE_DEQUANTIZE_PAIRS)
            n += 1
    if not n:
        raise RuntimeError("NNCF export: no quantizer modules found in the quantized model")
    return export_fp32(qmodel, name, dummy, path, opset)
