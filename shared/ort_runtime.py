"""How this project opens ONNX Runtime CPU sessions: one place, for accuracy and latency alike.

Modes (``open_session(path, mode=...)``):

* ``exact`` (default): ``ORT_ENABLE_ALL`` (QDQ pairs fused into QLinearConv / the NCHWc
  kernels) plus ``session.x64quantprecision = 1``.  On x86 CPUs without VNNI the fused
  u8 x s8 kernels sum pairs of products in int16 (AVX2 ``VPMADDUBSW``) and saturate; the
  option makes ONNX Runtime use its u8 x u8 kernels there, which are exact.  On CPUs with
  VNNI (and for FP32 graphs) it changes nothing.  So an int8 file is evaluated and timed
  with the same fused kernels, and the answer follows the file's int8 grid.
* ``reference``: ``ORT_ENABLE_BASIC``: Q/DQ nodes stay as written (DQ -> float Conv -> Q):
  the file's int8 semantics by construction, slowly.  Kept to check ``exact`` against.
* ``fast``: ``ORT_ENABLE_ALL`` without the option: the default u8 x s8 kernels, which
  saturate on AVX2 without VNNI (measured on such a machine: the demo's int8 YuNet fell
  from AP 0.85 to 0.00).  Reported beside the others to show what a default session gives.
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
    return {"ort_graph_optimization": str(so.graph_optimization_level).split(".")[-1],
            "ort_x64quantprecision": so.get_session_config_entry(X64_PRECISION) == "1"
            if _has_entry(so, X64_PRECISION) else False}


def _has_entry(so, key: str) -> bool:
    try:
        so.get_session_config_entry(key)
        return True
    except Exception:   # ORT raises when the key was never set
        return False


def cpu_int8_features(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict:
    """Which int8 dot-product instructions this CPU has (VNNI decides whether ``fast`` saturates)."""
    try:
        flags = set(next(ln for ln in cpuinfo.read_text().splitlines() if ln.startswith("flags")).split(":")[1].split())
    except (OSError, StopIteration, IndexError):
        return {"known": False}
    return {"known": True, "avx2": "avx2" in flags, "avx512f": "avx512f" in flags,
            "vnni": bool(flags & {"avx512_vnni", "avx_vnni", "avx512vnni"})}
