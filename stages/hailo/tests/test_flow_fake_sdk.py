"""The SDK-side orchestration (flow.py, runtime.py, steps._with_sdk) against a stand-in for sdk.py
(sdk.py's own calls into the SDK: test_sdk_contract.py).

The stand-in runs each model's cut graph (up to its end nodes) in ONNX Runtime with Hailo's
conventions: NHWC tensors, on-chip normalization from the model script, outputs in an HN order
that differs from the ONNX order.  It checks the plumbing (scales, layouts, output mapping,
chaining, files, manifest keys); no Hailo figure comes from it.  With exact float arithmetic the
"emulated" accuracy must equal the FP32 ONNX accuracy.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from shared.artifacts import check_manifest, check_record
from stages.hailo import graph, sdk, steps
from test_stage import _ctx


class Runner:
    def __init__(self, info, script=""):
        self.info, self.script = info, script
        model = onnx.load(str(info.path))
        del model.graph.output[:]
        self.ends = list(dict.fromkeys(info.end_nodes.values()))
        producer = {n.name: n for n in model.graph.node}
        model.graph.output.extend(onnx.ValueInfoProto(name=producer[e].output[0]) for e in self.ends)
        self.sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])

    def run_nhwc(self, x):
        x = np.asarray(x, np.float32) / (255.0 if "normalization(" in self.script else 1.0)
        outs = [np.concatenate(o) for o in zip(*[self.sess.run(None, {self.info.input_name: xi[None].transpose(0, 3, 1, 2)})
                                                 for xi in x])]
        return [o.transpose(0, 2, 3, 1) for o in outs][::-1]        # HN order: reversed

    def hn(self):
        layers, order = {}, []
        for i, e in enumerate(self.ends[::-1]):
            layers[f"{self.info.name}/conv{i}"] = {"type": "conv", "original_names": [e]}
            layers[f"{self.info.name}/output_layer{i}"] = {"type": "output_layer", "input": [f"{self.info.name}/conv{i}"]}
            order.append(f"{self.info.name}/output_layer{i}")
        return {"net_params": {"output_layers_order": order}, "layers": layers}


def save_har(runner, path):
    """A stand-in HAR: the ONNX path, the model name and the loaded script."""
    Path(path).write_text(json.dumps([str(runner.info.path), runner.info.name, runner.script]))


def load_har(path, hw_arch="hailo8"):
    onnx_path, name, script = json.loads(Path(path).read_text())
    return Runner(graph.inspect(onnx_path, name), script)


class FakeRuntime:
    def __init__(self, hefs):
        self.runners = {r: load_har(Path(str(p)[:-4] + "_quantized.har")) for r, p in hefs.items()}

    def infer(self, name, x_hwc):
        return {f"out{i}": o[0] for i, o in enumerate(self.runners[name].run_nhwc(x_hwc[None]))}

    def parallel(self, frames):
        return {n: [0.001] * len(f) for n, f in frames.items()}, 0.01

    @contextlib.contextmanager
    def power(self, out):
        yield out

    def close(self):
        pass


@pytest.fixture
def fake_sdk(monkeypatch):
    @contextlib.contextmanager
    def emulator(runner, context, batch_size=8):
        yield runner.run_nhwc

    def optimize(runner, script, calib):
        for a in (calib.values() if isinstance(calib, dict) else [calib]):   # a joined model: one per network
            assert a.ndim == 4 and a.shape[-1] == 3 and a.dtype == np.float32
        runner.script = script
        logging.getLogger("hailo_sdk_client.sdk_backend").warning(   # what the DFC says without a GPU
            "Reducing optimization level to 0 (the accuracy won't be optimized and compression won't be used) "
            "because there's no available GPU")

    fake = dict(dfc_version=lambda: "fake", hailort_version=lambda: "fake", devices=lambda: ["fake0"],
                translate=lambda info, hw: Runner(info), save_har=save_har, load_har=load_har,
                hn_dict=lambda r: r.hn(), optimize=optimize, compile_hef=lambda r: b"HEF",
                join=lambda rs: rs[0], emulator=emulator, Runtime=FakeRuntime,
                load_script=lambda r, script: setattr(r, "performance", script))
    for k, v in fake.items():
        monkeypatch.setattr(sdk, k, v)


def test_sdk_flow_plumbing(work, full_config, tmp_path, fake_sdk):
    ctx = _ctx(work, full_config, tmp_path, runtime={"frames": 3, "power": True})
    result = steps.run(ctx)
    assert not result.get("skipped")
    m = result["metrics"]["chains"]["train"]
    for role in ("enhancer", "denoiser", "yunet"):
        assert (ctx.out / "train" / role / f"{role}.hef").read_bytes() == b"HEF"
        assert m["compile"][role]["hef"] == f"{role}.hef"
    assert (ctx.out / "train" / "train_multi.hef").exists() and m["multi_network"]["networks"] == ["enhancer", "denoiser", "yunet"]
    for context in ("fp_optimized", "quantized"):
        for k, d in m["emulator_delta_vs_fp32"][context].items():
            assert math.isclose(d, 0.0, abs_tol=1e-3), (context, k, d)
    rt = m["runtime"]
    assert set(rt["serial"]["per_model"]) == {"enhancer", "denoiser", "yunet"} and rt["serial"]["per_frame"]["n"] == 3
    assert rt["parallel"]["chain_fps"] == pytest.approx(300.0)
    assert result["metrics"]["devices"] == ["fake0"]
    assert "error" not in m["multi_network"]
    downgrades = result["metrics"]["dfc_downgrades"]
    assert len(downgrades) == 1 and downgrades[0].startswith("Reducing optimization level to 0")
    # every file the DFC wrote as a typed artifact record (shared/artifacts.py), all the report reads
    check_manifest({"stage": "hailo", "artifacts": ctx.artifacts, "chains": ctx.chains}, ctx.out)
    recs = {r["file"]: r for r in ctx.artifacts}
    roles = {"enhancer": "enhancer", "denoiser": "denoiser", "yunet": "detector"}
    assert set(recs) == {f"train/{r}/{r}{s}" for r in roles for s in (".har", "_quantized.har", ".hef")} | {
        "train/train_multi.hef", "train/train_multi_quantized.har", "train"}
    for r, role in roles.items():
        hef, qhar, har = (recs[f"train/{r}/{r}{s}"] for s in (".hef", "_quantized.har", ".har"))
        for rec in (hef, qhar, har):
            check_record(rec, ctx.out)
            assert rec["role"] == role and rec["chain"] == f"train/{r}"
        assert hef["format"] == "hef" and qhar["format"] == har["format"] == "har"
        assert hef["precision"] == qhar["precision"] == ("int8" if r == "yunet" else "int8+int16")  # a16_w16 default
        assert har["precision"] == "fp32" and har["metrics"] is None
        want = pytest.approx(m["emulator"]["quantized"][r], nan_ok=True)   # the mini YuNet finds no face: NME nan
        assert hef["metrics"] == want and qhar["metrics"] == want
        assert hef["cost"] == {"bytes": 3, "latency_ms": pytest.approx(rt["serial"]["per_model"][r]["mean_ms"])}
    multi = recs["train/train_multi.hef"]
    assert multi["role"] == "pipeline" and multi["precision"] == "int8+int16" and multi["metrics"] is None
    chain = recs["train"]
    assert chain["role"] == "chain" and chain["format"] == "dir" and chain["chain"] == "train"
    assert chain["metrics"]["ap"] == m["emulator"]["quantized"]["chain"]["detection"]["ap"]
    assert chain["metrics"]["psnr"] == m["emulator"]["quantized"]["chain"]["restoration"]["psnr"]


def test_failed_join_is_reported_not_fatal(work, full_config, tmp_path, fake_sdk, monkeypatch):
    def join(runners):
        raise RuntimeError("cannot join quantized models")
    monkeypatch.setattr(sdk, "join", join)
    ctx = _ctx(work, full_config, tmp_path, runtime={"frames": 1, "power": False})
    m = steps.run(ctx)["metrics"]["chains"]["train"]
    assert "cannot join quantized models" in m["multi_network"]["error"]
    assert not (ctx.out / "train" / "train_multi.hef").exists()
    assert not any(r["file"].startswith("train/train_multi") for r in ctx.artifacts)   # no file, no record
    check_manifest({"stage": "hailo", "artifacts": ctx.artifacts, "chains": ctx.chains}, ctx.out)
    assert all((ctx.out / "train" / r / f"{r}.hef").exists() for r in ("enhancer", "denoiser", "yunet"))
