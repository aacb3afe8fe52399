"""End-node discovery and ONNX checks, on miniature graphs and on the train stage's real yunet.onnx."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from conftest import REPO, mini_restoration, mini_yunet
from stages.hailo import graph, post

HEADS = {"cls": 1, "obj": 1, "bbox": 4, "kps": 10}


def test_yunet_end_nodes_are_the_head_convs(tmp_path):
    info = graph.inspect(mini_yunet(tmp_path / "yunet.onnx"))
    assert info.role == "yunet" and info.input_name == "input" and info.input_shape == [1, 3, 64, 64]
    assert len(info.end_nodes) == 12
    for head in HEADS:
        for i, s in enumerate((8, 16, 32)):
            assert info.end_nodes[f"{head}_{s}"] == f"/bbox_head/multi_level_{head}.{i}/conv2/Conv"
            want = ["Transpose", "Reshape"] + (["Sigmoid"] if head in ("cls", "obj") else [])
            assert info.cut_ops[f"{head}_{s}"] == want
    assert info.unsupported_ops == []          # Transpose/Reshape are cut away, Sigmoid too


def test_restoration_ends_at_the_residual_add(tmp_path):
    info = graph.inspect(mini_restoration(tmp_path / "denoiser.onnx"))
    assert info.role == "denoiser" and info.end_nodes == {"output": "/Add"} and info.cut_ops == {"output": []}


def test_host_post_reproduces_the_onnx_outputs(tmp_path):
    """Cut at the end nodes, run the host ops on NHWC maps: identical to the full ONNX graph."""
    path = mini_yunet(tmp_path / "yunet.onnx")
    info = graph.inspect(path)
    model = onnx.load(path)
    ends = list(dict.fromkeys(info.end_nodes.values()))
    for e in ends:
        model.graph.output.append(onnx.ValueInfoProto(name=e + "_output_0"))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).uniform(0, 255, (1, 3, 64, 64)).astype(np.float32)
    outs = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"input": x})))
    nhwc = [outs[e + "_output_0"].transpose(0, 2, 3, 1) for e in ends]
    got = post.as_onnx_outputs(nhwc, ends, info)
    for name, g in zip(info.outputs, got):
        np.testing.assert_allclose(g, outs[name], rtol=1e-5, atol=1e-6)


def test_bad_inputs_are_named(tmp_path):
    with pytest.raises(graph.GraphError, match="missing"):
        graph.inspect(tmp_path / "yunet.onnx")
    with pytest.raises(graph.GraphError, match="role"):
        graph.role_of("foo.onnx")
    (tmp_path / "enhancer.onnx").write_bytes(b"not onnx")
    with pytest.raises(graph.GraphError, match="enhancer.onnx: not a valid ONNX"):
        graph.inspect(tmp_path / "enhancer.onnx")


def test_map_outputs_from_hn():
    hn = {"net_params": {"output_layers_order": ["y/output_layer2", "y/output_layer1"]},
          "layers": {"y/conv5": {"type": "conv", "original_names": ["/bbox_head/multi_level_cls.0/conv2/Conv"]},
                     "y/conv6": {"type": "conv", "original_names": ["/bbox_head/multi_level_obj.0/conv2/Conv"]},
                     "y/output_layer1": {"type": "output_layer", "input": ["y/conv5"]},
                     "y/output_layer2": {"type": "output_layer", "input": ["y/conv6"]}}}
    ends = ["/bbox_head/multi_level_cls.0/conv2/Conv", "/bbox_head/multi_level_obj.0/conv2/Conv"]
    assert post.map_outputs(hn, ends) == ends[::-1]
    with pytest.raises(ValueError, match="do not cover"):
        post.map_outputs(hn, ends + ["/other/Conv"])


def _real_yunet():
    roots = [Path(os.environ.get("JMMC_WORK", "/work")), REPO / "volumes"]
    for root in roots:
        for run in ("smoke", "demo", "paper"):
            p = root / run / "train" / "yunet.onnx"
            if p.exists():
                return p
    return None


@pytest.mark.skipif(_real_yunet() is None, reason="no train-stage yunet.onnx under volumes/{smoke,demo,paper}/train")
def test_end_nodes_on_the_real_yunet():
    info = graph.inspect(_real_yunet())
    assert sorted(info.outputs) == sorted(f"{h}_{s}" for h in HEADS for s in (8, 16, 32))
    for head in HEADS:
        for i, s in enumerate((8, 16, 32)):
            assert info.end_nodes[f"{head}_{s}"] == f"/bbox_head/multi_level_{head}.{i}/conv2/Conv"
    assert info.unsupported_ops == []
