"""Artifact records: the schema every producing stage writes and the report reads."""
import json
import logging

import pytest

from shared import artifacts
from shared.stage import StageContext


def ctx(tmp_path):
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "enhancer.onnx").write_bytes(b"x")
    return StageContext("toy", {}, {}, tmp_path, tmp_path, 0, logging.getLogger("test"))


def test_record_defaults_chain_to_the_folder_and_format_to_the_suffix(tmp_path):
    c = ctx(tmp_path)
    import numpy as np
    rec = c.artifact(tmp_path / "v" / "enhancer.onnx", "enhancer", "fp32", metrics={"psnr": np.float32(30.5)})
    assert rec == {"file": "v/enhancer.onnx", "role": "enhancer", "precision": "fp32", "format": "onnx",
                   "chain": "v", "label": None, "metrics": {"psnr": 30.5}, "cost": None}
    assert type(rec["metrics"]["psnr"]) is float
    c.artifact("v/enhancer.onnx", "enhancer", "int8", metrics={"psnr": 29.0})   # a later record replaces it
    assert [r["precision"] for r in c.artifacts] == ["int8"]
    json.dumps(c.artifacts)


@pytest.mark.parametrize("kw, msg", [
    ({"role": "yunet"}, "role 'yunet' is not one of"),
    ({"precision": "w8a8"}, "precision 'w8a8'"),
    ({"metrics": {"loss": 1.0}}, "carries none of"),
    ({"cost": {"flops": 1}}, "unknown 'cost' keys"),
    ({"path": "v/missing.onnx"}, "no such file"),
    ({"path": "../x.onnx"}, "relative to the stage dir"),
])
def test_bad_records_name_the_file_and_key(tmp_path, kw, msg):
    c = ctx(tmp_path)
    args = {"path": "v/enhancer.onnx", "role": "enhancer", "precision": "fp32", **kw}
    with pytest.raises(artifacts.ArtifactError, match=msg):
        c.artifact(args.pop("path"), **args)


def test_manifest_check_refuses_duplicates_and_empty_chains(tmp_path):
    c = ctx(tmp_path)
    rec = c.artifact("v/enhancer.onnx", "enhancer", "int8+int16")
    with pytest.raises(artifacts.ArtifactError, match="recorded twice"):
        artifacts.check_manifest({"stage": "toy", "artifacts": [rec, rec]})
    with pytest.raises(artifacts.ArtifactError, match=r"chains\['v'\]"):
        artifacts.check_manifest({"stage": "toy", "artifacts": [rec], "chains": {"v": {"loss": 1}}})
    with pytest.raises(artifacts.ArtifactError, match="must be a list"):
        artifacts.check_manifest({"stage": "toy"})


def test_onnx_precision_reads_the_zero_point_types(tmp_path):
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    inits = [numpy_helper.from_array(np.array(0.1, np.float32), "s"), numpy_helper.from_array(np.array(0, np.int8), "z8"),
             numpy_helper.from_array(np.array(0, np.uint16), "z16")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z8"], ["q"]), helper.make_node("DequantizeLinear", ["q", "s", "z8"], ["d"]),
             helper.make_node("QuantizeLinear", ["d", "s", "z16"], ["q2"]), helper.make_node("DequantizeLinear", ["q2", "s", "z16"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])
    assert artifacts.onnx_precision(m) == "int8+uint16"
    onnx.save(m, tmp_path / "q.onnx")
    assert artifacts.onnx_precision(tmp_path / "q.onnx") == "int8+uint16"
    g2 = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", g.input, g.output)
    assert artifacts.onnx_precision(helper.make_model(g2)) == "fp32"
