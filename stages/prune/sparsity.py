"""Unstructured sparsity with NNCF 3 (``nncf.prune``) on the whole chain, fine-tuned jointly.

Modes (``nncf.PruneMode``):

* ``magnitude_global`` / ``magnitude_local``: UNSTRUCTURED_MAGNITUDE_GLOBAL / _LOCAL binary masks,
  the ratio raised from ``init`` to ``ratio`` over ``steps`` steps (``update_pruning_ratio``,
  what NNCF's magnitude schedulers call), ``nncf.batch_norm_adaptation`` on calibration
  images and joint fine-tuning after each step;
* ``rb``: UNSTRUCTURED_REGULARIZATION_BASED trainable masks, ``RBLoss(target)`` added to the
  joint loss, the masks trained with a larger learning rate (NNCF 2's ``compression_lr_multiplier``).

The masks are then folded into the weights (``nncf.strip(..., StripFormat.IN_PLACE)``) and
copied into a plain copy of the chain, so export and evaluation see an ordinary model.  The
sparsity reached is measured by counting zero weights (``sparsity_stats``).
"""
from __future__ import annotations

import copy
import logging
import math

import numpy as np
import torch

from shared.data import Split, to_float

MODES = {"magnitude_global": "UNSTRUCTURED_MAGNITUDE_GLOBAL", "magnitude_local": "UNSTRUCTURED_MAGNITUDE_LOCAL",
         "rb": "UNSTRUCTURED_REGULARIZATION_BASED"}


def sparsity_stats(model: torch.nn.Module) -> dict:
    """Zero weights of the conv/linear kernels (what sparsity acts on) and of all parameters."""
    w_zero = w_all = p_zero = p_all = 0
    for p in model.parameters():
        z, n = int((p == 0).sum()), p.numel()
        p_zero, p_all = p_zero + z, p_all + n
        if p.dim() > 1:
            w_zero, w_all = w_zero + z, w_all + n
    return {"weight_sparsity": w_zero / max(w_all, 1), "param_sparsity": p_zero / max(p_all, 1),
            "nonzero_params": p_all - p_zero}


def _bn_adapt(model, calib: Split, variant: str, n_batches: int = 4, batch: int = 8) -> None:
    import nncf
    n = min(len(calib), n_batches * batch)
    if n == 0 or not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return
    dev = next(model.parameters()).device
    items = [torch.from_numpy(to_float(np.stack([calib.image(j, variant) for j in range(i, min(n, i + batch))]))).to(dev)
             for i in range(0, n, batch)]
    nncf.batch_norm_adaptation(model, nncf.Dataset(items), num_iterations=len(items))


def _rb_train(model, split: Split, loss, cfg: dict, epochs: int, lr_mult: float, seed: int,
              log: logging.Logger, name: str) -> list[dict]:
    """Joint fine-tuning with the RB masks in their own parameter group (lr x lr_mult)."""
    from shared.jmmc import batches  # needs mmdet
    masks = [p for n, p in model.named_parameters() if n.endswith(".mask")]
    others = [p for n, p in model.named_parameters() if not n.endswith(".mask") and p.requires_grad]
    opt = torch.optim.AdamW([{"params": others}, {"params": masks, "lr": cfg["lr"] * lr_mult, "weight_decay": 0.0}],
                            lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    rng = np.random.default_rng(seed)
    history = []
    model.train()
    for epoch in range(epochs):
        sums, count = {}, 0
        for x, clean, boxes, kps in batches(split, cfg["variant"], cfg["batch_size"], rng, cfg["limit"]):
            terms = loss(model, x, clean, boxes, kps)
            opt.zero_grad(set_to_none=True)
            terms["loss"].backward()
            opt.step()
            count += 1
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
        history.append({"epoch": epoch + 1, **{k: v / max(count, 1) for k, v in sums.items()}})
        log.info("%s: RB epoch %d/%d, loss %.4f (rb %.4f)", name, epoch + 1, epochs,
                 history[-1].get("loss", math.nan), history[-1].get("loss_rb", math.nan))
    model.eval()
    return history


def sparsify(pipe: torch.nn.Module, mode: str, ratio: float, steps: int, example: torch.Tensor,
             train: Split, calib: Split, ft_cfg: dict, weights, seed: int, log: logging.Logger, name: str,
             init: float = 0.0, lr_mult: float = 100.0) -> tuple[torch.nn.Module, dict]:
    """Sparsify a copy of ``pipe``; returns (plain sparse copy, {history, stats, mode})."""
    import nncf
    from nncf.torch.function_hook.pruning.magnitude.algo import update_pruning_ratio
    from nncf.torch.function_hook.pruning.rb.losses import RBLoss

    from stages.prune.finetuners import JointTerms, run_finetune

    if mode not in MODES:
        raise ValueError(f"prune.sparsity.modes: unknown mode {mode!r} ({', '.join(MODES)})")
    nncf_mode = getattr(nncf.PruneMode, MODES[mode])
    work = copy.deepcopy(pipe).eval()
    history = []
    if mode == "rb":
        model = nncf.prune(work, mode=nncf_mode, examples_inputs=example)
        rb = RBLoss(model, target_ratio=ratio)
        loss = JointTerms(*weights, extra=rb)
        epochs = steps * max(ft_cfg["epochs"], 1) + ft_cfg["final_epochs"]
        history = _rb_train(model, train, loss, ft_cfg, epochs, lr_mult, seed, log, name)
    else:
        first = init + (ratio - init) / steps
        model = nncf.prune(work, mode=nncf_mode, ratio=first, examples_inputs=example)
        loss = JointTerms(*weights)
        for step in range(1, steps + 1):
            r = init + (ratio - init) * step / steps
            update_pruning_ratio(model, mode=nncf_mode, ratio=r)
            _bn_adapt(model, calib, ft_cfg["variant"])
            epochs = ft_cfg["epochs"] + (ft_cfg["final_epochs"] if step == steps else 0)
            h = run_finetune(model, train, loss, ft_cfg, ft_cfg["variant"], epochs, seed + step, log, f"{name} s{step}")
            stat = nncf.pruning_statistic(model)
            history.append({"step": step, "target": r, "nncf_pruning_ratio": float(stat.pruning_ratio),
                            "nncf_global_ratio": float(stat.global_pruning_ratio), "finetune": h})
            log.info("%s: step %d/%d, target %.2f, NNCF reports %.3f of the prunable weights masked",
                     name, step, steps, r, stat.pruning_ratio)
    model.eval()
    stripped = nncf.strip(model, do_copy=False, strip_format=nncf.StripFormat.IN_PLACE)
    plain = copy.deepcopy(pipe).eval()
    state = {k: v for k, v in stripped.state_dict().items() if k in plain.state_dict()}
    missing = set(plain.state_dict()) - set(state)
    if missing:
        raise RuntimeError(f"{name}: NNCF-stripped model lacks {sorted(missing)[:3]}...")
    plain.load_state_dict(state)
    for p in plain.parameters():
        p.requires_grad_(True)
    stats = sparsity_stats(plain)
    log.info("%s: %.1f %% of the conv weights are zero (target %.0f %%)", name,
             100 * stats["weight_sparsity"], 100 * ratio)
    return plain, {"mode": mode, "nncf_mode": MODES[mode], "target": ratio, "history": history, **stats}
