"""Tiny QDQ graphs for the ONNX Runtime tests: one builder, the constants as arguments."""
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def qdq_conv(path, w: np.ndarray, w_s=0.01, x_s=1.0, y_s=0.05, y_z=0, pad=0, hw=4, bias=None, b_s=None):
    """x -> Q/DQ (u8) -> Conv(DQ(int8 w), DQ(int32 bias at scale b_s)) -> Q/DQ (u8) -> y.

    ``b_s`` None: the bias at ``x_s * w_s`` (what QLinearConv assumes); another value: the case
    ONNX Runtime 1.23 fuses wrongly (microsoft/onnxruntime#24711)."""
    co, ci = w.shape[:2]
    arr = numpy_helper.from_array
    init = [arr(w.astype(np.int8), "w_q"), arr(np.float32(w_s), "w_s"), arr(np.int8(0), "w_z"),
            arr(np.float32(x_s), "x_s"), arr(np.uint8(0), "x_z"), arr(np.float32(y_s), "y_s"), arr(np.uint8(y_z), "y_z")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "x_s", "x_z"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "x_s", "x_z"], ["xd"]),
             helper.make_node("DequantizeLinear", ["w_q", "w_s", "w_z"], ["wd"])]
    conv_in = ["xd", "wd"]
    if bias is not None:
        scale = np.float32(x_s * w_s if b_s is None else b_s)
        init += [arr(np.round(np.asarray(bias, np.float64) / scale).astype(np.int32), "b_q"),
                 arr(np.full(co, scale, np.float32), "b_s"), arr(np.zeros(co, np.int32), "b_z")]
        nodes.append(helper.make_node("DequantizeLinear", ["b_q", "b_s", "b_z"], ["bd"], axis=0))
        conv_in.append("bd")
    nodes += [helper.make_node("Conv", conv_in, ["c"], pads=[pad] * 4),
              helper.make_node("QuantizeLinear", ["c", "y_s", "y_z"], ["cq"]),
              helper.make_node("DequantizeLinear", ["cq", "y_s", "y_z"], ["y"])]
    g = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, ci, hw, hw])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, co, hw, hw])], init)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), str(path))
    return path
