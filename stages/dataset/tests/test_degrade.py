"""Low-light and noise variants."""
import numpy as np
import pytest

from stages.dataset.degrade import VARIANTS, add_sensor_noise, check_params, degrade


@pytest.fixture
def clean():
    rng = np.random.default_rng(0)
    base = np.linspace(30, 230, 64, dtype=np.float32)[None, :, None]
    return np.clip(base + rng.normal(0, 10, (48, 64, 3)), 0, 255).astype(np.uint8)


def test_variants_shape_order_and_brightness(cfg, clean):
    out, drawn = degrade(clean, cfg["degradation"], np.random.default_rng(1))
    assert tuple(out) == VARIANTS
    for v in out.values():
        assert v.shape == clean.shape and v.dtype == np.uint8
    assert np.array_equal(out["0"], clean)
    m = {k: float(v.mean()) for k, v in out.items()}
    assert m["2"] < m["1"] < m["0"] - 20
    lo, hi = cfg["degradation"]["exposure_moderate"]
    assert lo <= drawn["exposure_1"] <= hi


def test_noise_raises_error_variance(cfg, clean):
    out, _ = degrade(clean, cfg["degradation"], np.random.default_rng(2))
    for noisy, ref in (("0_noisy", "0"), ("1_noisy", "1")):
        diff = out[noisy].astype(np.float32) - out[ref].astype(np.float32)
        assert diff.std() > 2.0
        assert abs(diff.mean()) < 2.0  # unbiased (up to clipping)
        assert out[noisy].var() > out[ref].var()


def test_deterministic_per_generator(cfg, clean):
    a, _ = degrade(clean, cfg["degradation"], np.random.default_rng(5))
    b, _ = degrade(clean, cfg["degradation"], np.random.default_rng(5))
    c, _ = degrade(clean, cfg["degradation"], np.random.default_rng(6))
    assert all(np.array_equal(a[k], b[k]) for k in VARIANTS)
    assert not np.array_equal(a["0_noisy"], c["0_noisy"])


def test_shot_noise_variance_matches_poisson():
    """Variance in photons equals the mean (plus read noise), in both regimes."""
    rng = np.random.default_rng(0)
    for level in (0.005, 0.3):  # 5 photons (exact Poisson) and 300 (Gaussian limit)
        lin = np.full((200, 200), level, np.float32)
        n = add_sensor_noise(lin, rng, photons=1000, read=0.0) * 1000
        assert n.mean() == pytest.approx(level * 1000, rel=0.05)
        assert n.var() == pytest.approx(level * 1000, rel=0.08)


def test_bad_params_rejected(cfg):
    p = dict(cfg["degradation"], exposure_severe=[0.2, 0.1])
    with pytest.raises(ValueError, match="exposure_severe.*reversed"):
        check_params(p)
    with pytest.raises(ValueError, match="exposure_moderate"):
        check_params(dict(cfg["degradation"], exposure_moderate=[0.5, 1.5]))
