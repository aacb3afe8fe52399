"""A simulation (AIMET's or NNCF's) computing with ONNX Runtime's x86 int8 kernels: what a fused INT8 file computes.

AIMET's QuantSim and NNCF's quantized model compute each quantized op in float (dequantize, float op,
quantize); ONNX Runtime's fused kernels compute in integers and round in their own order. The two part by
one step on a few values per layer (ties rounded differently), and a three-net int8 cascade spreads such
steps: on the demo's pruned JMMC chain the simulation and its file differ in most head outputs and by about
a point of AP, in either direction, as the same simulation does between 1 and 2 torch threads
(docs/decisions.md, session 14).

:func:`target_kernels` gives the simulation's modules, for a ``with`` block, the arithmetic ONNX Runtime
1.23 uses for the exported file in ``shared.ort_runtime``'s ``exact`` session (``ORT_ENABLE_ALL`` + x64
quantisation precision), every parameter read from the file (``ort_graph``). AIMET v2 lets a quantized
module compute with a kernel of its own (``set_kernel``: "e.g. to simulate a target's integer
arithmetic"); NNCF keeps torch's modules and hooks its quantizers on traced functions, so there the
module's conv / batch-norm call is replaced in a torch function mode and NNCF's quantizers compute the
Q/DQ pair their export writes (session 15). Emulated:

* **QLinearConv** (a Conv between DequantizeLinear and QuantizeLinear, a ReLU between allowed): the
  int32 accumulator of ``(x_q - x_zp) * (w_q - w_zp)`` plus the int32 bias, converted to float32,
  times ``float32(x_s * w_s / y_s)``, rounded half to even, saturated (MLAS ``MlasRequantizeOutput``);
* **ConvTranspose** 2x2 stride 2, which ONNX Runtime 1.23 runs in float: float32 FMAs over the input
  channels in order (MLAS SGEMM; no output overlaps at stride 2), plus the bias, QuantizeLinear;
* **QLinearAdd** (an Add of two DequantizeLinear outputs feeding one QuantizeLinear, a ReLU that ONNX
  Runtime drops allowed): MLAS's AVX2 kernel, ``fma(a, r_a, fma(b, r_b, z_c - fma(r_a, z_a, r_b * z_b)))``
  on the stored values (``r_a = s_a/s_c``, ``r_b = s_b/s_c``), rounded half to even, saturated;
* **float Conv** (no QuantizeLinear right after it: it feeds a float BatchNormalization in cells that
  do not fold BN, or a ReLU whose QuantizeLinear keeps negatives): MlasConv's im2col order, FMAs in K
  blocks of 128 (a depthwise conv: the M=1 SGEMM kernel, products added four at a time), then the bias;
* **BatchNormalization**: ``x * s' + b'`` with ``s'`` and ``b'`` rounded to float32, then QuantizeLinear;
* **Sigmoid** (the detector's score heads): MLAS's logistic, Eigen's rational approximation with FMAs
  (torch's sigmoid is about 1e-7 away), for every sigmoid the sim computes in its forward;
* the sim's per-tensor quantizers round ``x / s`` as QuantizeLinear does (torch's ``fake_quantize``,
  AIMET's fast path, multiplies by ``1 / s``; NNCF rounds on its ``input_low``/``input_range`` grid).

Float adds, ReLU, MaxPool, Resize (nearest) and the copies give the same bits either way. Any other op
stays the simulation's own float arithmetic and is counted in ``coverage["float_ops"]``; a file with
none gives the simulation's outputs bit for bit (``coverage["exact"]``). Each ordering
was measured against single-node graphs in ONNX Runtime 1.23.2 on this project's machines (AMD EPYC,
AVX-512 with VNNI; docs/decisions.md, session 14); another ONNX Runtime or CPU may round elsewhere,
which the stage's per-file gaps (``sim_ort``) would show.
"""
from __future__ import annotations

import contextlib
import weakref
from pathlib import Path

import numpy as np
import torch
from torch.overrides import TorchFunctionMode

from stages.quantize.ort_graph import file_kernels

def _requantize(y: torch.Tensor, scale: torch.Tensor, zp: int, dt) -> torch.Tensor:
    """MLAS requantisation of float32 ``y`` already divided or multiplied into output steps: round half to
    even, add the zero point, saturate; returned dequantized (what the next DequantizeLinear gives)."""
    info = np.iinfo(dt)
    q = torch.clamp(torch.round(y) + zp, info.min, info.max)
    return ((q - zp) * scale).float()


def _fma32(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """float32 fused multiply-add (the product of two float32 is exact in float64)."""
    return (a.double() * b.double() + c.double()).float()


def _plain(x) -> torch.Tensor:
    x = x.dequantize() if hasattr(x, "dequantize") else x
    return x.as_subclass(torch.Tensor)


def _steps(x, scale: float) -> torch.Tensor:
    """The stored ``q - zp`` of a value the simulation holds dequantized (float64, exact)."""
    return torch.round(_plain(x).double() / float(scale))


def _dequantized_input(x, scale: float) -> torch.Tensor:
    """What the file's DequantizeLinear gives for an input the simulation holds dequantized: float32(q * s)."""
    return (_steps(x, scale) * scale).float()


def conv_kernel(p: dict):
    """QLinearConv: the int32 accumulator (exact in float64) plus the int32 bias, times the float32 multiplier."""
    w = torch.from_numpy(p["w"]); b = torch.from_numpy(p["b"])
    mult, ys = torch.from_numpy(p["mult"]).view(1, -1, 1, 1), torch.tensor(p["ys"])

    def kernel(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, output_encodings=None):
        xi = _steps(input, p["xs"])                                           # x_q - x_zp
        acc = torch.nn.functional.conv2d(xi, w, b, stride, padding, dilation, groups)
        return _requantize(acc.float() * mult, ys, p["yz"], p["dt"])
    return kernel


def conv_transpose_kernel(p: dict):
    """ConvTranspose 2x2 stride 2 in float32 as MLAS runs it: FMAs over the input channels in order, + bias, Q."""
    w, b, ys = torch.from_numpy(p["w"]), torch.from_numpy(p["b"]), torch.tensor(p["ys"])

    def kernel(input, weight, bias=None, stride=2, padding=0, output_padding=0, groups=1, dilation=1,
               output_encodings=None):
        x = _dequantized_input(input, p["xs"])
        n, cin, h, wd = x.shape
        cout = w.shape[1]
        acc = torch.zeros(n, cout, h, 2, wd, 2)
        for ci in range(cin):
            acc = _fma32(x[:, ci][:, None, :, None, :, None], w[ci].view(1, cout, 2, 2)[:, :, None, :, None, :], acc)
        y = acc.reshape(n, cout, 2 * h, 2 * wd) + b.view(1, -1, 1, 1)
        return _requantize(y / ys, ys, p["yz"], p["dt"])
    return kernel


def float_conv_kernel(p: dict):
    """A Conv ONNX Runtime runs in float (no QuantizeLinear right after it): MLAS's im2col order; a
    depthwise conv (one filter per group) through the M=1 SGEMM kernel, products added four at a time
    (``((p0 + p1) + p2) + p3``) then into the sum; any other through the FMA3 SGEMM kernel, sequential FMAs
    over blocks of 128 of K, the blocks' sums added; then the bias."""
    w, b = torch.from_numpy(p["w"]), None if p["b"] is None else torch.from_numpy(p["b"])

    def kernel(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, output_encodings=None):
        x = _dequantized_input(input, p["xs"])
        n, _, h, wd = x.shape
        cout, cpg, kh, kw = w.shape
        cols = torch.nn.functional.unfold(x, (kh, kw), dilation, padding, stride)   # n, cin*kh*kw, L
        ho = (h + 2 * _pair(padding)[0] - _pair(dilation)[0] * (kh - 1) - 1) // _pair(stride)[0] + 1
        cols = cols.view(n, groups, cpg * kh * kw, -1)
        wv = w.view(groups, cout // groups, cpg * kh * kw)
        k_all, m1 = cpg * kh * kw, cout // groups == 1
        total = None
        for k0 in range(0, k_all, 4 if m1 else 128):
            part = None
            for k in range(k0, min(k_all, k0 + (4 if m1 else 128))):
                xk, wk = cols[:, :, k][:, :, None, :], wv[:, :, k][None, :, :, None]
                if m1:
                    part = xk * wk if part is None else part + xk * wk
                else:
                    part = _fma32(xk, wk, torch.zeros(()) if part is None else part)
            total = part if total is None else total + part
        y = total.reshape(n, cout, ho, -1)
        return y if b is None else y + b.view(1, -1, 1, 1)
    return kernel


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def batch_norm_kernel(p: dict):
    """BatchNormalization as ONNX Runtime computes it, ``x * s' + b'`` (s' = scale / sqrt(var + eps), b' =
    B - mean * s', each rounded to float32, no FMA), then the QuantizeLinear after it."""
    ns, nb, ys = torch.from_numpy(p["ns"]).view(1, -1, 1, 1), torch.from_numpy(p["nb"]).view(1, -1, 1, 1), torch.tensor(p["ys"])

    def kernel(input, running_mean=None, running_var=None, weight=None, bias=None, training=False, momentum=0.1,
               eps=1e-5, output_encodings=None):
        y = _plain(input).float() * ns + nb
        return _requantize(y / ys, ys, p["yz"], p["dt"])
    return kernel


def qlinear_add(a: torch.Tensor, b: torch.Tensor, p: dict) -> torch.Tensor:
    """MLAS's AVX2 QLinearAdd on the stored values of two dequantized tensors. Its fixed part,
    ``z_c - (s_a/s_c * z_a + s_b/s_c * z_b)``, is scalar C++ the compiler contracts into
    ``fma(s_a/s_c, z_a, s_b/s_c * z_b)`` (measured: without the FMA one input pair in 65536 rounds to the
    other step for some scales, session 15)."""
    f = np.float32
    ra, rb = f(p["sa"] / p["sc"]), f(p["sb"] / p["sc"])
    fixed = f(f(p["zc"]) - f(np.float64(ra) * float(p["za"]) + np.float64(f(rb * f(p["zb"])))))
    qa, qb = (_steps(a, p["sa"]) + p["za"]).float(), (_steps(b, p["sb"]) + p["zb"]).float()
    r = _fma32(qa, torch.tensor(ra), _fma32(qb, torch.tensor(rb), torch.tensor(fixed)))   # the stored value, zero point in
    info = np.iinfo(p["dt"])
    return ((torch.clamp(torch.round(r), info.min, info.max) - p["zc"]) * float(p["sc"])).float()


_LOGISTIC = [float(np.float32(v)) for v in (4.37031012579801e-11, 1.15627324459942e-07, 6.08574864600143e-05,
                                             8.51377133304701e-03, 2.48287947061529e-01)], \
            [float(np.float32(v)) for v in (6.10247389755681e-13, 5.76102136993427e-09, 6.29106785017040e-06,
                                             1.70198817374094e-03, 1.16817656904453e-01, 9.93151921023180e-01)]


def mlas_logistic(x: torch.Tensor) -> torch.Tensor:
    """ONNX Runtime's Sigmoid (MLAS's logistic kernel, Eigen's rational approximation with FMAs): clamp to
    [-18, 18], p(x^2) * x / q(x^2) + 0.5, clamped to [0, 1]."""
    alpha, beta = _LOGISTIC
    v = x.float().clamp(-18.0, 18.0)
    v2 = v * v
    p = _fma32(v2, torch.tensor(alpha[0]), torch.tensor(alpha[1]))
    for a in alpha[2:]:
        p = _fma32(p, v2, torch.tensor(a))
    q = _fma32(v2, torch.tensor(beta[0]), torch.tensor(beta[1]))
    for b in beta[2:]:
        q = _fma32(q, v2, torch.tensor(b))
    return ((p * v) / q + 0.5).clamp(0.0, 1.0)


class _FunctionMode(TorchFunctionMode):
    """While the simulation runs forward: every ``a + b`` whose operands are the recorded outputs of a
    QLinearAdd's two sources computes that QLinearAdd, every sigmoid MLAS's logistic, and the conv / batch
    norm call of a module given a kernel here (``self.kernel``, set by its forward pre-hook) that kernel."""
    ADDS = (torch.Tensor.__add__, torch.add, torch.Tensor.add)
    SIGMOIDS = (torch.Tensor.sigmoid, torch.sigmoid, torch.nn.functional.sigmoid)
    KERNELED = (torch.nn.functional.conv2d, torch.conv2d, torch.nn.functional.conv_transpose2d,
                torch.conv_transpose2d, torch.nn.functional.batch_norm, torch.batch_norm)

    def __init__(self, table: dict, seen: dict, sigmoid: bool):
        super().__init__()
        self.table, self.seen, self.sigmoid, self.forward, self.kernel = table, seen, sigmoid, 0, None

    def _source(self, t):
        e = self.seen.get(id(t))
        return e[0] if e is not None and e[1]() is t else None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if self.kernel is not None and func in self.KERNELED:
            kernel, self.kernel = self.kernel, None
            with torch._C.DisableTorchFunction():
                return kernel(*args, **(kwargs or {}))
        if self.forward and func in self.ADDS and len(args) == 2 and not kwargs \
                and all(isinstance(a, torch.Tensor) for a in args):
            p = self.table.get((self._source(args[0]), self._source(args[1])))
            if p is not None:
                with torch._C.DisableTorchFunction():
                    return qlinear_add(_plain(args[0]), _plain(args[1]), p)
        if self.forward and self.sigmoid and func in self.SIGMOIDS and len(args) == 1 and not kwargs:
            with torch._C.DisableTorchFunction():
                return mlas_logistic(_plain(args[0]))
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def _quantize_linear_rounding():
    """The sim's per-tensor quantizers round ``x / s`` as ONNX Runtime's QuantizeLinear does (MLAS divides),
    not ``x * (1 / s)`` as torch's ``fake_quantize`` (AIMET's fast path): the two part on a value in about a
    thousand of a float op's outputs (the demo's U-Net adds). Per-channel quantizers (weights) are left."""
    from aimet_torch.quantization.affine.backends import torch_builtins as tb
    fast = tb._torch_fake_quantize

    def divide(tensor, scale, offset, qmin, qmax):
        if scale.numel() != 1 or offset.numel() != 1:
            return fast(tensor, scale, offset, qmin, qmax)
        s, zp = scale.float(), -offset.to(torch.int32).float()      # the zero point AIMET's fast path takes
        q = torch.clamp(torch.round(tensor.float() / s) + zp, qmin, qmax)
        return ((q - zp) * s).to(tensor.dtype)
    tb._torch_fake_quantize = divide
    try:
        yield
    finally:
        tb._torch_fake_quantize = fast


def _exact_qdq(quantizer):
    """An NNCF quantizer's forward as the QuantizeLinear/DequantizeLinear pair its export writes: the export's
    scale and zero point, ``x / s`` rounded half to even, saturated to the stored type, times ``s``."""
    def forward(x):
        if not quantizer.is_enabled_quantization():
            return x
        with torch._C.DisableTorchFunction():
            x, s, z, axis = quantizer._prepare_qdq_export_quantization(x)
            info, x = torch.iinfo(z.dtype), _plain(x).float()
            s, z = s.float(), z.float()
            if s.numel() > 1:
                shape = [1] * x.ndim
                shape[axis] = -1
                s, z = s.view(shape), z.view(shape)
            return (torch.clamp(torch.round(x / s) + z, info.min, info.max) - z) * s
    return forward


def _nncf_quantizers(module: torch.nn.Module) -> dict:
    """The quantizers NNCF hooked into ``module``, by the suffix their export gives their QuantizeLinear node
    (``__nncf_hooks.post_hooks.<op>__<port>.<i>`` -> ``<op>__<port>.<i>/QuantizeLinear``); empty for an
    AIMET sim."""
    out = {}
    for name, m in module.named_modules():
        if hasattr(m, "_prepare_qdq_export_quantization"):
            out[name.split(".", 2)[-1] + "/QuantizeLinear"] = m
    return out


def _nncf_quantizer(q_node: str, quantizers: dict) -> str | None:
    """The key of the NNCF quantizer a file's QuantizeLinear node was exported from, else None."""
    parts = q_node.split("/")
    return next((s for s in ("/".join(parts[i:]) for i in range(len(parts))) if s in quantizers), None)


@contextlib.contextmanager
def _nncf_quantize_linear(quantizers: dict):
    """Every NNCF quantizer computes its file's Q/DQ pair (:func:`_exact_qdq`): NNCF's own fake quantisation
    rounds on its ``input_low``/``input_range`` grid, a float ulp or a tie away."""
    for m in quantizers.values():
        m.forward = _exact_qdq(m)
    try:
        yield
    finally:
        for m in quantizers.values():
            del m.forward


@contextlib.contextmanager
def target_kernels(module: torch.nn.Module, onnx_path: Path):
    """Within the block, ``module`` (an AIMET sim's model or an ``nncf.quantize`` model, exported to
    ``onnx_path``) computes what ONNX Runtime's fused kernels compute on the file; yields the coverage:
    {"qlinear_conv", "conv_transpose", "float_conv", "batch_norm", "qlinear_add", "sigmoid": ops emulated,
    "nncf_quantizers": NNCF quantizers set to the file's Q/DQ, "float_ops": {op: count} left to the sim's
    float math, "exact": True when none is}. A file op whose module is missing raises ValueError.

    AIMET's quantized modules take the kernels with ``set_kernel``, and a QLinearAdd is recognised by its
    operands being the outputs of its two source modules (AIMET's quantizers sit on module outputs). NNCF
    keeps torch's modules and hooks its quantizers on traced functions: a module's conv / batch norm call is
    replaced in the function mode, under NNCF's, and an Add's operands are the outputs of its quantizers."""
    k = file_kernels(onnx_path)
    mods = dict(module.named_modules())
    quantizers = _nncf_quantizers(module)
    if quantizers:
        adds = {tuple(_nncf_quantizer(q, quantizers) for q in p["q_nodes"]): p for p in k["add"].values()}
        watched = {n: quantizers[n] for pair in adds for n in pair if n is not None}
    else:
        adds = dict(k["add"])
        watched = {s: mods.get(s) for pair in adds for s in pair}
    missing = [name for name in [*k["conv"], *k["conv_transpose"], *k["float_conv"], *k["batch_norm"]]
               if name not in mods] + [name for name, m in watched.items() if m is None]
    missing += [p["q_nodes"] for pair, p in adds.items() if None in pair]
    if missing:
        raise ValueError(f"{Path(onnx_path).name}: no module of the simulation for {missing[:3]} "
                         f"({len(missing)} in all): is this the file of that sim?")
    seen: dict = {}
    mode = _FunctionMode(adds, seen, k["sigmoid"] > 0)
    kerneled, hooks = [], []
    try:
        for table, make in ((k["conv"], conv_kernel), (k["conv_transpose"], conv_transpose_kernel),
                            (k["float_conv"], float_conv_kernel), (k["batch_norm"], batch_norm_kernel)):
            for name, p in table.items():
                if hasattr(mods[name], "set_kernel"):
                    mods[name].set_kernel(make(p))
                    kerneled.append(mods[name])
                else:
                    hooks.append(mods[name].register_forward_pre_hook(
                        lambda m, i, kernel=make(p): setattr(mode, "kernel", kernel)))
        for name, m in watched.items():
            hooks.append(m.register_forward_hook(
                lambda m, i, o, name=name: seen.__setitem__(id(o), (name, weakref.ref(o)))))

        def enter(m, i):
            seen.clear()
            mode.forward += 1

        def leave(m, i, o):
            mode.forward -= 1
        hooks += [module.register_forward_pre_hook(enter), module.register_forward_hook(leave)]
        float_ops = dict(k["float_ops"])
        with mode, _quantize_linear_rounding(), _nncf_quantize_linear(quantizers):
            yield {"qlinear_conv": len(k["conv"]), "conv_transpose": len(k["conv_transpose"]),
                   "float_conv": len(k["float_conv"]), "batch_norm": len(k["batch_norm"]),
                   "qlinear_add": len(adds), "sigmoid": k["sigmoid"], "nncf_quantizers": len(quantizers),
                   "float_ops": float_ops, "exact": not float_ops}
    finally:
        for m in kerneled:
            m.set_kernel(None)
        for h in hooks:
            h.remove()
