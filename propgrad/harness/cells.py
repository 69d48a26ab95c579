"""What one finished benchmark cell holds: its key, its record, and pure functions that build them.

A *property cell* is one (suite, intervention, model, image): the explained class, the
probability of that class along the sequence, its expected property gradient magnitude with the
permutation p-value and (when the run has placebos) the placebo p-value, the labels and scores of
every flip definition (:mod:`propgrad.harness.definitions`) and the output-only reference
|p_T - p_0|. A *baseline cell* is one (suite, intervention, model, image, baseline): the change
score of the baseline's map between the original and the fully intervened image, and between the
original and the half-way image (the extrapolation definition), or the error it raised.

Records are stored as JSON; a record's ``key`` is the JSON list of its :class:`CellKey`
(``["property", suite, intervention, model, image]`` or ``["baseline", ..., image, baseline]``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, Sequence, TypedDict

import torch

from propgrad.baselines.base import change_score
from propgrad.core.cache import cache_key
from propgrad.errors import InvalidParameterError
from propgrad.explain.scoring import SequenceScore, sequence_statistic
from propgrad.harness.definitions import half_index
from propgrad.sources.base import InterventionSequence
from propgrad.stats.flips import FlipResult, prediction_flips
from propgrad.stats.placebo_test import PlaceboResult
from propgrad.stats.practical_size import practical_size, reading, why_untested

CellKind = Literal["property", "baseline"]
JsonKey = list[str | int]
"""A :class:`CellKey` as stored: a JSON list without the trailing None of a property cell."""


class CellKey(NamedTuple):
    """Where a cell sits in the benchmark grid; ``baseline`` is None for a property cell.

    The store holds keys as JSON lists, so look cells up with :meth:`as_json` (a property key as
    a tuple ends in None, which the stored key does not).
    """

    kind: CellKind
    suite: str
    intervention: str
    model: str
    image: int
    baseline: str | None = None

    def as_json(self) -> JsonKey:
        """The key as stored in records and in the cell store (a list, as stores always held)."""
        head: JsonKey = [self.kind, self.suite, self.intervention, self.model, int(self.image)]
        return head if self.baseline is None else [*head, self.baseline]

    @classmethod
    def from_json(cls, key: Sequence[Any]) -> CellKey:
        """The key of a stored record (the inverse of :meth:`as_json`).

        Raises:
            ValueError: ``key`` is not a property or baseline key.
        """
        kind = key[0] if len(key) else None
        if not ((kind == "property" and len(key) == 5) or (kind == "baseline" and len(key) == 6)):
            raise InvalidParameterError(f"not a property or baseline cell key: {list(key)!r}")
        return cls(*key[:4], int(key[4]), key[5] if kind == "baseline" else None)


class PropertyRecord(TypedDict):
    """A finished property cell, as stored and as written to ``results.json``."""

    kind: Literal["property"]
    key: JsonKey
    image: int
    label: int
    explained: int
    original_prediction_correct: bool
    score: float
    p_value: float
    significant: bool
    flipped_anywhere: bool
    final_differs: bool
    n_flips: int
    reference: float
    half_score: float | None
    """The property score of the first half of the path (extrapolation; None below three steps)."""
    half_reference: float | None
    """|p_h - p_0| at the half-way step h (extrapolation)."""
    flipped_second_half: bool | None
    """The decision differs from the original's at some step after h (extrapolation)."""
    heldout_flipped: bool | None
    """The decision differs from the original's anywhere along another realisation (None: no realisation)."""
    n_placebos: int
    placebo_p_value: float | None
    """The placebo test's p-value (None: no placebos in this run, or a periodic sequence)."""
    placebo_significant: bool | None
    placebo_n_used: int | None
    """Placebos the p-value used: fewer than ``n_placebos`` when the sequential test stopped early."""
    largest_change: float
    """The practical size: the largest change of the explained class's probability from the original
    image's along the sequence (:func:`propgrad.stats.practical_size.practical_size`)."""
    reading: str
    """One line reading the cell (:func:`propgrad.stats.practical_size.reading`)."""
    realisation_scores: list[float]
    """The score of realisations 0 .. R - 1 (the first is ``score``)."""
    realisation_p_values: list[float]
    curve: list[float]
    periodic: bool
    property_name: str
    unit: str


class BaselineRecord(TypedDict):
    """A finished baseline cell: its change score, or (score None) the error the baseline raised."""

    kind: Literal["baseline"]
    key: JsonKey
    image: int
    method: str
    score: float | None
    half_score: float | None
    """The change between the original's map and the half-way image's (None: error, or no half)."""
    error: str | None


CellRecord = PropertyRecord | BaselineRecord


def record_key(record: CellRecord | dict[str, Any]) -> CellKey:
    """The :class:`CellKey` of a stored record."""
    return CellKey.from_json(record["key"])


def property_key(suite: str, intervention: str, model: str, image: int) -> CellKey:
    """Key of a property cell."""
    return CellKey("property", suite, intervention, model, int(image))


def baseline_key(suite: str, intervention: str, model: str, image: int, baseline: str) -> CellKey:
    """Key of a baseline cell."""
    return CellKey("baseline", suite, intervention, model, int(image), baseline)


def cell_seed(seed: int, *parts: Any) -> int:
    """A permutation seed that depends only on the run seed and ``parts``, not on the order of work.

    The runner passes (suite, intervention): every image and model of an intervention shares
    the same K permutations (drawn once and memoised by ``propgrad.stats.permutation``); each test is
    still exact on its own, and a cell's p-value never depends on which cells ran with it.
    """
    return int(cache_key("permutation-seed", int(seed), *parts)[:8], 16)


@dataclass(frozen=True)
class PropertyAxis:
    """What a cell's sequence changes, as its record shows it (for plots): name, unit, wrap-around.

    Attributes:
        name: Name of the intervened property.
        unit: Unit of the property.
        periodic: Whether the sequence wraps around from the last step to the first.
    """

    name: str = ""
    unit: str = "step"
    periodic: bool = False

    @classmethod
    def of(cls, sequence: InterventionSequence) -> PropertyAxis:
        """The axis of an intervention sequence."""
        return cls(sequence.property_name, sequence.unit, sequence.periodic)


def property_record(
    key: CellKey,
    scored: SequenceScore,
    label: int,
    *,
    axis: PropertyAxis = PropertyAxis(),
    held_out: FlipResult | None = None,
    placebo: PlaceboResult | None = None,
    realisations: Sequence[SequenceScore] = (),
) -> PropertyRecord:
    """The record of one property cell, from the scoring of its sequence.

    Args:
        key: From :func:`property_key`.
        scored: :func:`propgrad.explain.scoring.score_sequences` output for the cell's sequence, scored
            on the explained class (the original image's decision) of softmax probabilities.
        label: The image's true class.
        axis: The sequence's property: name, unit and whether it wraps around (for plots).
        held_out: The flips along another realisation of the intervention, against the same
            original image's decision (the held-out definition), or None.
        placebo: The placebo test of the explained class (0-d), or None when the run has no placebos.
        realisations: The scorings of realisations 1 .. R - 1 on the same class (R > 1 runs).

    Returns:
        A JSON-serialisable record.
    """
    if key.kind != "property":
        raise InvalidParameterError(f"a property record needs a property key, got {key}")
    if scored.target is None:
        raise InvalidParameterError("a property cell scores one column, the explained class; got every column")
    explained = scored.target
    curve = scored.outputs[:, explained].double().cpu()
    test, flips = scored.test, scored.flips
    size = practical_size(scored.outputs, scored.original_outputs)
    size_aware = None if placebo is None else bool(_scalar(placebo.significant))
    half = half_index(curve.shape[0])
    half_score = half_reference = flipped_second_half = None
    if half is not None:
        half_score = _scalar(sequence_statistic(curve[: half + 1]))
        half_reference = abs(float(curve[half]) - float(curve[0]))
        second = prediction_flips(scored.outputs[half + 1 :], reference=scored.original_outputs)
        flipped_second_half = second.flipped_anywhere
    return {
        "kind": "property",
        "key": key.as_json(),
        "image": key.image,
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
        "half_score": half_score,
        "half_reference": half_reference,
        "flipped_second_half": flipped_second_half,
        "heldout_flipped": None if held_out is None else held_out.flipped_anywhere,
        "n_placebos": 0 if placebo is None else int(placebo.n_placebos),
        "placebo_p_value": None if placebo is None else _scalar(placebo.p_value),
        "placebo_significant": size_aware,
        "placebo_n_used": None if placebo is None or placebo.n_used is None else int(placebo.n_used),
        "largest_change": float(size.largest_change[explained]),
        "reading": reading(
            bool(_scalar(test.significant)),
            size_aware,
            size.describe(explained),
            flips.n_flips,
            why_untested(axis.periodic),
        ),
        "realisation_scores": [_scalar(s.test.statistic) for s in (scored, *realisations)],
        "realisation_p_values": [_scalar(s.test.p_value) for s in (scored, *realisations)],
        "curve": [float(p) for p in curve],
        "periodic": bool(axis.periodic),
        "property_name": axis.name,
        "unit": axis.unit,
    }


def baseline_record(
    key: CellKey,
    map_before: torch.Tensor | None,
    map_after: torch.Tensor | None,
    error: str | None,
    map_half: torch.Tensor | None = None,
) -> BaselineRecord:
    """The record of one baseline cell: its change scores, or the error it raised.

    Args:
        key: From :func:`baseline_key`.
        map_before: The map (any shape) of the original image, or None on error.
        map_after: The map of the fully intervened image, or None on error.
        error: The error message, or None.
        map_half: The map of the half-way image (extrapolation definition), or None.
    """
    if key.baseline is None:
        raise InvalidParameterError(f"a baseline record needs a baseline key, got {key}")
    score = half_score = None
    if error is None:
        if map_before is None or map_after is None:
            raise InvalidParameterError("without an error, both maps are needed")
        score, error = _change(map_before, map_after)
        if error is None and map_half is not None:
            half_score, error = _change(map_before, map_half)
            score = None if error is not None else score
    return {
        "kind": "baseline",
        "key": key.as_json(),
        "image": key.image,
        "method": key.baseline,
        "score": score,
        "half_score": half_score,
        "error": error,
    }


def _change(before: torch.Tensor, after: torch.Tensor) -> tuple[float | None, str | None]:
    """The change score of two maps, or the error that non-finite maps give."""
    value = float(change_score(before[None], after[None])[0])
    if math.isfinite(value):
        return value, None
    return None, f"the change score is {value} (the maps contain NaN or Inf values)"


def _scalar(x: Any) -> float:
    if isinstance(x, torch.Tensor):
        if x.numel() != 1:
            raise ValueError(f"expected a single value per cell, got a tensor of shape {tuple(x.shape)}")
        return x.item()
    return x
