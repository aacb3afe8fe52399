"""Memory budget on hand-computed cases."""
from stages.esp.memory import KB, MB, budget, chain_budget, factory_size, peak_live_bytes, place

BOARD = {"name": "t", "sram_kb": 512, "sram_reserved_kb": 192, "psram_mb": 8, "flash_mb": 8, "app_code_kb": 1024,
         "param_copy": True}


def test_peak_live_set_by_hand():
    # x -> a -> b -> c (out), with a skip a -> c:  bytes x=100 a=50 b=30 c=20
    nodes = [("A", ["x"], ["a"]), ("B", ["a"], ["b"]), ("C", ["a", "b"], ["c"])]
    nbytes = {"x": 100, "a": 50, "b": 30, "c": 20}
    # at A: x+a=150 (x freed after A); at B: a+b=80; at C: a+b+c=100
    assert peak_live_bytes(nodes, nbytes, ["x"], ["c"]) == (150, "A")
    nbytes["b"] = 90  # at C: a+b+c = 160 > 150
    assert peak_live_bytes(nodes, nbytes, ["x"], ["c"]) == (160, "C")


def test_graph_output_stays_live_to_the_end():
    nodes = [("A", ["x"], ["y1"]), ("B", ["x"], ["y2"])]
    peak, at = peak_live_bytes(nodes, {"x": 10, "y1": 40, "y2": 40}, ["x"], ["y1", "y2"])
    assert (peak, at) == (90, "B")


def test_placement_and_verdicts():
    free = (512 - 192) * KB
    p = place(1000, free, BOARD)  # activations exactly fill the free SRAM
    assert p == {"weights_in": "flash rodata -> PSRAM", "activations_in": "SRAM", "sram_bytes": free,
                 "psram_bytes": 1000}
    assert place(1000, free + 1, BOARD)["activations_in"] == "PSRAM"
    assert place(1000, 10, {**BOARD, "param_copy": False})["weights_in"] == "flash rodata"
    r = budget("m", 60_000, 200 * KB, 70_000, BOARD)
    assert r["pass"] and r["factory_partition_bytes"] == factory_size(1024, 70_000) == 1152 * KB
    big = budget("m", 60_000, 9 * MB, 70_000, BOARD)
    assert not big["pass"] and "PSRAM" in big["why"]
    no_psram = budget("m", 60_000, 400 * KB, 70_000, {**BOARD, "psram_mb": 0})
    assert not no_psram["pass"] and "SRAM" in no_psram["why"]
    flash = budget("m", 1, 1, 8 * MB, BOARD)
    assert not flash["pass"] and "factory partition" in flash["why"]


def test_chain_sums_resident_models():
    rows = [budget(m, w, a, f, BOARD) for m, w, a, f in (("e", 10, 100 * KB, 1000), ("d", 20, 100 * KB, 2000),
                                                          ("y", 30, 150 * KB, 3000))]
    c = chain_budget(rows, BOARD)
    assert (c["weights_bytes"], c["peak_activation_bytes"], c["flash_bytes"]) == (60, 350 * KB, 6000)
    assert c["activations_in"] == "PSRAM" and c["pass"]  # 350 KB > 320 KB free SRAM
