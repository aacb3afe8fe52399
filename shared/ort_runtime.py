"""How this project opens ONNX Runtime CPU sessions: one place, for accuracy and latency alike.

Modes (``open_session(path, mode=...)``):

* ``exact`` (default): ``ORT_ENABLE_ALL`` (QDQ pairs fused into QLinearConv / the NCHWc kernels)
  plus ``session.x64quantprecision = 1``, which makes ONNX Runtime use its u8 x u8 kernels on x86
  CPUs without VNNI, where the u8 x s8 ones sum pairs of products in int16 (AVX2 ``VPMADDUBSW``)
  and saturate.  The fused kernels compute the file's int8 semantics only when each int32 bias sits
  at ``x_scale * w_scale``: ONNX Runtime 1.23 fuses a Conv whose bias DQ has another scale anyway
  and then computes something else (microsoft/onnxruntime#24711; the demo's AIMET YuNet scored AP
  0.00 fused vs 0.91 simulated).  The quantize stage writes every file that way (``shared.qdq_bias``)
  and ``shared.evaluation.accuracy_mode`` picks this mode only for files that are.
* ``reference``: ``ORT_ENABLE_BASIC``: Q/DQ nodes stay as written (DQ -> float Conv -> Q): the
  file's int8 semantics by construction, about 4x slower; for QDQ files from elsewhere.
* ``fast``: ``ORT_ENABLE_ALL`` without the option: the default kernels, which saturate on AVX2
  without VNNI.  Reported beside the others to show what a default session gives.
"""
from __future__ import annotations

import os
from pathlib import Path

MODES = ("exact", "reference", "fast")
X64_PRECISION = "session.x64quantprecision"


def session_options(mode: str = "exact", threads: int = 0, profile_prefix: str | None = None):
    """SessionOptions for ``mode`` with ``threads`` intra-op threads (0: ``$JMMC_THREADS``, the share of the
    cores ``invoke all --jobs N`` gives each stage, else ONNX Runtime's default: every core);
    ``profile_prefix``: ONNX Runtime's per-node profiling on, its JSON trace written there."""
    import onnxruntime as ort
    if mode not in MODES:
        raise ValueError(f"ONNX Runtime session mode {mode!r}: expected one of {', '.join(MODES)}")
    so = ort.SessionOptions()
    so.log_severity_level = 3
    threads = threads if threads > 0 else int(os.environ.get("JMMC_THREADS") or 0)   # the driver's share (--jobs)
    if threads > 0:
        so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if mode == "reference":
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    else:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if mode == "exact":
            so.add_session_config_entry(X64_PRECISION, "1")
    if profile_prefix:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    return so


def open_session(path, mode: str = "exact", threads: int = 0, profile_prefix: str | None = None):
    """An ONNX Runtime CPU-EP session of ``path`` (see the module docstring for ``mode``)."""
    import onnxruntime as ort
    return ort.InferenceSession(os.fspath(path), session_options(mode, threads, profile_prefix),
                                providers=["CPUExecutionProvider"])


def describe(sess) -> dict:
    """How a session was opened, for a manifest: optimisation level and the precision option."""
    so = sess.get_session_options()
    try:
        x64 = so.get_session_config_entry(X64_PRECISION) == "1"
    except Exception:   # noqa: BLE001 - ORT raises when the key was never set
        x64 = False
    return {"ort_graph_optimization": str(so.graph_optimization_level).split(".")[-1], "ort_x64quantprecision": x64}


def cpu_int8_features(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict:
    """Which int8 dot-product instructions this CPU has (VNNI decides whether ``fast`` saturates)."""
    try:
        flags = set(next(ln for ln in cpuinfo.read_text().splitlines() if ln.startswith("flags")).split(":")[1].split())
    except (OSError, StopIteration, IndexError):
        return {"known": False}
    return {"known": True, "avx2": "avx2" in flags, "avx512f": "avx512f" in flags,
            "vnni": bool(flags & {"avx512_vnni", "avx_vnni", "avx512vnni"})}
