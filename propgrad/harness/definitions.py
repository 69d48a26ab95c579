"""The four flip definitions of the "predict the flip" benchmark, and the extrapolation split.

A flip definition says which images count as flipped (the label) and which score of every method
is judged against it. The paper's two definitions label the path that every method's score was
read from, which makes the output-only reference |p_T - p_0| nearly circular: it reads the labels'
own outputs. The two others separate what the methods see from what the label is about:

- ``anywhere`` (the paper code): the decision differs from the original's at some step; scores of
  the whole path.
- ``final``: the last step's decision differs from the original's; scores of the whole path.
- ``extrapolation``: every method sees only the first half of the path, steps ``0..h`` with
  ``h = (N - 1) // 2`` (:func:`half_index`; 10 of 0..20 for 21 steps): the property score of the
  first half's outputs, the baselines' change between the original and step ``h``, the output
  reference ``|p_h - p_0|``. The label is whether the decision differs from the original's at
  some step of the second half, ``h + 1..N - 1``. Fixed at one half before any result was seen.
- ``held_out``: the scores of the whole path, the label from another realisation of the
  intervention (:meth:`propgrad.suites.base.BenchmarkSuite.held_out_realisation`): does the
  decision differ from the original's anywhere along it. Suites without one have no such table.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FlipDefinition:
    """Which record fields one flip definition reads.

    Attributes:
        label: Property-record field holding whether the image flipped (None: not available).
        property_score: Property-record field holding the property score the method is judged by.
        reference: Property-record field holding the output-only reference.
        baseline_score: Baseline-record field holding the baseline's change score.
        title: One line for table headings.
    """

    label: str
    property_score: str
    reference: str
    baseline_score: str
    title: str


FLIP_DEFINITIONS: dict[str, FlipDefinition] = {
    "anywhere": FlipDefinition(
        "flipped_anywhere",
        "score",
        "reference",
        "score",
        "flip = the decision changes anywhere along the sequence (paper code)",
    ),
    "final": FlipDefinition(
        "final_differs", "score", "reference", "score", "flip = the final decision differs from the original one"
    ),
    "extrapolation": FlipDefinition(
        "flipped_second_half",
        "half_score",
        "half_reference",
        "half_score",
        "extrapolation: methods see the first half of the path, flip = the decision differs from the "
        "original one in the second half",
    ),
    "held_out": FlipDefinition(
        "heldout_flipped",
        "score",
        "reference",
        "score",
        "held-out realisation: scores of one realisation, flip = the decision changes anywhere along another",
    ),
}
"""Definition name -> fields, in table order (the paper's two first)."""

PAPER_DEFINITIONS = ("anywhere", "final")


def half_index(n_steps: int) -> int | None:
    """The last step the extrapolation definition shows the methods: ``(n_steps - 1) // 2``.

    Args:
        n_steps: Steps of the sequence, N.

    Returns:
        ``h`` with first half ``0..h`` and second half ``h + 1..N - 1``, or None for fewer than
        three steps (no first half with a gradient and a second half both).
    """
    if n_steps < 3:
        return None
    return (n_steps - 1) // 2
