"""shared.calibration: one calibration set for every backend - which images, what each net sees."""
import cv2
import numpy as np
import pytest

from shared import calibration
from shared.data import VARIANTS, Split

N, H = 6, 8


@pytest.fixture
def split(tmp_path):
    """Image i of variant v is a constant image of value 10 * i + VARIANTS.index(v)."""
    records = []
    for i in range(N):
        rec = {"images": {}, "faces": []}
        for k, v in enumerate(VARIANTS):
            name = f"{i}_{v}.png"
            cv2.imwrite(str(tmp_path / name), np.full((H, H, 3), 10 * i + k, np.uint8))
            rec["images"][v] = name
        records.append(rec)
    return Split(tmp_path, records)


def values(x):
    return [int(round(float(v) * 255)) for v in x[:, 0, 0, 0]]


def test_indices_are_a_seeded_subset():
    a, b = calibration.indices(10, 4, 0), calibration.indices(10, 4, 1)
    assert len(a) == 4 and len(set(a)) == 4 and list(a) == list(calibration.indices(10, 4, 0))
    assert list(a) != list(b)                                    # a grid seed picks other images
    assert sorted(calibration.indices(10, None, 3)) == list(range(10))


def test_chain_feeds_each_net_its_upstream_output(split):
    spec = {"images": 3, "source": "chain"}
    plus = lambda d: (lambda x: [x + d / 255.0])                 # noqa: E731
    out = calibration.inputs(split, spec, "1_noisy", 0, ["pipeline", "enhancer", "denoiser", "yunet"],
                             {"enhancer": plus(1), "denoiser": plus(2)})
    raw = values(out["pipeline"])
    assert [v % 10 for v in raw] == [VARIANTS.index("1_noisy")] * 3
    assert values(out["enhancer"]) == raw
    assert values(out["denoiser"]) == [v + 1 for v in raw]
    assert values(out["yunet"]) == [v + 3 for v in raw]          # alias of the detector
    det = calibration.scaled(out["yunet"], "yunet")
    assert det.dtype == np.float32 and np.allclose(det, out["yunet"] * 255)
    assert np.allclose(calibration.scaled(out["denoiser"], "denoiser"), out["denoiser"])


def test_same_images_for_every_backend(split):
    """quantize, esp and hailo call inputs() with the run seed: the same images, the same arrays."""
    spec = {"images": 4, "source": "chain"}
    a = calibration.inputs(split, spec, "1_noisy", 0, ["enhancer"])
    b = calibration.inputs(split, spec, "1_noisy", 0, ["enhancer", "pipeline"])
    assert np.array_equal(a["enhancer"], b["enhancer"])
    assert calibration.describe(spec, N, 0)["indices"] == [int(i) for i in calibration.indices(N, 4, 0)]


def test_dataset_source_uses_each_nets_eval_images(split):
    out = calibration.inputs(split, {"images": 2, "source": "dataset"}, "1_noisy", 0,
                             ["enhancer", "denoiser", "detector", "pipeline"])
    assert {v % 10 for v in values(out["enhancer"])} == {VARIANTS.index("1")}
    assert {v % 10 for v in values(out["denoiser"])} == {VARIANTS.index("0_noisy")}
    assert {v % 10 for v in values(out["detector"])} == {VARIANTS.index("1_noisy")}   # eval.variant
    assert {v % 10 for v in values(out["pipeline"])} == {VARIANTS.index("1_noisy")}


def test_bad_source_and_empty_split_say_so(split, tmp_path):
    with pytest.raises(calibration.CalibrationError, match="calibration.source"):
        calibration.inputs(split, {"images": 2, "source": "nope"}, "1_noisy", 0, ["enhancer"])
    with pytest.raises(calibration.CalibrationError, match="empty"):
        calibration.inputs(Split(tmp_path, []), {"images": 2, "source": "chain"}, "1_noisy", 0, ["enhancer"])
