"""EDGY's NNCF JSON configs (004_9375dccc34cd3b69.txt), mapped onto what exists today.

EDGY compressed its models with NNCF 2.x ``create_compressed_model(model, NNCFConfig.from_json(f))``.
NNCF 3 removed that API; this module reads the same JSON files and turns each
``compression`` entry into a job (the prune stage runs the sparsity and pruning jobs, the
quantize stage the quantization job):

==================== ========================================================================
``magnitude_sparsity`` ``nncf.prune`` UNSTRUCTURED_MAGNITUDE_GLOBAL (``sparsity_level_setting_mode``
                       ``global``, NNCF 2's default) or _LOCAL; target ``params.sparsity_target``
``rb_sparsity``        ``nncf.prune`` UNSTRUCTURED_REGULARIZATION_BASED + ``RBLoss(target)``
``filter_pruning``     torch-pruning, ``params.filter_importance`` L1 / L2 / geometric_median (FPGM),
                       ratio ``params.pruning_target``, steps ``params.pruning_steps``
``quantization``       ``nncf.quantize`` in the quantize stage: ``preset`` (performance | mixed, or
                       derived from the activations ``mode``), ``initializer.range.num_init_samples``
                       -> subset size, ``ignored_scopes``; INT8 only
==================== ========================================================================

Keys NNCF 2 accepted but that change nothing here (schedules, initializers, scopes) are
accepted and recorded; any other key is an :class:`EdgyConfigError` naming the file and key.
"""
from __future__ import annotations

import json
from pathlib import Path

from shared.errors import ExpectedError

TOP_KEYS = {"model", "input_info", "compression", "target_device", "log_dir", "pretrained",
            "epochs", "batch_size", "optimizer", "dataset", "num_classes", "accuracy_aware_training",
            "disable_compression", "seed", "description"}
COMMON_ALGO_KEYS = {"algorithm", "params", "ignored_scopes", "target_scopes",
                    "compression_lr_multiplier", "validate_scopes"}
ALGO_KEYS = {
    "magnitude_sparsity": {"sparsity_init", "initializer"},
    "rb_sparsity": {"sparsity_init"},
    "filter_pruning": {"pruning_init", "initializer"},
    "quantization": {"initializer", "weights", "activations", "preset", "overflow_fix",
                     "export_to_onnx_standard_ops", "quantize_inputs", "quantize_outputs",
                     "scope_overrides", "target_device", "per_channel"},
}
PARAM_KEYS = {
    "magnitude_sparsity": {"schedule", "sparsity_target", "sparsity_target_epoch", "sparsity_freeze_epoch",
                           "multistep_steps", "multistep_sparsity_levels", "sparsity_level_setting_mode",
                           "weight_importance", "update_per_optimizer_step", "steps_per_epoch", "patience",
                           "power", "concave"},
    "rb_sparsity": {"schedule", "sparsity_target", "sparsity_target_epoch", "sparsity_freeze_epoch",
                    "multistep_steps", "multistep_sparsity_levels", "sparsity_level_setting_mode",
                    "update_per_optimizer_step", "steps_per_epoch", "patience", "power", "concave"},
    "filter_pruning": {"schedule", "pruning_target", "pruning_flops_target", "pruning_steps",
                       "filter_importance", "prune_first_conv", "prune_last_conv", "prune_downsample_convs",
                       "prune_batch_norms", "all_weights", "interlayer_ranking_type", "weight_importance",
                       "pruning_mode", "zero_grad", "num_init_steps", "legr_params", "save_ranking_coeffs",
                       "load_ranking_coeffs"},
}
QUANT_MODE_KEYS = {"mode", "bits", "per_channel", "signed"}
IMPORTANCE = {"l1": "l1", "l2": "l2", "geometric_median": "fpgm"}


class EdgyConfigError(ExpectedError, ValueError):
    """A problem in an EDGY NNCF config, with the file and the key in the message."""


def _check(keys, allowed, path, where):
    for k in keys:
        if k not in allowed:
            raise EdgyConfigError(f"{path}: {where}{k}: unsupported key "
                                  f"(known here: {', '.join(sorted(allowed))})")


def _ratio(value, path, key) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < 1:
        raise EdgyConfigError(f"{path}: {key}: must be a number in [0, 1), got {value!r}")
    return float(value)


def _job(algo: dict, i: int, path: str) -> dict:
    where = f"compression[{i}]."
    name = algo.get("algorithm")
    if name not in ALGO_KEYS:
        raise EdgyConfigError(f"{path}: {where}algorithm: unsupported algorithm {name!r} "
                              f"(supported: {', '.join(ALGO_KEYS)})")
    _check(algo, COMMON_ALGO_KEYS | ALGO_KEYS[name], path, where)
    params = algo.get("params", {}) or {}
    if not isinstance(params, dict):
        raise EdgyConfigError(f"{path}: {where}params: must be a mapping")
    if name == "quantization":
        return _quantization_job(algo, path, where)
    _check(params, PARAM_KEYS[name], path, where + "params.")
    pw = where + "params."
    if name == "magnitude_sparsity":
        level = params.get("sparsity_level_setting_mode", "global")
        if level not in ("global", "local"):
            raise EdgyConfigError(f"{path}: {pw}sparsity_level_setting_mode: 'global' or 'local', got {level!r}")
        target = params.get("sparsity_target", algo.get("sparsity_init"))
        if target is None:
            raise EdgyConfigError(f"{path}: {pw}sparsity_target: missing (or give sparsity_init)")
        steps = len(params.get("multistep_steps", [])) + 1 if params.get("schedule") == "multistep" else None
        return {"kind": "sparsity", "mode": f"magnitude_{level}", "ratio": _ratio(target, path, pw + "sparsity_target"),
                "init": _ratio(algo.get("sparsity_init", 0.0), path, where + "sparsity_init"),
                "steps": steps or params.get("sparsity_target_epoch"), "algorithm": name}
    if name == "rb_sparsity":
        target = params.get("sparsity_target", algo.get("sparsity_init"))
        if target is None:
            raise EdgyConfigError(f"{path}: {pw}sparsity_target: missing")
        return {"kind": "sparsity", "mode": "rb", "ratio": _ratio(target, path, pw + "sparsity_target"),
                "steps": params.get("sparsity_target_epoch"), "algorithm": name,
                "lr_multiplier": algo.get("compression_lr_multiplier")}
    if name == "filter_pruning":
        if "pruning_flops_target" in params:
            raise EdgyConfigError(f"{path}: {pw}pruning_flops_target: not supported (FLOPs-targeted pruning); "
                                  "give pruning_target (channel ratio) instead")
        imp = str(params.get("filter_importance", "L2")).lower()
        if imp not in IMPORTANCE:
            raise EdgyConfigError(f"{path}: {pw}filter_importance: {params['filter_importance']!r} is not one of "
                                  "L1, L2, geometric_median")
        target = params.get("pruning_target", algo.get("pruning_init"))
        if target is None:
            raise EdgyConfigError(f"{path}: {pw}pruning_target: missing (or give pruning_init)")
        return {"kind": "structured", "importance": IMPORTANCE[imp],
                "ratio": _ratio(target, path, pw + "pruning_target"), "steps": params.get("pruning_steps"),
                "keep_first_last": not (params.get("prune_first_conv", False) or params.get("prune_last_conv", False)),
                "algorithm": name}
    raise AssertionError(name)


def _quantization_job(q: dict, path: str, where: str) -> dict:
    """``nncf.quantize`` arguments; bit widths other than 8 are errors (nncf.quantize is INT8 only)."""
    modes = {}
    for part in ("weights", "activations"):
        sub = q.get(part, {}) or {}
        if not isinstance(sub, dict):
            raise EdgyConfigError(f"{path}: {where}{part}: must be a mapping")
        _check(sub, QUANT_MODE_KEYS, path, f"{where}{part}.")
        if sub.get("bits", 8) != 8:
            raise EdgyConfigError(f"{path}: {where}{part}.bits: nncf.quantize is INT8 only, got {sub['bits']}")
        modes[part] = sub.get("mode", "symmetric")
    preset = q.get("preset") or ("mixed" if modes["activations"] == "asymmetric" else "performance")
    if preset not in ("performance", "mixed"):
        raise EdgyConfigError(f"{path}: {where}preset: {preset!r} is not one of performance, mixed")
    samples = ((q.get("initializer") or {}).get("range") or {}).get("num_init_samples")
    if samples is not None and (not isinstance(samples, int) or samples < 1):
        raise EdgyConfigError(f"{path}: {where}initializer.range.num_init_samples: a positive integer, got {samples!r}")
    return {"kind": "quantization", "algorithm": "quantization", "preset": preset, "subset_size": samples,
            "ignored": list(q.get("ignored_scopes", [])),
            "weights_per_channel": (q.get("weights") or {}).get("per_channel"),
            "note": "run by the quantize stage (nncf.quantize)"}


def load_edgy(path: str | Path) -> list[dict]:
    """Read one EDGY/NNCF 2 JSON config; return its jobs (see the module docstring)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise EdgyConfigError(f"{path}: cannot read ({e.strerror})") from None
    except json.JSONDecodeError as e:
        raise EdgyConfigError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None
    if not isinstance(data, dict):
        raise EdgyConfigError(f"{path}: top level must be an object")
    _check(data, TOP_KEYS, path, "")
    comp = data.get("compression")
    if comp is None:
        raise EdgyConfigError(f"{path}: compression: missing")
    comp = [comp] if isinstance(comp, dict) else comp
    if not isinstance(comp, list) or not all(isinstance(c, dict) for c in comp):
        raise EdgyConfigError(f"{path}: compression: must be an object or a list of objects")
    jobs = [_job(c, i, str(path)) for i, c in enumerate(comp)]
    for job in jobs:
        for key in ("steps",):
            if job.get(key) is not None and (not isinstance(job[key], int) or job[key] < 1):
                raise EdgyConfigError(f"{path}: {job['algorithm']}: steps/epochs must be a positive integer, "
                                      f"got {job[key]!r}")
    return jobs
