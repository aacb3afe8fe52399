"""The PTQ grid: techniques x AdaRound x bit widths x seeds, validated with clear errors.

``expand(cfg)`` turns the ``quantize.ptq`` section into a list of :class:`Cell`
(one AIMET QuantSim each).  Unknown techniques / bit widths / schemes raise
:class:`GridError` naming the key and the known values (the schema checks the
same for config files; this guards programmatic use and the EDGY configs).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

from shared.errors import ExpectedError

TECHNIQUES = ("none", "bn_fold", "cle", "bn_fold+cle")
BITWIDTHS = {"W8A8": (8, 8), "W4A8": (4, 8), "W8A16": (8, 16)}
SCHEMES = ("tf_enhanced", "min_max")
MODELS = ("enhancer", "denoiser", "detector", "pipeline")


class GridError(ExpectedError, ValueError):
    pass


@dataclass(frozen=True)
class Cell:
    technique: str
    adaround: bool
    bits: str
    seed: int
    scheme: str

    @property
    def name(self) -> str:
        t = self.technique.replace("+", "_")
        return f"{t}{'_ada' if self.adaround else ''}_{self.bits}_{self.scheme}_s{self.seed}"

    @property
    def method(self) -> str:
        return f"ptq:{self.technique}{'+adaround' if self.adaround else ''}"

    @property
    def param_bw(self) -> int:
        return BITWIDTHS[self.bits][0]

    @property
    def output_bw(self) -> int:
        return BITWIDTHS[self.bits][1]


def _check(values, known, key):
    for v in values:
        if v not in known:
            raise GridError(f"quantize.{key}: unknown value {v!r} (known: {', '.join(map(str, known))})")


def expand(ptq: dict) -> list[Cell]:
    """All grid cells of a ``quantize.ptq`` section, in a stable order."""
    for k in ("techniques", "adaround", "seeds", "bitwidths", "quant_scheme"):
        if k not in ptq:
            raise GridError(f"quantize.ptq.{k}: missing")
    _check(ptq["techniques"], TECHNIQUES, "ptq.techniques")
    _check(ptq["bitwidths"], tuple(BITWIDTHS), "ptq.bitwidths")
    _check([ptq["quant_scheme"]], SCHEMES, "ptq.quant_scheme")
    _check(ptq.get("adaround_models") or [], MODELS, "ptq.adaround_models")
    if not ptq["techniques"] or not ptq["seeds"] or not ptq["adaround"] or not ptq["bitwidths"]:
        raise GridError("quantize.ptq: techniques, adaround, seeds and bitwidths must not be empty")
    return [Cell(t, bool(a), b, int(s), ptq["quant_scheme"])
            for b, t, a, s in itertools.product(ptq["bitwidths"], ptq["techniques"], ptq["adaround"],
                                                ptq["seeds"])]


def check_models(models) -> list[str]:
    _check(models, MODELS, "models")
    return list(models)


def cells_for(cells: list[Cell], ptq: dict, model: str) -> list[Cell]:
    """The grid of one unit: without the AdaRound cells when ``ptq.adaround_models`` leaves it out."""
    chosen = ptq.get("adaround_models")
    return [c for c in cells if not c.adaround or chosen is None or model in chosen]
