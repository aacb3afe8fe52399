"""Stand-in for HailoRT's ``hailo_platform`` (see ../README.md): VDevice with the scheduler, the
InferModel API (create_infer_model -> configure -> create_bindings -> run), Device.scan and the
power-measurement controls, with the documented signatures and argument checks; calls recorded."""
from __future__ import annotations

import contextlib
import enum
import json
from pathlib import Path

import numpy as np

CALLS: list[tuple[str, dict]] = []
HEF_MAGIC = b"HEF-STANDIN\n"


def _record(name, **args):
    CALLS.append((name, args))


class HailoSchedulingAlgorithm(enum.Enum):
    NONE = 0
    ROUND_ROBIN = 1


class FormatType(enum.Enum):
    AUTO = 0
    UINT8 = 1
    UINT16 = 2
    FLOAT32 = 3


_DTYPE = {FormatType.UINT8: np.uint8, FormatType.UINT16: np.uint16, FormatType.FLOAT32: np.float32}


class VDeviceParams:
    def __init__(self):
        self.device_count = 1
        self.scheduling_algorithm = HailoSchedulingAlgorithm.ROUND_ROBIN
        self.group_id = "UNIQUE"
        self.multi_process_service = False


class _Measurement:
    def __init__(self):
        self.average_value, self.max_value, self.min_value = 2.0, 2.5, 1.5


class _Control:
    def __init__(self):
        self.running = False

    def set_power_measurement(self, buffer_index=None, dvm=None, power_measurement_type=None):
        _record("set_power_measurement")

    def start_power_measurement(self, averaging_factor=None, sampling_period=None):
        _record("start_power_measurement")
        self.running = True

    def stop_power_measurement(self):
        _record("stop_power_measurement")
        self.running = False

    def get_power_measurement(self, buffer_index=None, should_clear=True):
        _record("get_power_measurement", should_clear=should_clear)
        if self.running:
            raise RuntimeError("get_power_measurement while measuring: stop_power_measurement first")
        return _Measurement()


class Device:
    def __init__(self, device_id=None):
        self.control = _Control()

    @staticmethod
    def scan():
        _record("Device.scan")
        return []


class _Stream:
    def __init__(self, name, shape):
        self.name, self.shape, self.format_type = name, tuple(shape), FormatType.AUTO

    def set_format_type(self, type):  # noqa: A002 - HailoRT's argument name
        _record("set_format_type", stream=self.name, type=type)
        if not isinstance(type, FormatType):
            raise TypeError(f"set_format_type takes a FormatType, got {type!r}")
        self.format_type = type


class _Binding:
    def __init__(self, stream):
        self.stream, self.buffer = stream, None

    def set_buffer(self, buffer):
        dtype = _DTYPE.get(self.stream.format_type)
        if not isinstance(buffer, np.ndarray) or tuple(buffer.shape) != self.stream.shape or \
                (dtype is not None and buffer.dtype != dtype) or not buffer.flags["C_CONTIGUOUS"]:
            raise ValueError(f"{self.stream.name}: buffer {getattr(buffer, 'dtype', None)} "
                             f"{getattr(buffer, 'shape', None)}, stream wants {dtype} {self.stream.shape} (contiguous)")
        self.buffer = buffer

    def get_buffer(self):
        return self.buffer


class _Bindings:
    def __init__(self, model):
        self.model = model
        self._in = {s.name: _Binding(s) for s in model.inputs}
        self._out = {s.name: _Binding(s) for s in model.outputs}

    def input(self, name=""):
        return self._in[name] if name else next(iter(self._in.values()))

    def output(self, name=""):
        return self._out[name] if name else next(iter(self._out.values()))


class _Configured:
    def __init__(self, model):
        self.model = model

    def create_bindings(self, input_buffers=None, output_buffers=None):
        return _Bindings(self.model)

    def run(self, bindings, timeout):
        _record("run", n=len(bindings), timeout=timeout)
        if not isinstance(bindings, list) or not all(isinstance(b, _Bindings) for b in bindings):
            raise TypeError("run() takes a list of bindings")
        if not isinstance(timeout, int) or timeout <= 0:
            raise ValueError(f"timeout is in milliseconds (a positive int), got {timeout!r}")
        for b in bindings:
            for k, v in list(b._in.items()) + list(b._out.items()):
                if v.buffer is None:
                    raise RuntimeError(f"run(): no buffer set for stream {k}")
            for v in b._out.values():
                v.buffer[...] = 0


class InferModel:
    def __init__(self, hef: str):
        data = Path(hef).read_bytes()
        if not data.startswith(HEF_MAGIC):
            raise ValueError(f"{hef}: not a HEF")
        nets = json.loads(data[len(HEF_MAGIC):])
        (name, d), = nets.items()
        self.inputs = [_Stream(f"{name}/input_layer1", d["input_nhwc"])]
        self.outputs = [_Stream(f"{name}/{e}", s) for e, s in d["outputs_nhwc"].items()]
        self.batch_size = 0

    def input(self, name=""):
        return self.inputs[0]

    def output(self, name=""):
        return next(s for s in self.outputs if s.name == name) if name else self.outputs[0]

    def set_batch_size(self, batch_size):
        _record("set_batch_size", batch_size=batch_size)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.batch_size = batch_size

    @contextlib.contextmanager
    def configure(self):
        _record("configure")
        yield _Configured(self)


class VDevice:
    def __init__(self, params=None, *, device_ids=None):
        _record("VDevice", scheduling_algorithm=getattr(params, "scheduling_algorithm", None))
        if params is not None and not isinstance(params, VDeviceParams):
            raise TypeError("VDevice(params): params from VDevice.create_params()")
        self.params = params or VDeviceParams()

    @staticmethod
    def create_params():
        return VDeviceParams()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def create_infer_model(self, hef_source, name=""):
        _record("create_infer_model", hef_source=hef_source)
        if self.params.scheduling_algorithm == HailoSchedulingAlgorithm.NONE:
            raise RuntimeError("the InferModel API needs the model scheduler (scheduling_algorithm != NONE)")
        if not isinstance(hef_source, str):
            raise TypeError(f"hef_source is a path string, got {type(hef_source).__name__}")
        return InferModel(hef_source)

    def get_physical_devices(self):
        return [Device()]
