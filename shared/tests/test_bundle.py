"""The model bundle (shared/models/bundle.py): save -> load gives the same outputs, at FP32 and at
pruned widths; a bad bundle raises BundleError naming the file."""
import copy
import json

import pytest
import torch

from shared.models import build_models
from shared.models.bundle import FILE, PARTS, BundleError, is_bundle, load_bundle, read_record, save_bundle

SMALL = {"channels": [4, 8, 8, 8], "enc_blocks": [1, 1, 1, 1], "kernel": 3}
TINY = {"input_size": [32, 32], "enhancer": SMALL, "denoiser": SMALL,
        "detector": {"stage_channels": [[3, 8, 8], [8, 16], [16, 16], [16, 16], [16, 16], [16, 16]],
                     "feat_channels": 16}}
# the same topology at narrower widths: what channel pruning leaves behind
NARROW = {"input_size": [32, 32], "enhancer": {**SMALL, "channels": [3, 5, 6, 7]},
          "denoiser": {**SMALL, "channels": [4, 6, 8, 5]},
          "detector": {"stage_channels": [[3, 5, 6], [6, 12], [12, 10], [10, 9], [9, 9], [9, 9]],
                       "feat_channels": 16}}
MADE_BY = {"stage": "test", "method": "fp32"}
CONVS = (torch.nn.Conv2d, torch.nn.ConvTranspose2d)


def randomise(pipe, seed=0):
    """Non-zero weights everywhere (the restoration heads start at zero) and non-trivial BN stats."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in pipe.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
        for m in pipe.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return pipe.eval()


def outputs(pipe, seed=1):
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        outs, enhanced, denoised = pipe(x, return_intermediate=True)
    return [*outs, enhanced, denoised]


def assert_same(a, b):
    oa, ob = outputs(a), outputs(b)
    assert len(oa) == len(ob)
    assert all(torch.equal(u, v) for u, v in zip(oa, ob))


def test_fp32_round_trip(tmp_path):
    torch.manual_seed(0)
    pipe = randomise(build_models(TINY))
    path = save_bundle(tmp_path / "b", pipe, TINY, {**MADE_BY, "epochs": 3})
    assert path == tmp_path / "b" / FILE and is_bundle(tmp_path / "b")
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == sorted([FILE, *(f"{p}.pt" for p in PARTS)])
    back, rec = load_bundle(tmp_path / "b")
    assert_same(pipe, back)
    assert not back.training and back.input_size == (32, 32)
    assert rec["made_by"] == {**MADE_BY, "epochs": 3} and rec["base"] == TINY
    assert rec["parts"]["detector"]["input_range"] == [0.0, 255.0] and "role" in rec["parts"]["enhancer"]
    assert rec["parts"]["enhancer"]["params"] == sum(p.numel() for p in pipe.enhancer.parameters())
    assert read_record(tmp_path / "b") == rec


def test_narrower_than_base_round_trip(tmp_path):
    """Weights narrower than the base config (as pruning leaves them) load without knowing the widths."""
    torch.manual_seed(0)
    narrow = randomise(build_models(NARROW))
    save_bundle(tmp_path, narrow, TINY, MADE_BY)
    back, rec = load_bundle(tmp_path)
    assert_same(narrow, back)
    assert back.enhancer.stem[0].out_channels == 3 and back.detector.backbone.model0.conv1.out_channels == 5
    assert rec["parts"]["enhancer"]["widths"]["stem.0"] == 3
    assert rec["parts"]["enhancer"]["params"] < sum(p.numel() for p in build_models(TINY).enhancer.parameters())


def test_base_travels_with_the_module(tmp_path):
    """A loaded bundle, copied and changed, saves again without ``base`` (prune's measure does this)."""
    torch.manual_seed(0)
    save_bundle(tmp_path / "a", randomise(build_models(TINY)), TINY, MADE_BY)
    pipe, _ = load_bundle(tmp_path / "a")
    work = copy.deepcopy(pipe)
    with torch.no_grad():
        work.denoiser.head[-1].bias.add_(0.1)
    save_bundle(tmp_path / "b", work, None, {"stage": "prune", "variant": "x"})
    back, rec = load_bundle(tmp_path / "b")
    assert_same(work, back)
    assert rec["base"] == TINY and rec["made_by"]["variant"] == "x"
    with pytest.raises(BundleError, match="no base architecture"):
        save_bundle(tmp_path / "c", build_models(TINY), None, MADE_BY)
    with pytest.raises(BundleError, match="'stage'"):
        save_bundle(tmp_path / "c", pipe, None, {"method": "x"})


def test_torch_pruning_round_trip(tmp_path):
    """The whole chain pruned as one graph by torch-pruning (as stages/prune/structured.py does)."""
    tp = pytest.importorskip("torch_pruning")  # only in the prune image (stages/prune/tests has the same check)
    torch.manual_seed(0)
    save_bundle(tmp_path / "fp32", randomise(build_models(TINY)), TINY, MADE_BY)
    pipe, _ = load_bundle(tmp_path / "fp32")
    pipe = copy.deepcopy(pipe)
    x = torch.rand(1, 3, 32, 32)
    keep = [pipe.enhancer.head[-1], pipe.denoiser.head[-1], pipe.detector.bbox_head]
    widths0 = {n: m.out_channels for n, m in pipe.named_modules() if isinstance(m, CONVS)}
    pruner = tp.pruner.BasePruner(pipe, x, importance=tp.importance.MagnitudeImportance(p=2), global_pruning=True,
                                  pruning_ratio=0.5, max_pruning_ratio=0.8, iterative_steps=1, ignored_layers=keep)
    pruner.step()
    pipe.eval()
    widths = {n: m.out_channels for n, m in pipe.named_modules() if isinstance(m, CONVS)}
    assert sum(widths.values()) < sum(widths0.values())
    assert all(any(widths[n] < widths0[n] for n in widths if n.startswith(p)) for p in PARTS)
    save_bundle(tmp_path / "pruned", pipe, None, {"stage": "prune", "mode": "joint", "ratio": 0.5})
    back, rec = load_bundle(tmp_path / "pruned")
    assert_same(pipe, back)
    assert {f"{p}.{n}": w for p in PARTS for n, w in rec["parts"][p]["widths"].items()} == widths


def _good(tmp_path):
    torch.manual_seed(0)
    save_bundle(tmp_path, randomise(build_models(TINY)), TINY, MADE_BY)
    return tmp_path


def test_bad_bundles_name_the_file(tmp_path):
    with pytest.raises(BundleError, match=rf"{tmp_path}/{FILE}: missing"):
        load_bundle(tmp_path)
    d = _good(tmp_path / "g")
    rec = json.loads((d / FILE).read_text())

    (d / FILE).write_text('{"format": "jmmc-bundle/1",\n "base": }')
    with pytest.raises(BundleError, match=rf"{d}/{FILE}:2: corrupt"):
        load_bundle(d)
    (d / FILE).write_text(json.dumps({**rec, "format": "other/9"}))
    with pytest.raises(BundleError, match=rf"{d}/{FILE}: format 'other/9'"):
        load_bundle(d)
    (d / FILE).write_text(json.dumps({k: v for k, v in rec.items() if k != "made_by"}))
    with pytest.raises(BundleError, match="'made_by' missing"):
        load_bundle(d)
    (d / FILE).write_text(json.dumps({**rec, "base": {**TINY, "input_size": 33}, "input_size": [33, 33]}))
    with pytest.raises(BundleError, match=rf"{d}/{FILE}: base: cannot build"):
        load_bundle(d)

    (d / FILE).write_text(json.dumps(rec))
    ok = _good(tmp_path / "h")
    load_bundle(ok)  # sanity: a good one loads
    (d / "denoiser.pt").write_bytes((ok / "detector.pt").read_bytes())  # the wrong net's weights
    with pytest.raises(BundleError, match=rf"{d}/denoiser.pt: does not fit the denoiser"):
        load_bundle(d)
    (d / "denoiser.pt").write_bytes(b"not a torch file")
    with pytest.raises(BundleError, match=rf"{d}/denoiser.pt: cannot read"):
        load_bundle(d)
    (d / "detector.pt").unlink()
    (d / "denoiser.pt").write_bytes((ok / "denoiser.pt").read_bytes())
    with pytest.raises(BundleError, match=rf"{d}/detector.pt: missing state dict of detector"):
        load_bundle(d)


def test_depth_pruned_round_trip(tmp_path):
    """Residual blocks removed by depth pruning are recorded (parts.<part>.dropped) and removed again on load."""
    from shared.models.restoration import Skipped, drop_blocks, residual_blocks
    pipe = randomise(build_models(TINY))
    drop_blocks(pipe.enhancer, ["head.0", "decoders.3.decode"])
    drop_blocks(pipe.denoiser, ["head.0"])
    save_bundle(tmp_path / "b", pipe, TINY, MADE_BY)
    back, rec = load_bundle(tmp_path / "b")
    assert rec["parts"]["enhancer"]["dropped"] == ["decoders.3.decode", "head.0"]
    assert rec["parts"]["denoiser"]["dropped"] == ["head.0"] and "dropped" not in rec["parts"]["detector"]
    assert isinstance(back.enhancer.head[0], Skipped) and "head.0" not in residual_blocks(back.denoiser)
    assert_same(pipe, back)


def test_depth_pruned_bundle_with_a_bad_block_names_it(tmp_path):
    pipe = randomise(build_models(TINY))
    save_bundle(tmp_path / "b", pipe, TINY, MADE_BY)
    rec = json.loads((tmp_path / "b" / FILE).read_text())
    rec["parts"]["enhancer"]["dropped"] = ["stem"]
    (tmp_path / "b" / FILE).write_text(json.dumps(rec))
    with pytest.raises(BundleError, match=r"parts\.enhancer\.dropped: 'stem' is not a removable residual block"):
        load_bundle(tmp_path / "b")
