"""EDGY NNCF JSON configs map onto nncf.prune / torch-pruning / the quantize stage; bad keys fail clearly."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.edgy import EdgyConfigError, load_edgy

REPO = Path(__file__).resolve().parents[3]


def _write(tmp_path, comp, **top):
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"input_info": {"sample_size": [1, 3, 64, 64]}, "compression": comp, **top}))
    return p


def test_shipped_configs_load():
    files = sorted((REPO / "configs" / "edgy").glob("*.json"))
    assert len(files) >= 10
    kinds = {j["algorithm"] for f in files for j in load_edgy(f)}
    assert kinds == {"magnitude_sparsity", "rb_sparsity", "filter_pruning", "quantization"}


def test_magnitude_sparsity(tmp_path):
    [job] = load_edgy(_write(tmp_path, {"algorithm": "magnitude_sparsity", "params": {
        "schedule": "multistep", "multistep_steps": [2, 4], "multistep_sparsity_levels": [0.2, 0.4, 0.6],
        "sparsity_target": 0.6, "sparsity_level_setting_mode": "local"}}))
    assert job == {"kind": "sparsity", "mode": "magnitude_local", "ratio": 0.6, "init": 0.0, "steps": 3,
                   "algorithm": "magnitude_sparsity"}
    [job] = load_edgy(_write(tmp_path, {"algorithm": "magnitude_sparsity", "sparsity_init": 0.4}))
    assert job["mode"] == "magnitude_global" and job["ratio"] == 0.4


def test_rb_sparsity(tmp_path):
    [job] = load_edgy(_write(tmp_path, {"algorithm": "rb_sparsity", "compression_lr_multiplier": 50,
                                        "params": {"sparsity_target": 0.4, "sparsity_target_epoch": 2}}))
    assert (job["mode"], job["ratio"], job["steps"], job["lr_multiplier"]) == ("rb", 0.4, 2, 50)


@pytest.mark.parametrize("name,imp", [("geometric_median", "fpgm"), ("L1", "l1"), ("L2", "l2")])
def test_filter_pruning(tmp_path, name, imp):
    [job] = load_edgy(_write(tmp_path, [{"algorithm": "filter_pruning", "params": {
        "pruning_target": 0.5, "pruning_steps": 4, "filter_importance": name}}]))
    assert job == {"kind": "structured", "importance": imp, "ratio": 0.5, "steps": 4, "keep_first_last": True,
                   "algorithm": "filter_pruning"}


def test_quantization_is_recorded(tmp_path):
    [job] = load_edgy(_write(tmp_path, {"algorithm": "quantization", "weights": {"bits": 8}}))
    assert job["kind"] == "quantization" and "quantize stage" in job["note"]


@pytest.mark.parametrize("comp,top,msg", [
    ({"algorithm": "magnitude_sparsity", "params": {"sparsity_target": 0.5, "sparsty_mode": "x"}}, {},
     "compression[0].params.sparsty_mode: unsupported key"),
    ({"algorithm": "filter_pruning", "params": {"pruning_target": 0.5, "filter_importance": "taylor"}}, {},
     "filter_importance"),
    ({"algorithm": "knowledge_distillation"}, {}, "unsupported algorithm"),
    ({"algorithm": "rb_sparsity", "params": {"sparsity_target": 1.5}}, {}, "must be a number in [0, 1)"),
    ({"algorithm": "magnitude_sparsity", "sparsity_init": 0.3}, {"trainer": 1}, "trainer: unsupported key"),
])
def test_bad_keys_name_file_and_key(tmp_path, comp, top, msg):
    with pytest.raises(EdgyConfigError) as e:
        load_edgy(_write(tmp_path, comp, **top))
    assert str(tmp_path / "c.json") in str(e.value) and msg in str(e.value)


def test_bad_json(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text('{"compression": [\n')
    with pytest.raises(EdgyConfigError, match="bad.json:2: invalid JSON"):
        load_edgy(p)
