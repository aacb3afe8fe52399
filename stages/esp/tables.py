"""The memory budget table: memory.csv, memory.md (human), memory.json (every field).

memory.json carries ``measured`` / ``estimated`` per field, memory.md says the same in words."""
from __future__ import annotations

import csv
import json
from pathlib import Path

COLUMNS = ["candidate", "model", "variant", "weights_bytes", "peak_activation_bytes", "peak_at", "flash_bytes",
           "factory_partition_bytes", "weights_in", "activations_in", "sram_bytes", "psram_bytes", "pass", "why"]


PROVENANCE = {"flash_bytes": "measured: the exported .espdl file",
              "weights_bytes": "estimated from the quantized graph (on a device: ESP-DL profile_memory())",
              "peak_activation_bytes": "estimated from the quantized graph (on a device: the firmware's heap deltas)",
              "sram_bytes": "estimated (board profile + the two estimates above)",
              "psram_bytes": "estimated (board profile + the two estimates above)",
              "factory_partition_bytes": "estimated (board app_code_kb + models; idf.py size gives the real code size)"}


def kb(n: int) -> str:
    return f"{n / 1024:.1f}"


def write_memory(rows: list[dict], board: dict, out: Path) -> None:
    with open(out / "memory.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    (out / "memory.json").write_text(json.dumps({"board": board, "rows": rows, "provenance": PROVENANCE},
                                                indent=2, default=str) + "\n")
    lines = [f"Board: {board['name']}: SRAM {board['sram_kb']} KB ({board['sram_kb'] - board['sram_reserved_kb']} KB "
             f"free for the models), PSRAM {board['psram_mb']} MB, flash {board['flash_mb']} MB; "
             f"param_copy={board['param_copy']}. Sizes in KB.", "",
             "Which figure is what: **.espdl (flash)** is measured (the exported file). **weights** and **peak "
             "activations** are estimates from the quantized graph (esp-ppq's shapes and bit widths; the largest "
             "live set of one layer's inputs and outputs), and SRAM / PSRAM follow from them and the board profile. "
             "On a device the same figures come from ESP-DL's `profile_memory()` and the firmware's heap deltas "
             "(`JMMC memory ...` lines), and code + rodata from `idf.py size` (the esp-build stage).", "",
             "| candidate | model | variant | weights | peak activations | .espdl (flash) | weights in | "
             "activations in | SRAM | PSRAM | pass |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        verdict = "pass" if r["pass"] else f"FAIL: {r['why']}"
        lines.append(f"| {r['candidate']} | {r['model']} | {r['variant']} | {kb(r['weights_bytes'])} | "
                     f"{kb(r['peak_activation_bytes'])} | {kb(r['flash_bytes'])} | {r['weights_in']} | "
                     f"{r['activations_in']} | {kb(r['sram_bytes'])} | {kb(r['psram_bytes'])} | {verdict} |")
    (out / "memory.md").write_text("\n".join(lines) + "\n")
