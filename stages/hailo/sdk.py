"""Every call into the Hailo SDK, in one thin module (read this to see exactly what is used).

Dataflow Compiler (``hailo_sdk_client``): ClientRunner translate_onnx_model -> HAR,
load_model_script + optimize -> quantized HAR, compile -> HEF, join -> multi-network HAR/HEF,
infer_context(SDK_FP_OPTIMIZED | SDK_QUANTIZED) + infer -> emulator outputs.
HailoRT (``hailo_platform``): VDevice (ROUND_ROBIN scheduler) + create_infer_model, serial and
parallel runs, power measurement through the device's control API.

Nothing here is imported at module load: the stage imports this module everywhere and asks
:func:`dfc_version` / :func:`devices` whether the SDK is there.
"""
from __future__ import annotations

import threading
import time
from contextlib import ExitStack, contextmanager
from importlib import metadata
from pathlib import Path

import numpy as np


def _version(module: str, dist: str) -> str | None:
    try:
        __import__(module)
    except Exception:  # noqa: BLE001 - ImportError, or a broken install (missing .so)
        return None
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


def dfc_version() -> str | None:
    return _version("hailo_sdk_client", "hailo_dataflow_compiler")


def hailort_version() -> str | None:
    return _version("hailo_platform", "hailort")


# ----------------------------------------------------------------- Dataflow Compiler
def translate(info, hw_arch: str):
    """ONNX -> a ClientRunner holding the parsed model (cut at info.end_nodes)."""
    from hailo_sdk_client import ClientRunner
    runner = ClientRunner(hw_arch=hw_arch)
    runner.translate_onnx_model(str(info.path), info.name, start_node_names=[info.input_name],
                                end_node_names=list(dict.fromkeys(info.end_nodes.values())),
                                net_input_shapes={info.input_name: list(info.input_shape)})
    return runner


def load_har(path: Path, hw_arch: str):
    from hailo_sdk_client import ClientRunner
    return ClientRunner(hw_arch=hw_arch, har=str(path))


def save_har(runner, path: Path) -> None:
    runner.save_har(str(path))


def hn_dict(runner) -> dict:
    return runner.get_hn_dict()


def optimize(runner, script: str, calib_nhwc: np.ndarray) -> None:
    runner.load_model_script(script)
    runner.optimize(calib_nhwc)


def load_script(runner, script: str) -> None:
    """Model-script commands on an already optimized runner (e.g. performance_param before compile)."""
    runner.load_model_script(script)


def compile_hef(runner) -> bytes:
    return runner.compile()


def join(runners: list):
    """Join runners (distinct model names = distinct scopes) into the first: one multi-network model."""
    from hailo_sdk_client.exposed_definitions import JoinAction
    main = runners[0]
    for other in runners[1:]:
        main.join(other, join_action=JoinAction.NONE)
    return main


@contextmanager
def emulator(runner, context: str, batch_size: int = 8):
    """Yields fn(NHWC float32 batch) -> list of outputs (HN output order) in one inference context."""
    from hailo_sdk_client import InferenceContext
    kind = {"fp_optimized": InferenceContext.SDK_FP_OPTIMIZED, "quantized": InferenceContext.SDK_QUANTIZED}[context]
    with runner.infer_context(kind) as ctx:
        def fn(x):
            out = runner.infer(ctx, np.ascontiguousarray(x, np.float32), batch_size=min(batch_size, len(x)))
            outs = list(out) if isinstance(out, (list, tuple)) else [out]
            if any(len(o) != len(x) for o in outs):   # a dropped partial batch would shorten the results
                raise RuntimeError(f"DFC emulator returned {[len(o) for o in outs]} rows for {len(x)} inputs")
            return outs
        yield fn


# ----------------------------------------------------------------- HailoRT
def devices() -> list[str]:
    try:
        from hailo_platform import Device
        return [str(d) for d in Device.scan()]
    except Exception:  # noqa: BLE001 - no HailoRT, no driver, no device
        return []


class Runtime:
    """The three HEFs on one VDevice with the ROUND_ROBIN scheduler; FLOAT32 in/out (HailoRT quantizes)."""

    def __init__(self, hefs: dict[str, Path], timeout_ms: int = 10000):
        from hailo_platform import FormatType, HailoSchedulingAlgorithm, VDevice
        self.timeout_ms = timeout_ms
        self._stack = ExitStack()
        params = VDevice.create_params()
        params.scheduling_algorithm = HailoSchedulingAlgorithm.ROUND_ROBIN
        self.vdevice = self._stack.enter_context(VDevice(params))
        self.models, self.configured = {}, {}
        for name, hef in hefs.items():
            im = self.vdevice.create_infer_model(str(hef))
            im.set_batch_size(1)
            for s in list(im.inputs) + list(im.outputs):
                s.set_format_type(FormatType.FLOAT32)
            self.models[name] = im
            self.configured[name] = self._stack.enter_context(im.configure())

    def infer(self, name: str, x_hwc: np.ndarray) -> dict[str, np.ndarray]:
        """One frame through one model; {output stream name: array}."""
        im, cm = self.models[name], self.configured[name]
        b = cm.create_bindings()
        b.input().set_buffer(np.ascontiguousarray(x_hwc, np.float32))
        outs = {o.name: np.empty(o.shape, np.float32) for o in im.outputs}
        for k, v in outs.items():
            b.output(k).set_buffer(v)
        cm.run([b], self.timeout_ms)
        return outs

    def output_names(self, name: str) -> list[str]:
        return [o.name for o in self.models[name].outputs]

    def parallel(self, frames: dict[str, list[np.ndarray]]) -> tuple[dict[str, list[float]], float]:
        """Each model loops over its frames in its own thread; (latencies s per model, wall s)."""
        lat = {n: [] for n in frames}

        def loop(n):
            for x in frames[n]:
                t0 = time.perf_counter()
                self.infer(n, x)
                lat[n].append(time.perf_counter() - t0)
        threads = [threading.Thread(target=loop, args=(n,)) for n in frames]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return lat, time.perf_counter() - t0

    @contextmanager
    def power(self, out: dict):
        """Average/max chip power (W) while the block runs, via the physical device's control API."""
        dev = None
        try:
            dev = self.vdevice.get_physical_devices()[0]
            dev.control.stop_power_measurement()
            dev.control.set_power_measurement()
            dev.control.start_power_measurement()
        except Exception as e:  # noqa: BLE001 - boards without a power sensor
            out["error"] = f"power measurement unavailable: {type(e).__name__}: {e}"
            dev = None
        try:
            yield out
        finally:
            if dev is not None:
                try:
                    dev.control.stop_power_measurement()      # stop, then read (as hailortcli does)
                    m = dev.control.get_power_measurement(should_clear=True)
                    out.update(average_w=float(m.average_value), max_w=float(m.max_value),
                               min_w=float(m.min_value))
                except Exception as e:  # noqa: BLE001
                    out["error"] = f"power measurement failed: {type(e).__name__}: {e}"

    def close(self) -> None:
        self._stack.close()
