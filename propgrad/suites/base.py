"""The contract every benchmark suite fulfils.

A suite bundles what the "predict the flip" benchmark needs: trained models, test images with
labels, and one or more named interventions that turn a test image into an ordered sequence.
Suites are classes registered through the ``register_suites`` hook; built-in suites generate
their data procedurally from a seed, third-party suites may load real data.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Mapping

import torch
from torch import nn

from propgrad.sources.base import InterventionSequence
from propgrad.suites.validity import Check, checked_thresholds


class BenchmarkSuite(ABC):
    """Base class of benchmark suites.

    Args:
        quick: Small sizes that run in minutes on 2 CPU cores; False for the paper's sizes.
        seed: Seed for data generation, training and interventions.
        cache_dir: Where trained models and generated data are cached; None for the default
            user cache directory (``propgrad.core.cache.default_cache_dir()``).
        show_progress: Show progress bars for data generation and training.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    class_names: ClassVar[tuple[str, ...]] = ()
    interventions: ClassVar[tuple[str, ...]] = ()
    score_only_interventions: ClassVar[tuple[str, ...]] = ()
    """Interventions in ``interventions`` that the harness scores with the property score only
    (no baseline cells, no flip tables): informational comparisons, such as an intervention
    sized to match another one's pixel change. Empty by default: every intervention is
    benchmarked in full."""
    validity_thresholds: ClassVar[Mapping[str, float]] = {}
    """Every threshold of :meth:`validity_checks` by name, with its default (empty: the suite states
    no checks)."""

    def __init__(
        self,
        *,
        quick: bool = True,
        seed: int = 0,
        cache_dir: Path | None = None,
        show_progress: bool = False,
    ) -> None:
        self.quick = quick
        self.seed = seed
        self.cache_dir = cache_dir
        self.show_progress = show_progress

    @abstractmethod
    def settings(self) -> dict[str, Any]:
        """Every setting that determines the data and the models (JSON-serialisable)."""

    @abstractmethod
    def models(self) -> dict[str, nn.Module]:
        """Trained models by name, in eval mode, mapping [0, 1] images (B, 3, H, W) to logits."""

    @abstractmethod
    def test_set(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The benchmark's test images (M, 3, H, W) in [0, 1] and their labels (M,)."""

    @abstractmethod
    def intervene(self, intervention: str, index: int) -> InterventionSequence:
        """The ordered sequence for test image ``index`` under the named intervention."""

    def held_out_realisation(self, intervention: str, index: int) -> InterventionSequence | None:
        """A second realisation of ``intervention`` on test image ``index``, drawn independently of
        :meth:`intervene`'s randomness.

        The harness's ``held_out`` flip definition reads the scores from :meth:`intervene`'s
        sequence and the flip label (does the decision differ from the original's anywhere
        along the sequence) from this one, so a method cannot score well by reading the very
        path its label was taken from.

        Contract: the same first image as ``intervene(intervention, index)`` (step 0 equals the
        original test image exactly), the same number of steps, the same ``values``, the same
        ``property_name`` and unit (the same path of the property), but another draw of whatever
        the intervention's generator may vary without changing the property. Deterministic given
        the suite seed and ``index``, and drawn from a random stream of its own, independent of
        the one :meth:`intervene` uses. A suite says in its docstring what it varies and why.

        The default returns None: the suite has no randomness to vary, and the harness leaves
        the ``held_out`` table out for it.

        Args:
            intervention: One of :attr:`interventions`.
            index: Index of the test image.
        """
        return None

    def realisation(self, intervention: str, index: int, number: int) -> InterventionSequence | None:
        """Realisation ``number`` of ``intervention`` on test image ``index``, for benchmark runs that
        score R > 1 realisations per image (``--realisations R`` scores 0 .. R - 1).

        Number 0 is :meth:`intervene`'s sequence; 1, 2, ... are further draws under the contract
        of :meth:`held_out_realisation` (same first image, steps, values and property path), each
        from a random stream of its own and none of them the held-out one, which the benchmark
        keeps for the labels of the ``held_out`` definition.

        The default gives :meth:`intervene`'s for 0 and None otherwise (the suite has no other
        realisations; the harness refuses R > 1 for it).

        Args:
            intervention: One of :attr:`interventions`.
            index: Index of the test image.
            number: 0 for :meth:`intervene`'s, 1, 2, ... for the others.
        """
        return self.intervene(intervention, index) if number == 0 else None

    @abstractmethod
    def accuracy_table(self) -> dict[str, dict[str, float]]:
        """Test accuracy of every model (rows) on every evaluation split (columns), in [0, 1]."""

    def level_accuracy(self) -> dict[str, dict[str, Any]]:
        """Optional in-distribution check: every model's accuracy along each intervened property.

        Suites that can draw fresh images at chosen property levels return, per property, the
        level labels and every model's accuracy at each level, on images other than the test
        set. An unbiased model whose accuracy dips at some level shows that the intervention
        passes through images unlike its training data there. The harness prints and saves the
        tables. The default returns no check.

        Returns:
            ``{property: {"levels": [label, ...], "accuracy": {model: [accuracy in [0, 1], ...]}}}``;
            an entry may add ``"class_accuracy": {model: {class_name: [accuracy, ...]}}``, since
            a property that pushes every image towards one class can leave the overall accuracy
            flat while one class gains what the other loses.
        """
        return {}

    def images_per_class(self) -> int:
        """How many images per class each resample of the flip benchmark draws."""
        return 150 if not self.quick else 30

    @classmethod
    def validity_checks(cls, results: Mapping[str, Any], thresholds: Mapping[str, float] | None = None) -> list[Check]:
        """What a run's results must show for this suite's flip tables to mean something, checked.

        A benchmark on which every method scores the same, or on which the property score wins
        only by construction, shows nothing: a suite states, before any run, what its results
        must show, as checks on a run's ``results.json`` data. ``propgrad validate RUN`` prints
        them. The thresholds are checked here, once; a suite implements :meth:`_validity_checks`.

        Args:
            results: A benchmark run's results (the data of its ``results.json``).
            thresholds: Thresholds to use instead of the defaults in :attr:`validity_thresholds`.

        Returns:
            One :class:`~propgrad.suites.validity.Check` per check (empty: the suite states none).

        Raises:
            InvalidParameterError: A threshold the suite does not declare, or not a number.
            ValueError: The results lack what a check reads (the suite, a model, its records).
        """
        return cls._validity_checks(results, checked_thresholds(cls.name, thresholds, cls.validity_thresholds))

    @classmethod
    def _validity_checks(cls, results: Mapping[str, Any], thresholds: Mapping[str, float]) -> list[Check]:
        """The suite's own checks, with every threshold of :attr:`validity_thresholds` set (default: none)."""
        return []

    @classmethod
    def validity_notes(cls, results: Mapping[str, Any]) -> list[str]:
        """Lines printed beside the checks, with no pass/fail (tables that help read them; default: none).

        Args:
            results: A benchmark run's results.
        """
        return []
