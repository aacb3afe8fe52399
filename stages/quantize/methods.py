"""One quantized variant, measured twice: in the simulation (torch) and as INT8 ONNX in ONNX Runtime.

``Runner`` holds the splits, the protocol and the output folder; ``record`` evaluates a
quantized torch module, exports it, evaluates the ONNX file, computes the gap and
returns a results row.  ``chained_onnx`` runs three ONNX files in series (the
independently quantized models chained) as one callable for the protocol.

Split discipline (``shared.selection``): a row's ``sim`` and ``onnx`` figures are
measured on the *test* split (``row["split"] == "test"``, reported only); ``sim_val``
is the simulation on the *val* split, measured only so that a choice (the W8A8 PTQ
cell QAT starts from, the best INT8 pipeline) can be made without looking at test:
``choose`` refuses any other split.  The test-split detections of detection rows are
kept (``Runner.dets``) so that intervals are bootstrapped from the run that gave the
reported AP, without detecting again.
"""
from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from shared import calibration, units
from shared.artifacts import METRIC_KEYS, onnx_precision
from shared.data import load_split
from shared.manifest import MissingInput
from shared.evaluation import accuracy_mode, ort_session   # exact (fused) unless a bias is off scale
from shared.selection import SelectionError, check_selection_split, pick_best
from stages.quantize import measure, onnx_io
from stages.quantize.file_bias import file_biases
from stages.quantize.ort_kernels import target_kernels

log = logging.getLogger("stages.quantize")
GAP_WARN = 0.02
REPORTED, SELECT = "test", "val"   # the split every reported figure is from / the one choices are made on


@dataclass
class Runner:
    out: Path
    test: object
    calib_split: object
    train: object
    proto: object
    opset: int
    int8_weights: bool
    val: object = None
    rows: list = field(default_factory=list)
    dets: dict = field(default_factory=dict)   # row_key(row) -> {"sim": [...], "onnx": [...]} on test
    keep_dets: tuple = ("pipeline",)           # the units whose comparisons get intervals (whole system)
    ctx: object = None                         # the stage context: each row's ONNX file gets its artifact record
    calibration: dict = field(default_factory=lambda: {"images": None, "source": "chain"})  # config section
    upstream: dict = field(default_factory=dict)   # the current candidate's FP32 nets, {unit: fn} (source: chain)
    n_boot: int = 1000                             # bootstrap resamples of a row's sim-vs-ONNX AP gap interval
    seed: int = 0

    def calib(self, name: str, seed: int, batch: int, images: int | None = None) -> list[torch.Tensor]:
        """Calibration batches for a unit in its input units (shared.calibration: the run's
        ``calibration`` section, the images a ``seed`` subset; ``images`` overrides their number)."""
        spec = {**self.calibration, **({"images": images} if images else {})}
        x = calibration.inputs(self.calib_split, spec, self.proto.variant, seed, [name], self.upstream)[name]
        x = torch.from_numpy(calibration.scaled(x, name))
        return [x[i:i + batch] for i in range(0, len(x), batch)]

    def measure(self, system, name: str, selectable: bool = True) -> tuple[dict, dict | None, list | None]:
        """(test metrics, val metrics or None, test detections or None) of one system."""
        m, dets = measure.evaluate(system, name, self.test, self.proto, return_dets=True)
        val = measure.evaluate(system, name, self.val, self.proto) if selectable and self.val is not None else None
        return m, val, dets

    def gap_interval(self, name: str, sim_dets, onnx_dets) -> dict | None:
        """AP(ONNX file) - AP(simulation) on the test images with its paired bootstrap 95 % interval
        (detection units; None otherwise): whether a sim-vs-runtime gap is more than the test split resolves."""
        if name not in measure.DETECTION or sim_dets is None or onnx_dets is None:
            return None
        return {"a": "onnx", "b": "sim", **measure.ap_diff(onnx_dets, sim_dets, self.test, self.proto, self.n_boot,
                                                           self.seed)}

    def target_sim(self, name: str, module, onnx_path: Path, mode: str, onnx_dets) -> dict | None:
        """The simulation (an AIMET sim's model or an ``nncf.quantize`` model) measured again with ONNX
        Runtime's int8 kernels (``ort_kernels``) on the test split: {"metrics", "coverage", "gap_ap" (file
        minus it, paired interval)}; for the detection units whose file is measured fused (``mode`` ``exact``),
        else None. Reported only: choices stay on the float simulation on val."""
        if name not in measure.DETECTION or mode != "exact":
            return None
        with file_biases(module, onnx_path), target_kernels(module, onnx_path) as cover:
            m, _, dets = self.measure(module, name, selectable=False)
        log.info("%s: the sim computing with ONNX Runtime's kernels %s (%s)", onnx_path.relative_to(self.out), _short(m),
                 "every op" if cover["exact"] else f"float ops left: {cover['float_ops']}")
        return {"metrics": m, "coverage": cover, "gap_ap": {"a": "onnx", "b": "sim_ort", **measure.ap_diff(
            onnx_dets, dets, self.test, self.proto, self.n_boot, self.seed)}}

    def add(self, row: dict, sim_dets=None, onnx_dets=None) -> dict:
        """Append a row (tagged with the split of its sim/onnx figures); keep its test detections."""
        row.setdefault("split", REPORTED)
        kept = row["model"] in self.keep_dets and row["bits"] in ("FP32", "W8A8")
        if kept and (sim_dets is not None or onnx_dets is not None):
            self.dets[row_key(row)] = {"sim": sim_dets, "onnx": onnx_dets}
        self.rows.append(row)
        self.describe(row)
        return row

    def describe(self, row: dict) -> None:
        """The artifact record (shared/artifacts.py) of the ONNX file a row measured: role = the unit
        (``row["model"]``), precision of the written graph (its zero points' types for QDQ files),
        chain = its folder, metrics = the row's ONNX Runtime measurement.  A file measured again
        (a later row naming it) gets the later row's record.  Rows without a file of their own (the
        independently QAT'd nets chained: each file has its own row) record nothing."""
        rel = row.get("onnx_file")
        if self.ctx is None or not isinstance(rel, str) or not rel.endswith(".onnx"):
            return
        path = self.out / rel
        if not path.is_file() or any(part.startswith(".") for part in Path(rel).parts):
            return
        precision = "fp32" if row["bits"] == "FP32" else onnx_precision(path)
        onnx_m = row.get("onnx")
        metrics = onnx_m if isinstance(onnx_m, dict) and set(METRIC_KEYS) & set(onnx_m) else None
        self.ctx.artifact(path, row["model"], precision, chain=Path(rel).parent.as_posix(), metrics=metrics)

    def forget(self, cand: str) -> None:
        """Drop a finished candidate's kept detections (memory: several per pipeline row)."""
        self.dets = {k: v for k, v in self.dets.items() if k[0] != cand}

    def record(self, cand: str, name: str, method: str, bits: str, seed: int, module, sim, dummy, stem: str,
               fp32_bytes: int | None, extra: dict | None = None, onnx_exporter=None, add: bool = True):
        """Export a quantized unit, measure its simulation (test + val) with the file's int32 biases
        (``file_bias``) and the ONNX file; the row, added (``add``) or returned with its test detections
        as (row, sim_dets, onnx_dets)."""
        t0 = time.time()
        path = self.out / folder_name(cand) / name / stem
        if onnx_exporter is not None:
            info = onnx_exporter(path)
        else:
            info = onnx_io.export_qdq(sim, name, dummy, path, self.opset, self.int8_weights)
        onnx_path = path.with_suffix(".onnx")
        with file_biases(module, onnx_path) as info["sim_biases"]:
            sim_m, sim_val, sim_dets = self.measure(module, name)
        mode = accuracy_mode(onnx_path)
        onnx_m, _, onnx_dets = self.measure(ort_session(onnx_path, mode), name, selectable=False)
        target = self.target_sim(name, module, onnx_path, mode, onnx_dets)
        gap = measure.gap(sim_m, onnx_m)
        mg = measure.max_gap(gap)
        row = {"candidate": cand, "model": name, "method": method, "bits": bits, "seed": seed,
               "split": REPORTED, "sim": sim_m, "onnx": onnx_m, "sim_val": sim_val, "gap": gap, "max_gap": mg,
               "gap_ap": self.gap_interval(name, sim_dets, onnx_dets), **({"sim_ort": target} if target else {}),
               "int8_bytes": info.get("weight_bytes"), "fp32_bytes": fp32_bytes,
               "onnx_file": str(onnx_path.relative_to(self.out)), "export": info,
               "seconds": round(time.time() - t0, 1), **(extra or {})}
        if mg > GAP_WARN:
            log.warning("%s/%s %s: sim vs ONNX gap %.4f (%s) - check the export", cand, name, method, mg, gap)
        log.info("%s/%s %s %s seed %d: sim %s | onnx %s | sim on val %s", cand, name, method, bits, seed,
                 _short(sim_m), _short(onnx_m), _short(sim_val or {}))
        return self.add(row, sim_dets, onnx_dets) if add else (row, sim_dets, onnx_dets)


def val_split(data):
    """The dataset's val split; one clear line when an old dataset run has none (or an empty one)."""
    d = Path(data) / "val"
    if not (d / "index.json").is_file():
        raise MissingInput(f"quantize: {d}/ missing: this dataset has no val split (made before dataset.splits.val "
                           "existed?); the PTQ cell is chosen on val, never on test - rerun `invoke stage dataset --force`")
    split = load_split(data, "val")
    if not len(split):
        raise MissingInput(f"quantize: {d}/ is empty (dataset.splits.val: 0): nothing to choose the PTQ cell on "
                           "(the test split is only reported) - set dataset.splits.val > 0")
    return split


def make_runner(out: Path, data: Path, config: dict, ctx=None) -> Runner:
    """The stage's Runner on the dataset at ``data`` (the same in the stage and in a Ray worker)."""
    from shared.evaluation import Protocol
    q = config["quantize"]
    return Runner(Path(out), load_split(data, "test"), load_split(data, "calibration"), load_split(data, "train"),
                  Protocol.from_config(config), q["export"]["opset"], q["export"]["int8_weights"],
                  val=val_split(data), ctx=ctx, calibration=config["calibration"], n_boot=q["intervals"]["n_boot"],
                  seed=config["seed"])


def row_key(row: dict) -> tuple:
    return row["candidate"], row["model"], row["method"], row["bits"], row["seed"]


def _short(m: dict) -> str:
    return " ".join(f"{k}={v:.4g}" for k, v in m.items() if isinstance(v, float))


def primary(name: str, m: dict) -> float:
    """Higher is better: AP for detection units, PSNR for restoration units."""
    return m.get("ap", float("-inf")) if name in ("pipeline", "detector") else m.get("psnr", float("-inf"))


def primary_key(name: str) -> str:
    return "ap" if name in ("pipeline", "detector") else "psnr"


def choose(name: str, entries: list[dict], split: str = SELECT) -> dict:
    """The entry (``{"row": results row, ...}``) whose ``row["sim_<split>"]`` scores best by
    :func:`primary`; ties go to the first.  Only a selection split is accepted: ``"test"``
    raises ``shared.selection.SelectionError`` before any score is read."""
    check_selection_split(split)
    rows = []
    for i, e in enumerate(entries):
        scores = e["row"].get(f"sim_{split}")
        if scores is None:
            raise SelectionError(f"{e['row']['candidate']}/{name} {e['row']['method']}: not measured on the "
                                 f"'{split}' split (row key sim_{split}), cannot take part in the selection")
        rows.append({"split": split, "score": primary(name, scores), "at": i})
    return entries[pick_best(rows, "score", split)["at"]]


def selection_record(name: str, chosen: dict, entries: list[dict], split: str = SELECT) -> dict:
    """What a selection looked at and what it chose, for metrics.json."""
    k = primary_key(name)
    return {"selected_on": split, "metric": k, "chosen": chosen["row"]["method"],
            "chosen_cell": chosen["row"].get("cell"), "chosen_seed": chosen["row"]["seed"],
            f"{split}_{k}": (chosen["row"].get(f"sim_{split}") or {}).get(k),
            f"{REPORTED}_{k}": chosen["row"]["sim"].get(k), "reported_on": REPORTED,
            "considered": {e["row"].get("cell") or f"{e['row']['method']}|s{e['row']['seed']}":
                           (e["row"].get(f"sim_{split}") or {}).get(k) for e in entries}}


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def folder_name(cand: str) -> str:
    """A filesystem-safe folder for a candidate name (``prune-joint/ratio 0.5`` -> one path part).
    Names that are already safe stay as they are; others get a short hash of the original so that
    two names cannot end up in one folder."""
    safe = _UNSAFE.sub("_", cand).strip("._") or "candidate"
    if safe == cand:
        return cand
    return f"{safe[:80]}-{hashlib.sha1(cand.encode()).hexdigest()[:8]}"


def chained_onnx(enh: Path, den: Path, det: Path):
    """fn([0,1] NCHW batch) -> detector outputs, running the three ONNX models in series."""
    from shared.evaluation import as_fn
    return units.chain(*(as_fn(ort_session(p)) for p in (enh, den, det)))[0]


