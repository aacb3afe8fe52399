"""esp.candidates: 'train', a prune variant by name ('prune/<variant>' -> variants/<variant>/), or a subdir."""
from __future__ import annotations

import types

import pytest

from stages.esp.steps import resolve_candidates


def _ctx(tmp_path, cands):
    roots = {"train": tmp_path / "train", "prune": tmp_path / "prune"}
    for d in (roots["train"], roots["prune"] / "variants" / "joint_l2_r50", roots["prune"] / "variants" / "fp32"):
        d.mkdir(parents=True)
    return types.SimpleNamespace(cfg={"candidates": cands}, input=lambda s: roots[s],
                                 input_manifests={s: {} for s in roots})


def test_prune_variant_by_name_and_by_path(tmp_path):
    got = resolve_candidates(_ctx(tmp_path, ["train", "prune/joint_l2_r50", "prune/variants/joint_l2_r50"]))
    assert got == {"train": tmp_path / "train", "prune_joint_l2_r50": tmp_path / "prune/variants/joint_l2_r50",
                   "prune_variants_joint_l2_r50": tmp_path / "prune/variants/joint_l2_r50"}


def test_missing_variant_lists_the_variants(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"esp.candidates: 'prune/joint_l2_r30': no folder .*; "
                                                r"prune variants: fp32, joint_l2_r50"):
        resolve_candidates(_ctx(tmp_path, ["prune/joint_l2_r30"]))
