"""The report's accuracy cells (stages/report/accuracy.py): files without upstream figures, kept
detections and OpenVINO scores are measured in cells; two side by side give what one after another
gives, and a file with upstream figures is read, not measured."""
import json
import logging

import numpy as np
import pytest

from shared.config import defaults, load_schema
from shared.data import load_split
from shared.evaluation import Protocol
from stages.report import accuracy, openvino_rt
from stages.report.records import Artifact

from conftest import build_model


def _config(eval_cfg, workers):
    config = defaults(load_schema())
    config.update(run="t", eval=eval_cfg)
    config["executor"].update(workers=workers)
    return config


def test_cells_side_by_side_equal_one_after_another(run_dir, eval_cfg, tmp_path):
    ov = openvino_rt.available() is None
    arts = [Artifact("train", build_model("pipeline", tmp_path / f"p{i}.onnx", seed=i), f"p{i}.onnx", "pipeline",
                     "train") for i in range(2)]
    arts.append(Artifact("train", build_model("yunet", tmp_path / "y.onnx"), "y.onnx", "detector", "train",
                         upstream={"ap": 0.5, "nme": 0.25}))
    names = [a.name for a in arts]
    keep = frozenset({names[0]})
    log = logging.getLogger("test")
    test = load_split(run_dir / "dataset", "test")
    proto = Protocol.from_config(_config(eval_cfg, 1))
    one = accuracy.measure(arts, keep, set(names[:2]) if ov else set(), test, proto, run_dir / "dataset",
                           _config(eval_cfg, 1), log)
    two = accuracy.measure(arts, keep, set(names[:2]) if ov else set(), test, proto, run_dir / "dataset",
                           _config(eval_cfg, 2), log)
    assert one[names[2]] == two[names[2]] == {"ap": 0.5, "nme": 0.25, "source": "train manifest"}   # read, not run
    for n in names[:2]:
        a, b = ({k: v for k, v in m.items() if k not in ("eval_s", "dets")} for m in (one[n], two[n]))
        assert a == b and a["source"] == "measured here" and 0 <= a["ap"] <= 1
        if ov:
            assert a["ov_ap"] == pytest.approx(a["ap"], abs=0.05)
    assert "dets" in one[names[0]] and "dets" not in one[names[1]]
    da, db = one[names[0]]["dets"], two[names[0]]["dets"]
    assert json.dumps([np.asarray(d).tolist() for d in da]) == json.dumps([np.asarray(d).tolist() for d in db])
