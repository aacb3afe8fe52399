"""Layer by layer: where does an INT8 file part from its AIMET simulation, with and without ONNX Runtime's
kernels in the simulation (stages/quantize/ort_kernels.py; docs/decisions.md, session 14)?

Rebuilds the sim of one PTQ cell of a finished run (the same deterministic PTQ; 1 thread, as the stage's
cells run, so the encodings equal the file's), runs both on a few test images and prints, per quantized
tensor the two share (a module's quantized output against the file's DequantizeLinear of it), how many
values differ and by how many steps, then the graph outputs. ``--joint-qat`` fine-tunes the rebuilt sim
as the stage's joint QAT does and compares it with its own export (how the FMA in QLinearAdd's fixed
part was found, session 15).

In the quantize image over a finished demo run:

    docker run --rm -v $PWD:/app -v $PWD/volumes:/work -w /app -e PYTHONPATH=/app -e OMP_NUM_THREADS=1 \\
        jmmc/quantize:local python tools/kernel_sim_tensors.py --cell bn_fold+cle [--plain] [--images 4]
"""
import argparse
import json
from pathlib import Path

import numpy as np
import onnx
import torch

from shared.data import to_float
from shared.evaluation import as_fn
from shared.models import OUTPUT_NAMES
from shared.models.bundle import is_bundle
from shared.ort_runtime import open_session
from stages.quantize import aimet_ptq, candidates, onnx_io
from stages.quantize.file_bias import module_path
from stages.quantize.grid import Cell
from stages.quantize.methods import folder_name, make_runner
from stages.quantize.ort_kernels import target_kernels
from stages.quantize.qat import qat

ap = argparse.ArgumentParser()
ap.add_argument("--run", type=Path, default=Path("/work/demo"))
ap.add_argument("--candidate", default="prune:joint_l2_r55", help="stage:kind")
ap.add_argument("--cell", default="bn_fold+cle", help="PTQ technique of the W8A8 min_max seed-0 cell")
ap.add_argument("--images", type=int, default=4)
ap.add_argument("--plain", action="store_true", help="the float simulation, without the kernels")
ap.add_argument("--joint-qat", action="store_true",
                help="fine-tune the rebuilt sim as the stage's joint QAT does and compare it with its own export")
a = ap.parse_args()
q = a.run / "quantize"
cfg = json.loads((q / "manifest.json").read_text())["config"]
stage, kind = a.candidate.split(":")
cand = candidates.Candidate(stage, kind, next(p for p in candidates.places(a.run / stage, kind) if is_bundle(p)))
r = make_runner(Path("/tmp/kernel_sim"), a.run / "dataset", cfg)
pipe = candidates.load(cand)
r.upstream = {n: as_fn(candidates.unit(pipe, n)) for n in ("enhancer", "denoiser")}
cell = Cell(a.cell, False, "W8A8", 0, cfg["quantize"]["ptq"]["quant_scheme"])
torch.set_num_threads(1)
sim, _ = aimet_ptq.ptq(pipe, cell, r.calib("pipeline", cell.seed, r.proto.batch), Path("/tmp/kernel_sim/w"), 0)
f = q / folder_name(cand.name) / "pipeline" / f"{cell.name}.onnx"
if a.joint_qat:    # as stages/quantize/candidate._joint_qat: the sim trained, then exported here
    import logging
    jc = cfg["quantize"]["joint"]
    qat(sim, "pipeline", r.train, jc, r.proto.variant, cfg["seed"], logging.getLogger("kernel_sim"),
        {"w_det": jc["w_det"], "w_den": jc["w_den"], "w_lle": jc["w_lle"]})
    dummy = r.calib("pipeline", cfg["seed"], r.proto.batch)[0][:1]
    f = Path("/tmp/kernel_sim") / onnx_io.export_qdq(sim, "pipeline", dummy, Path("/tmp/kernel_sim/joint_qat"),
                                                      r.opset, r.int8_weights)["onnx"]
x = torch.from_numpy(to_float(r.test.images(r.proto.variant, a.images)).astype(np.float32))

outs = {}
for n, m in sim.model.named_modules():
    m.register_forward_hook(lambda m, i, o, n=n: outs.__setitem__(n, o.detach().clone()) if torch.is_tensor(o) else None)
with torch.no_grad():
    if a.plain:
        sim_y = sim.model(x)
    else:
        with target_kernels(sim.model, f) as cover:
            sim_y = sim.model(x)
        print("kernels:", cover)

g = onnx.load(str(f))
scales = {t.name: onnx.numpy_helper.to_array(t) for t in g.graph.initializer}
dqs = [n for n in g.graph.node if n.op_type == "DequantizeLinear" and n.input[0] not in scales]
g.graph.output.extend(onnx.helper.make_tensor_value_info(n.output[0], onnx.TensorProto.FLOAT, None) for n in dqs)
probe = Path("/tmp/kernel_sim/probe.onnx")
probe.parent.mkdir(parents=True, exist_ok=True)
onnx.save(g, str(probe))
sess = open_session(probe, "exact", 1)
names = [o.name for o in sess.get_outputs()]
runs = [dict(zip(names, sess.run(None, {"input": x[i:i + 1].numpy()}))) for i in range(len(x))]
ort = {k: np.concatenate([o[k] for o in runs]) for k in names}
mods = dict(sim.model.named_modules())
for n in dqs:
    mod = module_path(n.output[0]) if n.output[0].startswith("/") else None
    s = scales.get(n.input[1])
    quantizers = getattr(mods.get(mod), "output_quantizers", None)
    if not quantizers or quantizers[0] is None:     # a container's raw float output, quantized by its consumer
        continue
    if mod not in outs or s is None or s.size != 1 or outs[mod].shape != ort[n.output[0]].shape:
        continue
    d = np.abs(outs[mod].numpy() - ort[n.output[0]]) / float(s)
    print(f"{mod:55s} differ {100 * np.mean(d > 0.5):7.3f} %  max {d.max():5.1f} steps"
          f"  (not bit-equal {100 * np.mean(d > 0):7.3f} %)")
for k, y in zip(OUTPUT_NAMES, sim_y):
    print(f"{k:8s} max |sim - file| {np.abs(y.numpy() - ort[k]).max():.3g}")
