"""The firmware's chain glue (generated main/jmmc_chain.hpp), compiled with the host compiler against a
stand-in of the ESP-DL API (tests/host/) and checked against esp-ppq's simulation, integer for integer.

Three tiny nets are quantized to int8 by esp-ppq; one frame goes through the simulated chain
(TorchExecutor: each model's output, dequantized, times the unit table's scale into the next
model's input, which the next model quantizes itself).  The integers at every model input and
output are written as test vectors; the C++ chain (the same header the firmware compiles) must
turn each output into exactly the integers the simulation fed the next model."""
from __future__ import annotations

import logging
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from stages.esp import firmware
from stages.esp.evaluate import executor_fn
from stages.esp.quantize import make_setting, quantize

HOST = Path(__file__).with_name("host")
CHAIN = ("enhancer", "denoiser", "yunet")
pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++ (installed in the esp image)")


def exponent(var, graph) -> tuple[int, int]:
    """(exponent, bits) of a graph input (its consumer's input config) or output (its producer's)."""
    if var.name in graph.inputs:
        op = var.dest_ops[0]
        cfg = op.config.input_quantization_config[op.inputs.index(var)]
    else:
        op = var.source_op
        cfg = op.config.output_quantization_config[op.outputs.index(var)]
    e = math.log2(float(cfg.scale))
    assert e == round(e), f"{var.name}: scale {cfg.scale} is not a power of two"
    return int(round(e)), int(cfg.num_of_bits)


def ints(x: np.ndarray, e: int, bits: int) -> np.ndarray:
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return np.clip(np.floor(x / 2.0 ** e + 0.5), lo, hi).astype(np.int64)


def nhwc(a: np.ndarray) -> np.ndarray:
    return a.transpose(0, 2, 3, 1) if a.ndim == 4 else a


def write_vectors(path: Path, tensors: list[tuple[str, str, int, int, np.ndarray]]) -> None:
    with open(path, "w") as f:
        for kind, name, e, bits, q in tensors:
            q = nhwc(q)
            f.write(f"{kind} {name} {e} {bits} {q.ndim} {' '.join(map(str, q.shape))}\n")
            f.write(" ".join(map(str, q.reshape(-1).tolist())) + "\n")


@pytest.fixture(scope="module")
def simulated_chain(train_dir, tmp_path_factory):
    """esp-ppq int8 graphs of the tiny chain and the integer vectors of one frame through it."""
    out = tmp_path_factory.mktemp("host_chain")
    rng = np.random.default_rng(0)
    scales = firmware.scales(dict.fromkeys(CHAIN))
    x = torch.from_numpy(rng.uniform(0, 0.4, (1, 3, 32, 32)).astype(np.float32))   # a dark frame
    vec = {}
    for k, m in enumerate(CHAIN):
        path = train_dir / f"{m}.onnx"
        calib = [x] + [torch.from_numpy(rng.uniform(0, scales[k], (1, 3, 32, 32)).astype(np.float32))]
        g, _ = quantize(path, out / m, "int8", calib, 8, make_setting(8, "minmax", [], "esp32s3"), "esp32s3",
                        logging.getLogger("test"))
        names = [o.name for o in onnx.load(str(path)).graph.output]
        run = executor_fn(g, names)
        (in_name, in_var), = g.inputs.items()
        e_in, b_in = exponent(in_var, g)
        x_np = x.numpy()
        q_in = ints(x_np, e_in, b_in)
        ys = run(x_np)
        # the simulation quantizes its input as ints() does: feeding the integers gives the same outputs
        for a, b in zip(ys, run((q_in * 2.0 ** e_in).astype(np.float32))):
            np.testing.assert_array_equal(a, b)
        tensors = [("input", in_name, e_in, b_in, q_in)]
        for name, y in zip(names, ys):
            e_out, b_out = exponent(g.outputs[name], g)
            q = ints(y, e_out, b_out)
            np.testing.assert_array_equal(q * 2.0 ** e_out, y)       # outputs sit on their grid
            tensors.append(("output", name, e_out, b_out, q))
        write_vectors(out / f"{m}.vec", tensors)
        vec[m] = out / f"{m}.vec"
        if k + 1 < len(CHAIN):
            x = torch.from_numpy(ys[0] * np.float32(scales[k + 1]))      # what the next model is fed
    (out / "jmmc_chain.hpp").write_text(firmware.CHAIN_HPP)
    exe = out / "host_chain"
    subprocess.run(["g++", "-std=c++17", "-O1", "-Wall", "-Werror", f"-I{HOST}", f"-I{out}",
                    str(HOST / "host_chain.cpp"), "-o", str(exe)], check=True, capture_output=True, text=True)
    return exe, vec, scales


def test_host_built_chain_passes_each_output_to_the_next_model_exactly(simulated_chain):
    exe, vec, scales = simulated_chain
    r = subprocess.run([str(exe), str(vec["enhancer"]), str(vec["denoiser"]), str(vec["yunet"]), str(scales[2])],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "mismatches enhancer=0 denoiser=0 yunet=0 runs=1,1,1" in r.stdout


def test_a_wrong_glue_is_caught(simulated_chain):
    """Feeding the detector the [0, 1] image (forgetting the 255) must show up as mismatches."""
    exe, vec, _ = simulated_chain
    r = subprocess.run([str(exe), str(vec["enhancer"]), str(vec["denoiser"]), str(vec["yunet"]), "1.0"],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "denoiser=0" in r.stdout and "yunet=0 " not in r.stdout


def test_the_firmware_uses_that_glue(tmp_path, simulated_chain):
    _, vec, _ = simulated_chain
    models = {m: vec[m].with_suffix(".vec") for m in CHAIN}
    board = {"name": "t", "flash_mb": 16, "psram_mb": 8.0, "psram_mode": "octal", "app_code_kb": 512}
    firmware.generate(tmp_path, models, board, runs=2, resident=True, candidate="train", variant="int8")
    app = (tmp_path / "main" / "app_main.cpp").read_text()
    assert '#include "jmmc_chain.hpp"' in app and "jmmc::run_chain(resident, kInputScale, kNumModels)" in app
    assert "kInputScale[] = {1.0f, 1.0f, 255.0f}" in app
    assert (tmp_path / "main" / "jmmc_chain.hpp").read_text() == firmware.CHAIN_HPP
