"""Stand-in for the Dataflow Compiler's ``hailo_sdk_client`` (see ../README.md): documented
signatures (no ``**kwargs``: a keyword the documentation does not list is a TypeError), argument
checks, the flow's order (parse -> optimize -> compile / quantized inference), calls recorded."""
from __future__ import annotations

import contextlib
import enum
import json
import re
from pathlib import Path

import numpy as np

from hailo_sdk_client.exposed_definitions import JoinAction

CALLS: list[tuple[str, dict]] = []
HW_ARCHS = ("hailo8", "hailo8r", "hailo8l", "hailo15h", "hailo15m", "hailo15l", "hailo10h")
SCRIPT_COMMANDS = {"normalization", "model_optimization_flavor", "model_optimization_config", "performance_param",
                   "quantization_param", "pre_quantization_optimization", "post_quantization_optimization",
                   "resources_param", "allocator_param", "context_switch_param", "nms_postprocess",
                   "change_output_activation", "input_conversion", "transpose", "reshape", "set_seed"}
_LINE = re.compile(r"^(?:[\w/]+\s*=\s*)?(\w+)\((.*)\)$")
HEF_MAGIC = b"HEF-STANDIN\n"


class InferenceContext(enum.Enum):
    SDK_NATIVE = "native"
    SDK_FP_OPTIMIZED = "fp_optimized"
    SDK_QUANTIZED = "quantized"
    SDK_HAILO_HW = "hailo_hw"
    SDK_BIT_EXACT = "bit_exact"


class CalibrationDataType(enum.Enum):
    auto = "auto"
    np_array = "np_array"
    dataset = "dataset"


class InferenceDataType(enum.Enum):
    auto = "auto"
    np_array = "np_array"
    dataset = "dataset"


def _record(name, **args):
    CALLS.append((name, args))


class ClientRunner:
    def __init__(self, hw_arch=None, har=None):
        _record("ClientRunner", hw_arch=hw_arch, har=har)
        if hw_arch not in HW_ARCHS:
            raise ValueError(f"hw_arch {hw_arch!r}: expected one of {HW_ARCHS}")
        self.hw_arch, self.state, self.nets, self.script = hw_arch, "new", {}, []
        if har is not None:
            data = json.loads(Path(har).read_text())
            self.state, self.nets, self.script = data["state"], data["nets"], data["script"]

    # ---- parsing
    def translate_onnx_model(self, model=None, net_name=None, start_node_names=None, end_node_names=None,
                             net_input_shapes=None, augmented_path=None, disable_shape_inference=False,
                             disable_rt_metadata_extraction=False, net_input_format=None):
        _record("translate_onnx_model", model=model, net_name=net_name, start_node_names=start_node_names,
                end_node_names=end_node_names, net_input_shapes=net_input_shapes)
        import onnx
        if not (isinstance(model, str) and model.endswith(".onnx") and Path(model).is_file()):
            raise ValueError(f"model must be the path of an .onnx file, got {model!r}")
        if not isinstance(net_name, str) or not net_name:
            raise ValueError("net_name must be a non-empty string")
        g = onnx.shape_inference.infer_shapes(onnx.load(model)).graph
        nodes = {n.name: n for n in g.node}
        inputs = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in g.input}
        for n in start_node_names or []:
            if n not in nodes and n not in inputs:
                raise ValueError(f"start node {n!r} is not in {model}")
        for n in end_node_names or []:
            if n not in nodes:
                raise ValueError(f"end node {n!r} is not a node of {model}")
        for k, shape in (net_input_shapes or {}).items():
            if k not in inputs or list(shape) != inputs[k]:
                raise ValueError(f"net_input_shapes[{k!r}] = {shape}: the graph input is {inputs.get(k)}")
        shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
                  for v in list(g.value_info) + list(g.output)}
        n, c, h, w = next(iter((net_input_shapes or inputs).values()))
        ends = list(end_node_names or [g.node[-1].name])
        outs = {e: shapes[nodes[e].output[0]] for e in ends}
        self.nets[net_name] = {"input_nhwc": [h, w, c], "ends": ends,
                               "outputs_nhwc": {e: [s[2], s[3], s[1]] if len(s) == 4 else s[1:] for e, s in outs.items()}}
        self.state = "parsed"
        return self.get_hn_dict(), {}

    def get_hn_dict(self):
        """HN as the SDK writes it: output layers in an order of its own (here: reversed end nodes)."""
        layers, order = {}, []
        for net, d in self.nets.items():
            for i, e in enumerate(d["ends"]):
                layers[f"{net}/conv{i}"] = {"type": "conv", "original_names": [e], "input": [f"{net}/input_layer1"]}
                layers[f"{net}/output_layer{i + 1}"] = {"type": "output_layer", "input": [f"{net}/conv{i}"]}
            order += [f"{net}/output_layer{i + 1}" for i in reversed(range(len(d["ends"])))]
        return {"name": "+".join(self.nets), "net_params": {"output_layers_order": order}, "layers": layers}

    def save_har(self, har_path, compressed=False):
        _record("save_har", har_path=har_path, compressed=compressed)
        if not str(har_path).endswith(".har"):
            raise ValueError(f"har_path {har_path!r} should end in .har")
        Path(har_path).write_text(json.dumps({"state": self.state, "nets": self.nets, "script": self.script}))

    # ---- optimization
    def load_model_script(self, model_script=None, append=False):
        _record("load_model_script", model_script=model_script, append=append)
        if not isinstance(model_script, str):
            raise TypeError("model_script must be the script text (or a path)")
        text = Path(model_script).read_text() if model_script.endswith(".alls") else model_script
        for k, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            m = _LINE.match(line)
            if not m or m.group(1) not in SCRIPT_COMMANDS:
                raise ValueError(f"model script line {k}: {raw!r} is not a known command")
        self.script = (self.script if append else []) + [text]

    def optimize(self, calib_data, data_type=CalibrationDataType.auto, work_dir=None):
        _record("optimize", calib_data=getattr(calib_data, "shape", None) or sorted(calib_data), data_type=data_type)
        if self.state != "parsed":
            raise RuntimeError(f"optimize() on a model that is {self.state}: parse it first (translate_onnx_model)")
        if len(self.nets) > 1:          # a joined model: one array per network, keyed by its input layer
            want = {f"{net}/input_layer1": d for net, d in self.nets.items()}
            if not isinstance(calib_data, dict) or set(calib_data) != set(want):
                raise ValueError(f"calib_data of a joined model must be a dict keyed by {sorted(want)}, got "
                                 f"{sorted(calib_data) if isinstance(calib_data, dict) else type(calib_data).__name__}")
            items = [(k, calib_data[k], want[k]) for k in want]
        else:
            (net, d), = self.nets.items()
            items = [(net, calib_data, d)]
        for k, arr, d in items:
            if not isinstance(arr, np.ndarray) or arr.ndim != 4 or list(arr.shape[1:]) != d["input_nhwc"] or \
                    arr.dtype != np.float32:
                raise ValueError(f"calib_data[{k}] must be float32 NHWC [N, {', '.join(map(str, d['input_nhwc']))}], "
                                 f"got {getattr(arr, 'dtype', None)} {getattr(arr, 'shape', None)}")
        if len({len(a) for _, a, _ in items}) != 1:
            raise ValueError("calib_data: every network needs the same number of calibration images")
        self.state = "optimized"

    def compile(self):
        _record("compile")
        if self.state != "optimized":
            raise RuntimeError(f"compile() on a model that is {self.state}: optimize it first")
        return HEF_MAGIC + json.dumps(self.nets).encode()

    # ---- emulation
    @contextlib.contextmanager
    def infer_context(self, inference_context, device_ids=None, nms_score_threshold=None):
        _record("infer_context", inference_context=inference_context)
        if not isinstance(inference_context, InferenceContext):
            raise TypeError(f"inference_context must be an InferenceContext, got {inference_context!r}")
        if inference_context in (InferenceContext.SDK_QUANTIZED, InferenceContext.SDK_BIT_EXACT) and \
                self.state != "optimized":
            raise RuntimeError(f"{inference_context.name} needs an optimized model (it is {self.state})")
        yield {"context": inference_context}

    def infer(self, context, dataset, data_type=InferenceDataType.auto, data_count=None, batch_size=8):
        _record("infer", dataset=getattr(dataset, "shape", None), batch_size=batch_size)
        if not (isinstance(context, dict) and "context" in context):
            raise TypeError("infer() takes the object infer_context() yielded")
        (net, d), = list(self.nets.items())[:1]
        if not isinstance(dataset, np.ndarray) or dataset.ndim != 4 or list(dataset.shape[1:]) != d["input_nhwc"]:
            raise ValueError(f"dataset must be NHWC [N, {d['input_nhwc']}], got {getattr(dataset, 'shape', None)}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        n = len(dataset)
        order = [int(name.rsplit("output_layer", 1)[1]) - 1 for name in self.get_hn_dict()["net_params"]["output_layers_order"]
                 if name.startswith(net + "/")]
        return [np.zeros([n, *d["outputs_nhwc"][d["ends"][i]]], np.float32) for i in order]

    # ---- multi-network
    def join(self, runner, scope1_name=None, scope2_name=None, join_action=JoinAction.NONE, join_action_info=None):
        _record("join", runner=type(runner).__name__, join_action=join_action)
        if not isinstance(runner, ClientRunner):
            raise TypeError("join() takes another ClientRunner")
        if not isinstance(join_action, JoinAction):
            raise TypeError(f"join_action must be a JoinAction, got {join_action!r}")
        if set(self.nets) & set(runner.nets):
            raise ValueError(f"join: both runners hold {sorted(set(self.nets) & set(runner.nets))} (rename a scope)")
        if self.state != runner.state:
            raise ValueError(f"join: a {self.state} model with a {runner.state} one")
        self.nets.update(runner.nets)
