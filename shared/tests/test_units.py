"""The unit table is the one place that says which images feed which net and how the chain is glued."""
import re
from pathlib import Path

import numpy as np
import pytest

from shared import units

REPO = Path(__file__).resolve().parents[2]


def test_facts_of_the_three_nets():
    assert units.ORDER == ("enhancer", "denoiser", "detector") and units.RESTORATION == ("enhancer", "denoiser")
    assert [units.train_variant(n) for n in units.ORDER] == ["1", "0_noisy", "0"]
    assert units.unit("yunet") is units.unit("detector")                      # one net, its file-name alias
    assert units.input_range("yunet") == units.input_range("detector") == 255.0
    assert units.input_range("pipeline") == units.input_range("enhancer") == 1.0
    assert units.eval_variant("detector", "1_noisy") == "1_noisy" and units.eval_variant("denoiser", "x") == "0_noisy"
    assert units.train_variant("pipeline", "1_noisy") == "1_noisy"
    with pytest.raises(KeyError, match="unknown net 'retina'"):
        units.unit("retina")


def test_chain_glues_restoration_to_the_detector_at_pixel_scale():
    seen = {}

    def det(x):
        seen["det_in"] = x
        return [x.sum(axis=(1, 2, 3))]
    detect, restore = units.chain(lambda x: [x * 0.5], lambda x: [x + 0.1], det)
    x = np.full((2, 3, 4, 4), 0.4, np.float32)
    np.testing.assert_allclose(restore(x), 0.3)
    detect(x)
    np.testing.assert_allclose(seen["det_in"], 0.3 * 255.0, rtol=1e-6)


def test_the_variant_mapping_is_written_once():
    """No stage writes the enhancer/denoiser input variants down again (a grep finds one definition)."""
    pat = re.compile(r'"denoiser"\s*:\s*"0_noisy"|\("denoiser",\s*"0_noisy"\)')
    hits = [str(p.relative_to(REPO)) for top in ("stages", "shared") for p in (REPO / top).rglob("*.py")
            if "tests" not in p.parts and pat.search(p.read_text())]
    assert hits == [], hits
