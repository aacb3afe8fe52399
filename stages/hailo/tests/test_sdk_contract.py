"""stages/hailo/sdk.py against the Hailo SDK's API contract: the real wheels where installed, else the
stand-in in ``contract/`` (documented signatures, argument and order checks, calls recorded).

sdk.py runs unchanged: a wrong keyword, a missing step (compile before optimize), a wrong type
(an int timeout in seconds, a non-contiguous buffer) fails here, not on a user's first Hailo run."""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

from stages.hailo import alls, graph, post, sdk

CONTRACT = Path(__file__).with_name("contract")
REAL = sdk.dfc_version() is not None and sdk.hailort_version() is not None


@pytest.fixture
def api(monkeypatch):
    """The SDK modules sdk.py will import: the stand-in unless the real wheels are installed."""
    if REAL:
        yield None
        return
    monkeypatch.syspath_prepend(str(CONTRACT))
    for m in [m for m in sys.modules if m.split(".")[0] in ("hailo_sdk_client", "hailo_platform")]:
        monkeypatch.delitem(sys.modules, m)
    client, platform = importlib.import_module("hailo_sdk_client"), importlib.import_module("hailo_platform")
    client.CALLS.clear()
    platform.CALLS.clear()
    yield client, platform
    for m in [m for m in sys.modules if m.split(".")[0] in ("hailo_sdk_client", "hailo_platform")]:
        del sys.modules[m]            # the stand-in must not look installed to the tests after this one


def _calls(api, which=0):
    return [name for name, _ in api[which].CALLS] if api else None


def _parsed(work, role, hw_arch):
    info = graph.inspect(work / "train" / f"{role}.onnx", role)
    return info, sdk.translate(info, hw_arch)


@pytest.mark.parametrize("role", ["enhancer", "yunet"])
def test_parse_optimize_compile_emulate(api, work, hailo_cfg, role, tmp_path):
    info, runner = _parsed(work, role, hailo_cfg["hw_arch"])
    ends = list(dict.fromkeys(info.end_nodes.values()))
    returned = post.map_outputs(sdk.hn_dict(runner), ends)            # the HN names every end node once
    assert sorted(returned) == sorted(ends)
    sdk.save_har(runner, tmp_path / f"{info.name}.har")
    n, c, h, w = info.input_shape
    calib = np.random.default_rng(0).uniform(0, alls.input_scale(role, hailo_cfg), (4, h, w, c)).astype(np.float32)
    sdk.optimize(runner, alls.generate(info, hailo_cfg, len(calib)), calib)
    hef = sdk.compile_hef(runner)
    assert isinstance(hef, bytes) and hef
    with sdk.emulator(runner, "quantized", batch_size=8) as emu:
        outs = emu(calib[:3])
    assert len(outs) == len(ends) and all(len(o) == 3 for o in outs)
    if api:
        assert _calls(api) == ["ClientRunner", "translate_onnx_model", "save_har", "load_model_script", "optimize",
                               "compile", "infer_context", "infer"]
        kw = dict(api[0].CALLS[1][1])
        assert kw["start_node_names"] == [info.input_name] and kw["net_input_shapes"] == {info.input_name: [n, c, h, w]}


def test_the_multi_network_route_joins_parsed_models_then_optimizes_and_compiles(api, work, hailo_cfg, tmp_path):
    runners, group, calib = [], {}, {}
    for role in ("enhancer", "denoiser", "yunet"):
        info, r = _parsed(work, role, hailo_cfg["hw_arch"])
        sdk.save_har(r, tmp_path / f"{info.name}.har")
        runners.append(sdk.load_har(tmp_path / f"{info.name}.har", hailo_cfg["hw_arch"]))
        n, c, h, w = info.input_shape
        group[role], calib[role] = info, np.zeros((2, h, w, c), np.float32)
    joined = sdk.join(runners)
    if api:
        with pytest.raises(ValueError, match="dict keyed by"):     # one array for three networks
            joined.optimize(calib["enhancer"])
    script = alls.generate_joined(group, hailo_cfg, 2)
    sdk.optimize(joined, script, {alls.input_layer(group[r]): calib[r] for r in group})
    assert isinstance(sdk.compile_hef(joined), bytes)
    if api:
        joins = [a for name, a in api[0].CALLS if name == "join"]
        assert len(joins) == 2 and all(a["join_action"].name == "NONE" for a in joins)
        calls = _calls(api)
        assert calls.index("join") < calls.index("optimize") < calls.index("compile")


def test_hailort_runs_the_chain_on_one_scheduled_vdevice(api, work, hailo_cfg, tmp_path):
    hefs = {}
    for role in ("enhancer", "denoiser", "yunet"):
        info, r = _parsed(work, role, hailo_cfg["hw_arch"])
        n, c, h, w = info.input_shape
        sdk.optimize(r, alls.generate(info, hailo_cfg, 2), np.zeros((2, h, w, c), np.float32))
        hefs[role] = tmp_path / f"{role}.hef"
        hefs[role].write_bytes(sdk.compile_hef(r))
    if REAL and not sdk.devices():
        pytest.skip("needs a Hailo device for HailoRT")
    rt = sdk.Runtime(hefs)
    try:
        outs = rt.infer("yunet", np.zeros((h, w, c), np.float32))
        assert len(outs) == len(rt.output_names("yunet")) == 12
        watts = {}
        with rt.power(watts):
            lat, wall = rt.parallel({r: [np.zeros((h, w, c), np.float32)] * 2 for r in hefs})
        assert all(len(v) == 2 for v in lat.values()) and wall > 0
        assert "average_w" in watts or "error" in watts
    finally:
        rt.close()
    if api:
        calls = _calls(api, 1)
        assert calls[0] == "VDevice" and api[1].CALLS[0][1]["scheduling_algorithm"].name == "ROUND_ROBIN"
        assert calls.count("create_infer_model") == 3 and calls.count("configure") == 3
        assert calls.index("stop_power_measurement", calls.index("start_power_measurement")) < \
            calls.index("get_power_measurement")


@pytest.mark.skipif(REAL, reason="checks the stand-in itself")
def test_the_stand_in_refuses_what_the_sdk_refuses(api, work, hailo_cfg):
    client, platform = api
    info = graph.inspect(work / "train" / "enhancer.onnx", "enhancer")
    runner = client.ClientRunner(hw_arch="hailo8")
    with pytest.raises(TypeError, match="end_nodes"):                 # a keyword the API does not have
        runner.translate_onnx_model(str(info.path), info.name, end_nodes=["/Add"])
    with pytest.raises(ValueError, match="hw_arch 'hailo-8'"):
        client.ClientRunner(hw_arch="hailo-8")
    _, parsed = _parsed(work, "enhancer", "hailo8")
    with pytest.raises(RuntimeError, match="optimize it first"):     # a missing step
        parsed.compile()
    with pytest.raises(ValueError, match="not a known command"):
        parsed.load_model_script("normalization1 = normalisation([0, 0, 0], [255, 255, 255])\n")   # misspelt command
    n, c, h, w = info.input_shape
    with pytest.raises(ValueError, match=r"calib_data\[enhancer\] must be float32 NHWC"):
        parsed.optimize(np.zeros((2, c, h, w), np.float32))           # NCHW by mistake
    with pytest.raises(RuntimeError, match="needs an optimized model"):
        with parsed.infer_context(client.InferenceContext.SDK_QUANTIZED):
            pass
    params = platform.VDevice.create_params()
    params.scheduling_algorithm = platform.HailoSchedulingAlgorithm.NONE
    with pytest.raises(RuntimeError, match="needs the model scheduler"):
        platform.VDevice(params).create_infer_model("x.hef")


@pytest.mark.skipif(REAL, reason="with the real SDK the stage runs for real")
def test_the_stage_takes_the_sdk_path_through_sdk_py(api, work, full_config, tmp_path):
    """steps.run with the stand-in installed: flow.py, runtime.py and sdk.py unchanged end to end;
    timings are measured (not set by a fake), the joined script is written and used."""
    from test_stage import _ctx

    from stages.hailo import steps
    monkey_devices = api[1].Device.scan
    api[1].Device.scan = staticmethod(lambda: ["stand-in-0"])
    try:
        ctx = _ctx(work, full_config, tmp_path, runtime={"frames": 2, "power": True})
        result = steps.run(ctx)
    finally:
        api[1].Device.scan = monkey_devices
    m = result["metrics"]["chains"]["train"]
    assert not result.get("skipped") and "error" not in m["multi_network"], m["multi_network"]
    assert m["multi_network"]["route"] == "join parsed HARs, optimize, compile"
    assert (ctx.out / "train" / "train_multi.alls").read_text().count("/normalization1 = normalization(") == \
        (2 if full_config["hailo"]["normalize_restoration"] else 0)
    assert m["runtime"]["parallel"]["wall_s"] > 0 and m["runtime"]["power"]["average_w"] == 2.0
    calls = _calls(api)
    assert calls.count("compile") == 4                      # three models + the joined one
