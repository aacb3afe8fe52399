"""Hailo stage tests: miniature ONNX graphs built with onnx.helper (the image has no torch), a tiny
dataset on disk, the schema defaults, and the `needs_hailo_sdk` marker (skipped without the DFC)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[3]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import onnx  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

SIZE = 64


def pytest_configure(config):
    config.addinivalue_line("markers", "needs_hailo_sdk: needs the Hailo Dataflow Compiler (hailo_sdk_client)")


def pytest_collection_modifyitems(config, items):
    try:
        import hailo_sdk_client  # noqa: F401
        return
    except Exception:  # noqa: BLE001
        skip = pytest.mark.skip(reason="hailo_sdk_client not importable (Hailo DFC wheel not in volumes/wheelhouse)")
    for item in items:
        if "needs_hailo_sdk" in item.keywords:
            item.add_marker(skip)


def _conv(name, x, out, cin, cout, k, stride, rng, inits):
    w = numpy_helper.from_array((rng.standard_normal((cout, cin, k, k)) * 0.05).astype(np.float32), name + ".w")
    b = numpy_helper.from_array(np.zeros(cout, np.float32), name + ".b")
    inits += [w, b]
    return helper.make_node("Conv", [x, w.name, b.name], [out], name=name, kernel_shape=[k, k], strides=[stride, stride])


def mini_yunet(path: Path, size: int = SIZE) -> Path:
    """YuNet-shaped graph: per stride s, one conv per head (named like the real export), then the
    exporter's Transpose -> Reshape (-> Sigmoid for cls/obj) to OpenCV's [1, H*W, C] layout."""
    rng = np.random.default_rng(0)
    nodes, inits, outputs = [], [], []
    nodes.append(_conv("/backbone/model0/conv1/Conv", "input", "feat", 3, 8, 1, 1, rng, inits))
    nodes.append(helper.make_node("Relu", ["feat"], ["feat_r"], name="/backbone/Relu"))
    k = 0
    for head, c in (("cls", 1), ("obj", 1), ("bbox", 4), ("kps", 10)):
        for i, s in enumerate((8, 16, 32)):
            conv = f"/bbox_head/multi_level_{head}.{i}/conv2/Conv"
            nodes.append(_conv(conv, "feat_r", conv + "_output_0", 8, c, s, s, rng, inits))
            shape = numpy_helper.from_array(np.array([1, -1, c], np.int64), f"/Constant_{k}_output_0")
            nodes.append(helper.make_node("Constant", [], [shape.name], name=f"/Constant_{k}", value=shape))
            nodes.append(helper.make_node("Transpose", [conv + "_output_0"], [f"/Transpose_{k}_output_0"],
                                          name=f"/Transpose_{k}", perm=[0, 2, 3, 1]))
            name = f"{head}_{s}"
            last = name if head in ("bbox", "kps") else f"/Reshape_{k}_output_0"
            nodes.append(helper.make_node("Reshape", [f"/Transpose_{k}_output_0", shape.name], [last], name=f"/Reshape_{k}"))
            if head in ("cls", "obj"):
                nodes.append(helper.make_node("Sigmoid", [last], [name], name=f"/Sigmoid_{k}"))
            outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, (size // s) ** 2, c]))
            k += 1
    graph = helper.make_graph(nodes, "yunet", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, size, size])],
                              outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def mini_restoration(path: Path, size: int = SIZE, seed: int = 1) -> Path:
    """output = input + conv(relu(conv(input))): the restoration nets' global residual, ending in /Add."""
    rng = np.random.default_rng(seed)
    inits = []
    nodes = [_conv("/stem/Conv", "input", "a", 3, 4, 3, 1, rng, inits),
             helper.make_node("Relu", ["a"], ["b"], name="/stem/Relu"),
             _conv("/head/Conv", "b", "r", 4, 3, 1, 1, rng, inits),
             helper.make_node("Add", ["input", "r"], ["output"], name="/Add")]
    nodes[0].attribute.extend([helper.make_attribute("pads", [1, 1, 1, 1])])
    io = lambda n: helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3, size, size])  # noqa: E731
    model = helper.make_model(helper.make_graph(nodes, "restoration", [io("input")], [io("output")], inits),
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def mini_dataset(root: Path, n: int = 4, size: int = SIZE) -> Path:
    rng = np.random.default_rng(2)
    for split in ("test", "calibration"):
        recs = []
        for i in range(n):
            images = {}
            for v in ("0", "1", "2", "0_noisy", "1_noisy"):
                rel = f"{i:03d}_{v}.png"
                (root / split).mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(root / split / rel), rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
                images[v] = rel
            recs.append({"images": images, "faces": [{"box": [10, 12, 40, 44],
                                                      "landmarks": [[20, 22], [30, 22], [25, 28], [21, 36], [29, 36]]}]})
        (root / split / "index.json").write_text(json.dumps(recs))
    return root


@pytest.fixture(scope="session")
def hailo_cfg():
    from shared.config import load_schema, defaults
    return defaults(load_schema()["hailo"])


@pytest.fixture(scope="session")
def full_config(hailo_cfg):
    from shared.config import load_schema, defaults
    d = defaults(load_schema())
    d["hailo"] = hailo_cfg
    return d


@pytest.fixture(scope="session")
def work(tmp_path_factory):
    """A run dir with dataset/ and train/ (mini enhancer, denoiser, yunet)."""
    run = tmp_path_factory.mktemp("run")
    mini_dataset(run / "dataset")
    (run / "train").mkdir()
    mini_restoration(run / "train" / "enhancer.onnx", seed=1)
    mini_restoration(run / "train" / "denoiser.onnx", seed=3)
    mini_yunet(run / "train" / "yunet.onnx")
    return run
