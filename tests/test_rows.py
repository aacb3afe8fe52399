"""host.rows: what the Ray check compares (rows matched on their key, timings ignored)."""
from host.rows import differences, main


def row(**kw):
    base = {"candidate": "train", "model": "denoiser", "method": "ptq_none", "bits": "W8A8", "seed": 0,
            "sim": {"psnr": 20.5}, "seconds": 3.0, "ptq_seconds": 1.0}
    return {**base, **kw}


def test_equal_rows_modulo_timings():
    assert differences([row()], [row(seconds=9.0, ptq_seconds=7.0)]) == []


def test_a_changed_metric_and_a_missing_row_are_named():
    d = differences([row(), row(seed=1)], [row(sim={"psnr": 20.6})])
    assert any("sim.psnr: 20.5 vs 20.6" in x for x in d)
    assert any(x.startswith("only in a:") and "1)" in x for x in d)
    assert differences([row()], [row(sim={"psnr": 20.5 + 1e-9})], tol=1e-6) == []


def test_cli_exit_code(tmp_path, capsys):
    import json
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps({"rows": [row()]}))
    b.write_text(json.dumps({"rows": [row(bits="W4A8")]}))
    assert main([str(a), str(a)]) == 0
    assert main([str(a), str(b)]) == 1
    assert "2 difference(s)" in capsys.readouterr().out
