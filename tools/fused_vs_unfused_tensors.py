"""(Run like tools/sim_gap_modes.py, in the quantize image over a finished demo run.)
Per-node: where do the fused (exact) and unfused (reference) sessions of the JMMC pipeline part?
Every QuantizeLinear output (the int8 tensors) is made a graph output; both sessions run one image."""
import numpy as np, onnx
from pathlib import Path
from shared.ort_runtime import open_session
from shared.data import load_split, to_float
src = Path("/work/demo/quantize/prune-joint_l2_r55/pipeline/joint_qat.onnx")
m = onnx.load(str(src))
inits = {t.name: t.data_type for t in m.graph.initializer}
consts = {n.output[0]: n.attribute[0].t.data_type for n in m.graph.node if n.op_type == "Constant" and n.attribute}
qs = [n for n in m.graph.node if n.op_type == "QuantizeLinear" and len(n.input) > 2]
names = [n.output[0] for n in qs]
m.graph.output.extend([onnx.helper.make_tensor_value_info(n.output[0], inits.get(n.input[2], consts.get(n.input[2], onnx.TensorProto.UINT8)), None) for n in qs])
p = Path("/tmp/probe.onnx"); onnx.save(m, str(p))
x = to_float(load_split(Path("/work/demo/dataset"), "test").images("1_noisy", 2))[:1].astype(np.float32)
outs = {}
for mode in ("exact", "reference"):
    s = open_session(p, mode, 1)
    outs[mode] = dict(zip([o.name for o in s.get_outputs()], s.run(None, {s.get_inputs()[0].name: x})))
shown = 0
for t in names:
    a, b = outs["exact"][t].astype(np.int32), outs["reference"][t].astype(np.int32)
    d = np.abs(a - b)
    if d.max() > 1 or shown < 3:
        print(f"{t}: max |diff| {d.max()} LSB, {np.mean(d > 0) * 100:.2f} % differ, range {b.min()}..{b.max()}")
        shown += 1
    if d.max() > 3 and shown > 12:
        break
