"""What one finished benchmark cell holds: pure functions from model outputs and maps to records.

A *property cell* is one (suite, intervention, model, image): the explained class, the
probability of that class along the sequence, its expected property gradient magnitude and
permutation p-value, both flip definitions and the output-only reference |p_T - p_0|. A
*baseline cell* is one (suite, intervention, model, image, baseline): the change score of the
baseline's map between the original and the fully intervened image, or the error it raised.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from propgrad.baselines.base import change_score
from propgrad.cache import cache_key
from propgrad.scoring import SequenceScore


def property_key(suite: str, intervention: str, model: str, image: int) -> list[Any]:
    """Store key of a property cell."""
    return ["property", suite, intervention, model, int(image)]


def baseline_key(suite: str, intervention: str, model: str, image: int, baseline: str) -> list[Any]:
    """Store key of a baseline cell."""
    return ["baseline", suite, intervention, model, int(image), baseline]


def cell_seed(seed: int, *parts: Any) -> int:
    """A permutation seed that depends only on the run seed and ``parts``, not on the order of work.

    The runner passes (suite, intervention): every image and model of an intervention shares
    the same K permutations (drawn once and memoised by ``propgrad.stats.permutation``); each test is
    still exact on its own, and a cell's p-value never depends on which cells ran with it.
    """
    return int(cache_key("permutation-seed", int(seed), *parts)[:8], 16)


def property_record(
    key: list[Any],
    scored: SequenceScore,
    label: int,
    *,
    periodic: bool = False,
    property_name: str = "",
    unit: str = "step",
) -> dict[str, Any]:
    """The record of one property cell, from the scoring of its sequence.

    Args:
        key: From :func:`property_key`.
        scored: :func:`propgrad.scoring.score_sequences` output for the cell's sequence, scored
            on the explained class (the original image's decision) of softmax probabilities.
        label: The image's true class.
        periodic: Whether the sequence wraps around.
        property_name: Name of the intervened property (for plots).
        unit: Unit of the property (for plots).

    Returns:
        A JSON-serialisable dict (``kind="property"``).
    """
    if scored.target is None:
        raise ValueError("a property cell scores one column, the explained class; got every column")
    explained = scored.target
    curve = scored.outputs[:, explained].double().cpu()
    test, flips = scored.test, scored.flips
    return {
        "kind": "property",
        "key": key,
        "image": int(key[-1]),
        "label": int(label),
        "explained": explained,
        "original_prediction_correct": explained == int(label),
        "score": _scalar(test.statistic),
        "p_value": _scalar(test.p_value),
        "significant": bool(_scalar(test.significant)),
        "flipped_anywhere": flips.flipped_anywhere,
        "final_differs": flips.final_differs,
        "n_flips": flips.n_flips,
        "reference": abs(float(curve[-1]) - float(curve[0])),
        "curve": [float(p) for p in curve],
        "periodic": bool(periodic),
        "property_name": property_name,
        "unit": unit,
    }


def baseline_record(
    key: list[Any], map_before: torch.Tensor | None, map_after: torch.Tensor | None, error: str | None
) -> dict[str, Any]:
    """The record of one baseline cell: its change score, or the error it raised.

    Args:
        key: From :func:`baseline_key`.
        map_before: The map (any shape) of the original image, or None on error.
        map_after: The map of the fully intervened image, or None on error.
        error: The error message, or None.
    """
    score = None
    if error is None:
        assert map_before is not None and map_after is not None
        value = float(change_score(map_before[None], map_after[None])[0])
        if math.isfinite(value):
            score = value
        else:
            error = f"the change score is {value} (the maps contain NaN or Inf values)"
    return {"kind": "baseline", "key": key, "image": int(key[4]), "method": key[5], "score": score, "error": error}


def _scalar(x: Any) -> float:
    if isinstance(x, torch.Tensor):
        if x.numel() != 1:
            raise ValueError(f"expected a single value per cell, got a tensor of shape {tuple(x.shape)}")
        return x.item()
    return x
