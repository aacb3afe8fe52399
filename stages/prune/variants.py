"""Build the pruned variants of the trained chain (each from a fresh copy of the FP32 chain).

* ``independent``: enhancer, denoiser and detector pruned one by one (global ranking inside each
  model), each fine-tuned on its own loss after every step, then chained;
* ``joint`` (JMMC): the whole ``Pipeline`` pruned as one dependency graph (global ranking across
  the three models), fine-tuned end to end with ``shared.jmmc.JointLoss`` on degraded images;
* ``sparse``: NNCF unstructured sparsity on the chain (``stages.prune.sparsity``);
* ``budget``: the joint variant at the largest ratio whose validation AP drop stays inside
  ``prune.budget.max_ap_drop`` (``stages.prune.budget.search``; see ``budget_joint``).

Structured variants share the options of ``prune``: importance (``taylor`` reads gradients of the
variant's own loss on training batches), ``round_to``, the sparsity-learning ``warmup`` and the
distillation from the FP32 chain (``distill``: the joint loss's KD terms; per model for the
independent variant). With ``prune.depth.blocks`` both first lose the same residual blocks of the
restoration nets (``stages.prune.depth``), planned on the FP32 chain.
"""
from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass
from typing import Callable

import torch

from shared import units
from shared.config import ConfigError
from shared.models.restoration import dropped_blocks
from shared.data import Split
from stages.prune import depth
from stages.prune.finetuners import JointTerms, grad_fn, independent_loss, run_finetune
from stages.prune.structured import ignored_layers, prune_iterative, sparsity_warmup


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


def _structured(model, example, ratio, steps, importance, ignored, loss, variant, ft, env: Env, name: str,
                warmup: bool = True) -> dict:
    """Warm-up (if configured and ``warmup``), then iterative pruning with ``ft(step)`` after each step;
    returns {history (per step), warmup_history (per warm-up epoch, when it ran)}."""
    cfg, ftc = env.cfg, env.cfg["finetune"]
    warm = cfg["warmup"]
    out = {}
    if warmup and warm["epochs"] > 0:
        out["warmup_history"] = sparsity_warmup(model, example, ignored, warm["reg"], lambda hook: run_finetune(
            model, env.train, loss, ftc, variant, warm["epochs"], env.seed + 1000, env.log, f"{name} warm-up",
            after_backward=hook))
    grads = grad_fn(model, env.train, loss, ftc, variant, cfg["taylor_batches"], env.seed) if importance == "taylor" \
        else None
    out["history"] = prune_iterative(model, example, ratio, steps, importance, ignored, ft, env.log, name,
                                     cfg["max_layer_ratio"], cfg["round_to"], grads)
    return out


def _warm(env: Env, ran: bool = True) -> dict | None:
    """What the warm-up was (for the bundle's made_by); None when off."""
    w = env.cfg["warmup"]
    return {"epochs": w["epochs"], "reg": w["reg"]} if ran and w["epochs"] > 0 else None


def _depth(pipe, source, env: Env) -> dict | None:
    """Depth pruning (``prune.depth``) of ``pipe``, planned on ``source``'s nets (the FP32 chain);
    None when off or when ``pipe`` already lost its blocks (the budget search pruning on)."""
    d = env.cfg["depth"]
    if not d["blocks"] or any(dropped_blocks(getattr(pipe, p)) for p in depth.RESTORATION):
        return None
    planned = depth.plan(source, env.train, d["blocks"], d["images"])
    depth.apply(pipe, planned)
    env.log.info("depth pruning: %s", "; ".join(f"{p}: {', '.join(v['dropped'])}" for p, v in planned.items()))
    return {"blocks": d["blocks"], "images": d["images"], **planned}


def _kd(env: Env) -> dict:
    d = env.cfg["distill"]
    return {"w_img": d["w_img"], "w_det": d["w_det"]} if d["enabled"] else {}


def independent(fp32, ratio: float, importance: str, env: Env, name: str, steps: int | None = None,
                keep_first_last: bool | None = None) -> tuple[torch.nn.Module, dict]:
    cfg, steps = env.cfg, steps or env.cfg["steps"]
    keep = cfg["keep_first_last"] if keep_first_last is None else keep_first_last
    pipe = copy.deepcopy(fp32).to(env.device)
    deep = _depth(pipe, fp32, env)
    x = env.example()
    kd = _kd(env) if cfg["distill"]["independent"] else {}
    history, warm_history = {}, {}
    for part in ("enhancer", "denoiser", "detector"):
        model = getattr(pipe, part)
        kind = "detector" if part == "detector" else "restoration"
        example = x * units.input_range(part)
        weight = kd.get("w_det" if kind == "detector" else "w_img", 0.0)
        loss = independent_loss(part, getattr(fp32, part) if weight else None, weight, cfg["finetune"]["crop"],
                                env.seed)

        def ft(step, model=model, loss=loss, part=part):
            return run_finetune(model, env.train, loss, cfg["finetune"], units.train_variant(part),
                                _epochs(env, step, steps), env.seed + step, env.log, f"{name}/{part}")
        ignored = ignored_layers(model, kind, keep, cfg["keep_detector_head"])
        out = _structured(model, example, ratio, steps, importance, ignored, loss, units.train_variant(part), ft,
                          env, f"{name}/{part}")
        history[part] = out["history"]
        if "warmup_history" in out:
            warm_history[part] = out["warmup_history"]
    return pipe.cpu().eval(), {"mode": "independent", "ratio": ratio, "importance": importance, "steps": steps,
                               "round_to": cfg["round_to"], "distill": kd, "warmup": _warm(env), "history": history,
                               **({"depth": deep} if deep else {}),
                               **({"warmup_history": warm_history} if warm_history else {})}


def joint(fp32, ratio: float, importance: str, weights, env: Env, name: str, steps: int | None = None,
          keep_first_last: bool | None = None, teacher=None, warmup: bool = True) -> tuple[torch.nn.Module, dict]:
    """``fp32`` is the chain to prune (a copy is pruned); ``teacher``: the chain distilled from
    (default ``fp32``; the budget search prunes on from an accepted chain, still distilled from FP32,
    and without a second warm-up: ``warmup=False``)."""
    from shared.jmmc import frozen_copy
    cfg, steps = env.cfg, steps or env.cfg["steps"]
    keep = cfg["keep_first_last"] if keep_first_last is None else keep_first_last
    pipe = copy.deepcopy(fp32).to(env.device)
    teacher = teacher if teacher is not None else fp32
    deep = _depth(pipe, teacher, env)
    kd = _kd(env)
    loss = JointTerms(*weights, teacher=frozen_copy(teacher) if kd else None,
                      kd=(kd.get("w_img", 0.0), kd.get("w_det", 0.0)))
    variant = cfg["finetune"]["variant"]
    finetunes = []

    def ft(step):
        finetunes.append(run_finetune(pipe, env.train, loss, cfg["finetune"], variant,
                                      _epochs(env, step, steps), env.seed + step, env.log, name))
    ignored = ignored_layers(pipe, "pipeline", keep, cfg["keep_detector_head"])
    out = _structured(pipe, env.example(), ratio, steps, importance, ignored, loss, variant, ft, env, name, warmup)
    return pipe.cpu().eval(), {"mode": "joint", "ratio": ratio, "importance": importance, "steps": steps,
                               "weights": {"w_det": weights[0], "w_den": weights[1], "w_lle": weights[2]},
                               "round_to": cfg["round_to"], "distill": kd, "warmup": _warm(env, warmup), **out,
                               **({"depth": deep} if deep else {}),
                               "finetune": finetunes}


def budget_joint(fp32, importance: str, weights, env: Env, name: str, val_ap: Callable[[torch.nn.Module], float],
                 fp32_ap: float) -> tuple[torch.nn.Module | None, dict]:
    """The accuracy-budget search (``stages.prune.budget.search``) over joint-pruned chains.

    Each probe prunes and fine-tunes a chain at the probed ratio and measures its validation
    AP (``val_ap``).  With ``budget.reuse`` a probe above the last accepted ratio r_a starts from
    that accepted chain and prunes the rest of the way: relative ratio 1 - (1 - r) / (1 - r_a),
    ceil(steps * (r - r_a) / r) steps (at least 1), still distilled from the FP32 chain; the caps
    (max_layer_ratio) then apply to the accepted chain's widths, and there is no second warm-up.
    Otherwise (and below r_a) every probe starts from a fresh FP32 copy.  Returns (accepted chain or None, info with the probes)."""
    from shared.metrics.cost import count_macs
    from stages.prune.budget import TOL, search
    b, steps = env.cfg["budget"], env.cfg["steps"]
    accepted = {"ratio": 0.0, "pipe": fp32}
    built, details = {}, {}
    x = torch.zeros(1, 3, *env.size)

    def evaluate(r: float) -> float:
        base_r = accepted["ratio"] if b["reuse"] and r > accepted["ratio"] else 0.0
        base = accepted["pipe"] if base_r else fp32
        rel = 1 - (1 - r) / (1 - base_r)
        n = steps if not base_r else max(1, math.ceil(steps * (r - base_r) / r - 1e-9))
        pipe, info = joint(base, rel, importance, weights, env, f"{name}@{tag(r)}", n, teacher=fp32,
                           warmup=not base_r)
        ap = float(val_ap(pipe))
        drop = fp32_ap - ap
        details[r] = {"val_ap": ap, "macs": count_macs(pipe, x=x), "from_ratio": base_r, "steps": n,
                      "relative_ratio": round(rel, 4)}
        built[r] = (pipe, {**info, "ratio": r, "from_ratio": base_r, "relative_ratio": round(rel, 6)})
        ok = drop <= b["max_ap_drop"] + TOL
        if ok:
            for k in [k for k in built if k != r]:  # keep only the chain that may still be the answer
                del built[k]
            accepted.update(ratio=r, pipe=pipe)
        else:
            del built[r]
        env.log.info("%s: probe ratio %.2f: val AP %.3f (FP32 %.3f), drop %.3f -> %s", name, r, ap, fp32_ap, drop,
                     "accepted" if ok else "rejected")
        return drop

    res = search(evaluate, b["max_ap_drop"], b["lo"], b["hi"], b["probes"])
    res["probes"] = [{**p, **details[p["ratio"]]} for p in res["probes"]]
    res["fp32_val_ap"] = fp32_ap
    if res["best"] is None:
        return None, {"mode": "joint", "budget": res}
    pipe, info = built[res["best"]]
    return pipe, {**info, "budget": res}


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
