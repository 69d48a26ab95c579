"""The test's settings, checked once at the door and then trusted: :class:`TestSettings` and :func:`test_settings`.

Every public entry that runs a test (``PropertyGradient.attribute``, ``permutation_test``, the
benchmark's settings) builds one :class:`TestSettings` with :func:`test_settings`, which checks
every field and says what was wrong and what was expected. The frozen object then travels down
as one value; the private functions below the door take it and do not check again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Union

import torch

from propgrad.core.validation import check_alpha, check_choice, check_int, check_seed
from propgrad.stats.corrections import METHODS
from propgrad.stats.decision import check_min_effect
from propgrad.stats.defaults import DEFAULT_PLACEBOS, PLACEBO_VARIANTS
from propgrad.stats.permutations import DEFAULT_STREAM, STREAMS
from propgrad.stats.placebo_test import auto_stop
from propgrad.stats.statistic import check_statistic

__all__ = ["DEFAULT_PLACEBOS", "MAX_PERMUTATIONS", "PER", "PLACEBO_VARIANTS", "TestSettings", "test_settings"]

MAX_PERMUTATIONS = 10**7
"""Most permutations of one test: a thousand times the paper's 10,000."""
PER = ("step", "unit")
"""Scores per property step (the paper's convention) or per unit of the property values."""
AUTO = "auto"
"""``placebo_stop="auto"``: the smallest sequential stop whose verdicts equal the fixed test's
(:func:`propgrad.stats.placebo_test.auto_stop`)."""


@dataclass(frozen=True)
class TestSettings:
    """How to test one explanation, checked (build it with :func:`test_settings`).

    Attributes:
        n_permutations: K, shuffles of the permutation test, in [1, :data:`MAX_PERMUTATIONS`].
        alpha: Significance level in (0, 1).
        statistic: ``"gradient"``, ``"pearson"`` or a callable
            ``f(permuted_outputs (B, N, C), values (N,)) -> (B, C)``
            (:mod:`propgrad.stats.statistic`).
        seed: Seed of the permutations (and of the placebos), in [0, 2**63 - 1].
        permutation_stream: Version of the stream drawing the permutations from the seed
            (:data:`propgrad.stats.permutations.STREAMS`): with the seed it reproduces the p-values.
        per: ``"step"`` (scores per property step) or ``"unit"`` (per unit of the values).
        sequential: Besag-Clifford's h (a column stops after h null statistics as extreme as the
            observed one), or None for the fixed-K test.
        correction: Multiple-testing correction over the output columns (``"holm"``, ``"bh"``) or None.
        min_effect: Effect-size floor δ >= 0: significant means ``p < alpha`` and ``statistic >= δ``.
        n_placebos: M placebo sequences for the size-aware placebo test (at most: see
            ``placebo_stop``); 0 runs none.
        placebo: Which placebo sequences (:data:`PLACEBO_VARIANTS`).
        placebo_stop: The sequential placebo test's h: an image stops drawing placebos once h of
            them reach its statistic (:mod:`propgrad.stats.placebo_test`); None draws all M.
    """

    __test__: ClassVar[bool] = False  # not a pytest test class, whatever its name

    n_permutations: int = 10_000
    alpha: float = 0.01
    statistic: Union[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = "gradient"
    seed: int = 0
    permutation_stream: int = DEFAULT_STREAM
    per: str = "step"
    sequential: int | None = None
    correction: str | None = None
    min_effect: float = 0.0
    n_placebos: int = DEFAULT_PLACEBOS
    placebo: str = "smooth_direction"
    placebo_stop: int | None = 1

    @classmethod
    def checked(cls, **kwargs: Any) -> TestSettings:
        """:func:`test_settings` as a constructor: ``TestSettings.checked(alpha=0.05)``."""
        return test_settings(**kwargs)


def test_settings(
    *,
    n_permutations: Any = 10_000,
    alpha: Any = 0.01,
    statistic: Any = "gradient",
    seed: Any = 0,
    permutation_stream: Any = DEFAULT_STREAM,
    per: Any = "step",
    sequential: Any = None,
    correction: Any = None,
    min_effect: Any = 0.0,
    n_placebos: Any = DEFAULT_PLACEBOS,
    placebo: Any = "smooth_direction",
    placebo_stop: Any = AUTO,
) -> TestSettings:
    """Check the test's settings once and return them as a frozen :class:`TestSettings`.

    Args:
        n_permutations: K, an integer in [1, :data:`MAX_PERMUTATIONS`].
        alpha: Significance level in (0, 1) (Python or numpy number).
        statistic: ``"gradient"``, ``"pearson"`` or a callable.
        seed: An integer in [0, 2**63 - 1].
        permutation_stream: 2 (counter-based Fisher-Yates, the default) or 1 (sorted random keys, the
            stream of results written before it; their files record no stream).
        per: ``"step"`` or ``"unit"``.
        sequential: A positive integer (10 is usual) or None.
        correction: ``"holm"``, ``"bh"`` or None.
        min_effect: A finite number >= 0.
        n_placebos: An integer >= 0 (0: no placebo test; default :data:`DEFAULT_PLACEBOS`).
        placebo: One of :data:`PLACEBO_VARIANTS`.
        placebo_stop: ``"auto"`` (the smallest h whose verdicts at ``alpha`` equal the fixed
            M-placebo test's, ``max(1, ceil(alpha * M))``), a positive integer h, or None for the
            fixed test over all M placebos. None when ``n_placebos`` is 0.

    Returns:
        The checked settings, with plain Python types (numpy numbers become int or float).

    Raises:
        InvalidParameterError: any setting outside its range, an unknown name (the message names
            the setting, what was expected and what was given); its subclass ParameterTypeError
            for a value of the wrong type (``seed=1.5``, ``alpha="0.05"``).
    """
    k = check_int(
        n_permutations,
        "n_permutations",
        maximum=MAX_PERMUTATIONS,
        hint=f"p-values resolve 1 / (n_permutations + 1), and {MAX_PERMUTATIONS:.0e} permutations resolve "
        "far below any significance level (the paper uses 10,000)",
    )
    if sequential is not None:
        sequential = check_int(
            sequential,
            "sequential",
            hint="the number of null statistics as extreme as the observed one after which a column stops "
            "drawing (Besag & Clifford; 10 is usual), or None for the fixed-K test",
        )
    alpha = check_alpha(alpha)
    m = check_int(n_placebos, "n_placebos", minimum=0, hint="placebo sequences per image, 0 for none")
    if isinstance(placebo_stop, str) and placebo_stop == AUTO:
        placebo_stop = auto_stop(alpha, m)
    elif placebo_stop is not None:
        placebo_stop = check_int(
            placebo_stop,
            "placebo_stop",
            hint="the number of placebos reaching the observed statistic after which an image stops drawing "
            "placebos (Besag & Clifford), 'auto', or None to draw all n_placebos",
        )
    return TestSettings(
        n_permutations=k,
        alpha=alpha,
        statistic=check_statistic(statistic),
        seed=check_seed(seed),
        permutation_stream=check_choice(permutation_stream, "permutation_stream", STREAMS),
        per=check_choice(per, "per", PER),
        sequential=sequential,
        correction=check_choice(correction, "correction", METHODS),
        min_effect=check_min_effect(min_effect),
        n_placebos=m,
        placebo=check_choice(placebo, "placebo", PLACEBO_VARIANTS),
        placebo_stop=placebo_stop if m else None,
    )


test_settings.__test__ = False  # type: ignore[attr-defined]  # not a pytest test function, whatever its name
