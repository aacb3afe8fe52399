"""AIMET post-training quantization of one unit for one grid cell (aimet_torch v2 API).

technique: ``none`` | ``bn_fold`` (``fold_all_batch_norms``) | ``cle`` (``equalize_model``:
CLS + high-bias fold, folds BN itself) | ``bn_fold+cle`` (BN fold, then CLS/HBF on the
folded model via ``equalize_bn_folded_model``); optional AdaRound
(``Adaround.apply_adaround`` writes param encodings that the sim then freezes);
``QuantizationSimModel`` + ``compute_encodings`` on the calibration tensors.
The unit is deep-copied first: the FP32 candidate is never modified.
"""
from __future__ import annotations

import copy
import logging
from pathlib import Path

import torch

log = logging.getLogger("stages.quantize")


def quant_scheme(name: str):
    from aimet_common.defs import QuantScheme
    return {"tf_enhanced": QuantScheme.post_training_tf_enhanced, "min_max": QuantScheme.min_max}[name]


def prepare(model: torch.nn.Module, technique: str, dummy: torch.Tensor) -> torch.nn.Module:
    """Apply the pre-quantization transform in place on a copy; returns the copy."""
    from aimet_torch.batch_norm_fold import fold_all_batch_norms
    from aimet_torch.cross_layer_equalization import equalize_bn_folded_model, equalize_model
    model = copy.deepcopy(model).eval()
    if technique == "none":
        return model
    if technique == "bn_fold":
        fold_all_batch_norms(model, None, dummy_input=dummy)
    elif technique == "cle":
        equalize_model(model, dummy_input=dummy)
    elif technique == "bn_fold+cle":
        pairs = fold_all_batch_norms(model, None, dummy_input=dummy)
        equalize_bn_folded_model(model, None, pairs, dummy_input=dummy)
    else:
        raise ValueError(f"unknown technique {technique!r}")
    return model


def calibrate_fn(calib: list[torch.Tensor]):
    def run(m):
        with torch.no_grad():
            for x in calib:
                m(x)
    return run


def build_sim(model, dummy, cell, calib: list[torch.Tensor], workdir: Path, ada_iters: int = 200,
              compute: bool = True):
    """QuantizationSimModel of ``model`` (already prepared) for ``cell``; encodings computed."""
    from aimet_torch.quantsim import QuantizationSimModel
    scheme = quant_scheme(cell.scheme)
    if cell.adaround:
        from aimet_torch.adaround.adaround_weight import Adaround, AdaroundParameters
        torch.manual_seed(cell.seed)
        params = AdaroundParameters(data_loader=calib, num_batches=len(calib),
                                    default_num_iterations=ada_iters)
        workdir.mkdir(parents=True, exist_ok=True)
        model = Adaround.apply_adaround(model, dummy, params, path=str(workdir), filename_prefix="adaround",
                                        default_param_bw=cell.param_bw, default_quant_scheme=scheme)
    sim = QuantizationSimModel(model, dummy_input=dummy, quant_scheme=scheme,
                               default_param_bw=cell.param_bw, default_output_bw=cell.output_bw)
    if cell.adaround:
        sim.set_and_freeze_param_encodings(str(workdir / "adaround.encodings"))
    if compute:
        sim.compute_encodings(calibrate_fn(calib))
    return sim


def ptq(unit, cell, calib, workdir: Path, ada_iters: int):
    """(sim, prepared FP32 model) for one grid cell."""
    dummy = calib[0][:1]
    prepared = prepare(unit, cell.technique, dummy)
    return build_sim(prepared, dummy, cell, calib, workdir, ada_iters), prepared
