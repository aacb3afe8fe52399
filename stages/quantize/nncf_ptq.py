"""NNCF post-training quantization (``nncf.quantize``), the second backend next to AIMET.

``from_edgy(path)`` reads the quantization part of an EDGY-style JSON config
(``compression``: one entry or a list; only entries with ``"algorithm": "quantization"``
are used, others are ignored) and maps it to ``nncf.quantize`` arguments:
``preset`` (performance | mixed, or derived from weights/activations ``mode``),
``initializer.range.num_init_samples`` -> ``subset_size``, ``ignored_scopes`` ->
``nncf.IgnoredScope(names=...)``.  Bit widths other than 8 and unknown keys are errors
naming the file and key (nncf.quantize is INT8 only).
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch

KNOWN = {"algorithm", "preset", "initializer", "weights", "activations", "ignored_scopes",
         "target_device", "export_to_onnx_standard_ops", "overflow_fix", "quantize_inputs",
         "quantize_outputs", "per_channel"}
MODE_KEYS = {"mode", "bits", "per_channel", "signed"}


class NNCFConfigError(ValueError):
    pass


def from_edgy(path: str | Path | None, subset_size: int) -> dict:
    """nncf.quantize kwargs (preset, subset_size, ignored) from an EDGY JSON, or defaults."""
    args = {"preset": "performance", "subset_size": subset_size, "ignored": [], "source": None}
    if not path:
        return args
    p = Path(path)
    if not p.is_absolute() and not p.exists():
        from shared.config import REPO
        p = REPO / p          # configs/edgy/... relative to the repo (/app in the image)
    try:
        cfg = json.loads(p.read_text())
    except OSError as e:
        raise NNCFConfigError(f"{p}: cannot read NNCF/EDGY config ({e.strerror})") from None
    except json.JSONDecodeError as e:
        raise NNCFConfigError(f"{p}:{e.lineno}: invalid JSON ({e.msg})") from None
    comp = cfg.get("compression", [])
    comp = [comp] if isinstance(comp, dict) else comp
    entries = [c for c in comp if isinstance(c, dict) and c.get("algorithm") == "quantization"]
    if not entries:
        raise NNCFConfigError(f"{p}: compression: no entry with \"algorithm\": \"quantization\"")
    q = entries[0]
    unknown = sorted(set(q) - KNOWN)
    if unknown:
        raise NNCFConfigError(f"{p}: compression[quantization].{unknown[0]}: unknown key (known: {', '.join(sorted(KNOWN))})")
    modes = {}
    for part in ("weights", "activations"):
        sub = q.get(part, {})
        bad = sorted(set(sub) - MODE_KEYS)
        if bad:
            raise NNCFConfigError(f"{p}: compression[quantization].{part}.{bad[0]}: unknown key (known: {', '.join(sorted(MODE_KEYS))})")
        if sub.get("bits", 8) != 8:
            raise NNCFConfigError(f"{p}: compression[quantization].{part}.bits: nncf.quantize is INT8 only, got {sub['bits']}")
        modes[part] = sub.get("mode", "symmetric")
    preset = q.get("preset") or ("mixed" if modes["activations"] == "asymmetric" else "performance")
    if preset not in ("performance", "mixed"):
        raise NNCFConfigError(f"{p}: compression[quantization].preset: {preset!r} is not one of performance, mixed")
    init = q.get("initializer", {}).get("range", {})
    args["weights_per_channel"] = q.get("weights", {}).get("per_channel")
    args.update(preset=preset, subset_size=int(init.get("num_init_samples", subset_size)),
                ignored=list(q.get("ignored_scopes", [])), source=str(p))
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
