"""Build the pruned variants of the trained chain (each from a fresh copy of the FP32 chain).

* ``independent``: enhancer, denoiser and detector pruned one by one (global ranking inside each
  model), each fine-tuned on its own loss after every step, then chained;
* ``joint`` (JMMC): the whole ``Pipeline`` pruned as one dependency graph (global ranking across
  the three models), fine-tuned end to end with ``shared.jmmc.JointLoss`` on degraded images;
* ``sparse``: NNCF unstructured sparsity on the chain (``stages.prune.sparsity``).
"""
from __future__ import annotations

import copy
import logging
from dataclasses import dataclass

import torch

from shared.config import ConfigError
from shared.data import Split
from stages.prune.finetuners import INDEPENDENT_VARIANT, JointTerms, independent_loss, run_finetune
from stages.prune.structured import ignored_layers, prune_iterative


@dataclass
class Env:
    train: Split
    calib: Split
    size: tuple[int, int]
    cfg: dict          # the prune config section
    seed: int
    log: logging.Logger
    device: torch.device

    def example(self) -> torch.Tensor:
        return torch.rand(1, 3, *self.size, generator=torch.Generator().manual_seed(self.seed)).to(self.device)


def _epochs(env: Env, step: int, steps: int) -> int:
    ft = env.cfg["finetune"]
    return ft["epochs"] + (ft["final_epochs"] if step == steps else 0)


def independent(fp32, ratio: float, importance: str, env: Env, name: str, steps: int | None = None,
                keep_first_last: bool | None = None) -> tuple[torch.nn.Module, dict]:
    cfg, steps = env.cfg, steps or env.cfg["steps"]
    keep = cfg["keep_first_last"] if keep_first_last is None else keep_first_last
    pipe = copy.deepcopy(fp32).to(env.device)
    x = env.example()
    history = {}
    for part in ("enhancer", "denoiser", "detector"):
        model = getattr(pipe, part)
        kind = "detector" if part == "detector" else "restoration"
        example = x * 255.0 if kind == "detector" else x
        loss = independent_loss(part)

        def ft(step, model=model, loss=loss, part=part):
            return run_finetune(model, env.train, loss, cfg["finetune"], INDEPENDENT_VARIANT[part],
                                _epochs(env, step, steps), env.seed + step, env.log, f"{name}/{part}")
        ignored = ignored_layers(model, kind, keep, cfg["keep_detector_head"])
        history[part] = prune_iterative(model, example, ratio, steps, importance, ignored, ft, env.log,
                                        f"{name}/{part}", cfg["max_layer_ratio"])
    return pipe.cpu().eval(), {"mode": "independent", "ratio": ratio, "importance": importance,
                               "steps": steps, "history": history}


def joint(fp32, ratio: float, importance: str, weights, env: Env, name: str, steps: int | None = None,
          keep_first_last: bool | None = None) -> tuple[torch.nn.Module, dict]:
    cfg, steps = env.cfg, steps or env.cfg["steps"]
    keep = cfg["keep_first_last"] if keep_first_last is None else keep_first_last
    pipe = copy.deepcopy(fp32).to(env.device)
    loss = JointTerms(*weights)
    finetunes = []

    def ft(step):
        finetunes.append(run_finetune(pipe, env.train, loss, cfg["finetune"], cfg["finetune"]["variant"],
                                      _epochs(env, step, steps), env.seed + step, env.log, name))
    ignored = ignored_layers(pipe, "pipeline", keep, cfg["keep_detector_head"])
    history = prune_iterative(pipe, env.example(), ratio, steps, importance, ignored, ft, env.log, name,
                              cfg["max_layer_ratio"])
    return pipe.cpu().eval(), {"mode": "joint", "ratio": ratio, "importance": importance, "steps": steps,
                               "weights": {"w_det": weights[0], "w_den": weights[1], "w_lle": weights[2]},
                               "history": history, "finetune": finetunes}


def sparse(fp32, mode: str, ratio: float, weights, env: Env, name: str, steps: int | None = None,
           init: float = 0.0, lr_mult: float | None = None) -> tuple[torch.nn.Module, dict]:
    from stages.prune.sparsity import sparsify  # NNCF is imported only when sparsity is asked for
    sc = env.cfg["sparsity"]
    ft_cfg = dict(env.cfg["finetune"])
    pipe = copy.deepcopy(fp32).to(env.device)
    plain, info = sparsify(pipe, mode, ratio, steps or sc["steps"], env.example(), env.train, env.calib, ft_cfg,
                           weights, env.seed, env.log, name, init=init,
                           lr_mult=sc["rb_lr_multiplier"] if lr_mult is None else lr_mult)
    return plain.cpu().eval(), info


def check_weights(weights) -> list[tuple[float, float, float]]:
    out = []
    for i, w in enumerate(weights):
        if (not isinstance(w, list) or len(w) != 3
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in w)):
            raise ConfigError(f"prune.joint.weights[{i}]: must be [w_det, w_den, w_lle] (three numbers >= 0), got {w!r}")
        out.append(tuple(float(v) for v in w))
    return out


def tag(ratio: float) -> str:
    return f"r{round(100 * ratio):02d}"


def wtag(w) -> str:
    return "w" + "-".join(f"{v:g}" for v in w)
