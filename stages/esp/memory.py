"""ESP32-S3 memory budget: weight bytes, peak activation bytes, where each lives, pass/fail.

Peak activation: walk the graph in execution order; a tensor is live from the op that
makes it until its last consumer has run (graph inputs from the start, graph outputs to
the end); at each op the live set is what was live before plus its outputs.  The peak is
the largest byte sum of a live set (what ESP-DL's greedy memory manager must hold at once).

Placement (ESP-DL ``dl::Model`` with the model in flash rodata):
  weights      flash rodata (the .espdl is embedded in the app image); with ``param_copy``
               (dl::Model's default) also copied to RAM at load: PSRAM when there is one
  activations  internal SRAM when the peak fits what IDF leaves free, else PSRAM
The chain keeps all three models resident (as the generated firmware does): sums.
"""
from __future__ import annotations

import math

KB, MB = 1024, 1024 * 1024
APP_OFFSET = 0x10000  # bootloader + partition table + nvs/phy before the factory app


def peak_live_bytes(nodes: list[tuple[str, list[str], list[str]]], nbytes: dict[str, int],
                    inputs: list[str], outputs: list[str]) -> tuple[int, str]:
    """(peak bytes of simultaneously live activations, name of the op where it happens).

    ``nodes``: (name, activation inputs, outputs) in execution order; parameters must
    not be listed as inputs.  ``nbytes``: bytes of each activation tensor.
    """
    last_use: dict[str, int] = {}
    for i, (_, ins, _) in enumerate(nodes):
        for t in ins:
            last_use[t] = i
    for t in outputs:
        last_use[t] = len(nodes)
    live = {t for t in inputs}
    peak, where = sum(nbytes.get(t, 0) for t in live), "input"
    for i, (name, ins, outs) in enumerate(nodes):
        live |= set(outs)
        now = sum(nbytes.get(t, 0) for t in live)
        if now > peak:
            peak, where = now, name
        live = {t for t in live if last_use.get(t, -1) > i}
    return peak, where


def board_limits(board: dict) -> dict:
    return {"sram_free": (board["sram_kb"] - board["sram_reserved_kb"]) * KB,
            "psram": int(board["psram_mb"] * MB), "flash": int(board["flash_mb"] * MB)}


def factory_size(app_code_kb: int, model_bytes: int) -> int:
    """Factory app partition size: code + embedded models, rounded up to 64 KB."""
    need = app_code_kb * KB + model_bytes
    return int(math.ceil(need / (64 * KB)) * 64 * KB)


def place(weights: int, activations: int, board: dict) -> dict:
    """Where weights (runtime copy) and activations go, and the RAM each region needs."""
    lim = board_limits(board)
    sram = psram = 0
    act_where = "SRAM" if activations <= lim["sram_free"] else ("PSRAM" if lim["psram"] else "SRAM")
    if act_where == "SRAM":
        sram += activations
    else:
        psram += activations
    if board["param_copy"]:
        w_where = "flash rodata -> PSRAM" if lim["psram"] else "flash rodata -> SRAM"
        if lim["psram"]:
            psram += weights
        else:
            sram += weights
    else:
        w_where = "flash rodata"
    return {"weights_in": w_where, "activations_in": act_where, "sram_bytes": sram, "psram_bytes": psram}


def budget(name: str, weights: int, activations: int, flash_bytes: int, board: dict) -> dict:
    """One row of the budget table (a model, or the chain with summed figures)."""
    lim = board_limits(board)
    p = place(weights, activations, board)
    part = factory_size(board["app_code_kb"], flash_bytes)
    flash_ok = part <= lim["flash"] - APP_OFFSET
    sram_ok = p["sram_bytes"] <= lim["sram_free"]
    psram_ok = p["psram_bytes"] <= lim["psram"]
    why = [w for ok, w in ((flash_ok, f"factory partition {part} B > flash {lim['flash'] - APP_OFFSET} B"),
                           (sram_ok, f"SRAM {p['sram_bytes']} B > free {lim['sram_free']} B"),
                           (psram_ok, f"PSRAM {p['psram_bytes']} B > {lim['psram']} B")) if not ok]
    return {"model": name, "weights_bytes": int(weights), "peak_activation_bytes": int(activations),
            "flash_bytes": int(flash_bytes), "factory_partition_bytes": part, **p,
            "sram_free_bytes": lim["sram_free"], "psram_total_bytes": lim["psram"], "flash_total_bytes": lim["flash"],
            "pass": not why, "why": "; ".join(why)}


def chain_budget(rows: list[dict], board: dict, name: str = "chain") -> dict:
    """All models resident at once: weights, activation arenas and flash add up."""
    return budget(name, sum(r["weights_bytes"] for r in rows), sum(r["peak_activation_bytes"] for r in rows),
                  sum(r["flash_bytes"] for r in rows), board)
