"""What ``PropertyGradient.attribute`` returns for a batch: a list of explanations that Jupyter shows as a table."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from propgrad.explain.result import Explanation


class Explanations(list["Explanation"]):
    """The explanations of a batch, one per input image, in order: a plain ``list`` in every way.

    Indexing, slicing (a slice is a plain ``list``), iteration, ``len``, ``==`` against a list and
    JSON all behave as for a list. In a notebook it shows as one table row per image
    (:func:`propgrad.explain.explanation_html.explanations_fragment`): the image, the reading, both
    tests' verdicts and p-values, the score, the decision flips and a small curve of the explained
    output; display ``explanations[i]`` for that image's verdict card and figures.
    """

    __slots__ = ()

    def _repr_html_(self) -> str:
        """The table of the batch as self-contained HTML (images as data URIs, no script)."""
        from propgrad.explain.explanation_html import explanations_fragment

        return explanations_fragment(self)
