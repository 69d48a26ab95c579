"""Settings of a "predict the flip" benchmark run, and the quick/full presets."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any, Mapping

from propgrad.core.forward import RunSettings
from propgrad.core.validation import ParameterTypeError, check_bool, check_choice, check_int
from propgrad.errors import InvalidParameterError
from propgrad.stats.corrections import METHODS
from propgrad.stats.permutations import DEFAULT_STREAM
from propgrad.stats.settings import DEFAULT_PLACEBOS, TestSettings, test_settings

#: Constructor keyword arguments asked of the baselines in quick mode (passed only to classes
#: whose constructor accepts them). Full mode uses every class's defaults (the paper's settings).
QUICK_BASELINE_KWARGS: dict[str, dict[str, Any]] = {
    "integrated_gradients": {"n_steps": 16},
    "lime": {"n_samples": 32},
    "kernel_shap": {"n_samples": 25},
}


PLACEBO_VARIANT = "smooth_direction"
"""The benchmark's default placebos (:mod:`propgrad.sources.placebo_sequences`): the whole image along a
random smooth direction, each step changing it by the real step's mean |pixel difference|. Chosen before
the benchmark ever ran the ``"region"`` variant (``--placebo region``), so that the control was not
picked by its result."""


class PoolSize(Enum):
    """A pool size named by its meaning rather than given as a number of images per class.

    Stored settings hold the member's value (``"images_per_class"``), as they always have.
    """

    SUITE_IMAGES_PER_CLASS = "images_per_class"
    """As many test images per class as each resample draws: the suite's ``images_per_class()``."""


@dataclass(frozen=True)
class BenchmarkSettings:
    """Everything that determines the results of a benchmark run.

    Attributes:
        suites: Names of the suites to run.
        quick: Quick sizes (minutes on 2 CPU cores) or the paper's sizes.
        seed: Seed for the suites, the permutation tests and the resampling.
        n_permutations: K of each permutation test.
        alpha: Significance level of the permutation test and of the placebo test.
        n_placebos: M placebo sequences per property cell for the placebo-controlled test
            (:mod:`propgrad.stats.placebo_test`, the ``smooth_direction`` placebos of
            :mod:`propgrad.sources.placebo_sequences`); 0 runs no placebo test. Its p-value is at least
            1 / (M + 1), so ``M + 1 > 1 / alpha`` is needed for any image to be significant
            (M >= 100 at alpha = 0.01). The test is sequential (an image stops drawing placebos once
            one reaches its score), with the same verdicts as drawing all M: an image the model
            ignores costs a few placebos' forward passes, one it responds to costs M.
        placebo: The placebo variant (:data:`propgrad.stats.settings.PLACEBO_VARIANTS`; default
            :data:`PLACEBO_VARIANT`).
        correction: The multiple-testing correction over the images behind each significance
            count (one family per suite, intervention, model and test): ``"bh"``
            (Benjamini-Hochberg), ``"holm"`` or None. The uncorrected counts are reported too.
        realisations: R, realisations of the intervention scored per image
            (:meth:`propgrad.suites.base.BenchmarkSuite.realisation` 0 .. R - 1): with R > 1 the
            flip tables add the mean score over them (``property_score_mean_R``) as a method. The
            test, the flips, the placebos and the baselines stay on realisation 0.
        baselines: Names of the attribution baselines (empty: property score and reference only).
        baseline_kwargs: Constructor keyword arguments per baseline name.
        n_resamples: Resamples of the accuracy (the paper: 10).
        pool_per_class: Test images evaluated per class (a seeded choice): an int,
            :attr:`PoolSize.SUITE_IMAGES_PER_CLASS` (the suite's ``images_per_class()``), or None
            (every test image). Each resample draws ``suite.images_per_class()`` of them per class,
            without replacement when the pool is larger, else with replacement (bootstrap).
        forward_batch_size: Most images per model forward pass; each pass holds one test image's
            original and steps only, so that results do not depend on which images ran together.
        chunk_size: No longer changes anything (kept so that stored settings and scripts still
            read): a run holds the sequences of one unit, one attribution block of
            ``propgrad.harness.runner.ATTRIBUTION_BLOCK`` images, at a time (:mod:`propgrad.harness.units`).
        quantus_metrics: Quantus metric class names computed per suite, model and baseline on the
            pool images (:mod:`propgrad.harness.metric_columns`); empty (the default) computes none
            and leaves the settings hash of earlier runs unchanged.
        permutation_stream: Version of the stream drawing the permutations from the seeds
            (:data:`propgrad.stats.permutations.STREAMS`); 1 reproduces, and resumes, runs written
            before stream 2 (their settings hash names no stream).
    """

    suites: tuple[str, ...] = ("fur",)
    quick: bool = True
    seed: int = 0
    n_permutations: int = 1000
    alpha: float = 0.01
    n_placebos: int = DEFAULT_PLACEBOS
    placebo: str = PLACEBO_VARIANT
    correction: str | None = "bh"
    realisations: int = 1
    baselines: tuple[str, ...] = ()
    baseline_kwargs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    n_resamples: int = 10
    pool_per_class: int | PoolSize | None = None
    # 128, not 256: a 32 px ConvMixer runs 3 times slower per image at 256 on 2 cores (its activations
    # leave the cache; 51 vs 161 us per image, measured 2026-12-07); results do not depend on it
    forward_batch_size: int = 128
    chunk_size: int = 32
    quantus_metrics: tuple[str, ...] = ()
    permutation_stream: int = DEFAULT_STREAM

    def __post_init__(self) -> None:
        # the test's settings through their one door; the correction is over images (the summary's), not columns
        test = test_settings(
            n_permutations=self.n_permutations,
            alpha=self.alpha,
            seed=self.seed,
            n_placebos=self.n_placebos,
            placebo=self.placebo,
            permutation_stream=self.permutation_stream,
        )
        checked: dict[str, Any] = {
            "quick": check_bool(self.quick, "quick"),
            "seed": test.seed,
            "alpha": test.alpha,
            "n_permutations": test.n_permutations,
            "n_placebos": test.n_placebos,
            "placebo": test.placebo,
            "permutation_stream": test.permutation_stream,
            "correction": check_choice(self.correction, "correction", METHODS),
            "realisations": check_int(self.realisations, "realisations", hint="realisations scored per image (1: one)"),
            "n_resamples": check_int(self.n_resamples, "n_resamples"),
            "forward_batch_size": check_int(self.forward_batch_size, "forward_batch_size"),
            "chunk_size": check_int(self.chunk_size, "chunk_size"),
        }
        pool = self.pool_per_class
        if pool is not None and not isinstance(pool, PoolSize):
            hint = "or None (every test image) or PoolSize.SUITE_IMAGES_PER_CLASS (the suite's images_per_class())"
            if isinstance(pool, str):
                raise ParameterTypeError(f"pool_per_class must be a positive integer {hint}, got the string {pool!r}")
            checked["pool_per_class"] = check_int(pool, "pool_per_class", hint=hint)
        for name, value in checked.items():  # numpy scalars become plain Python values for the JSON
            object.__setattr__(self, name, value)
        # checked once, here; not fields (so neither in to_dict nor in the settings hash)
        object.__setattr__(self, "_cell_test", test)
        object.__setattr__(
            self, "_cell_run", RunSettings(output_transform="softmax", batch_size=self.forward_batch_size)
        )
        if not self.suites:
            raise InvalidParameterError("suites must name at least one benchmark suite, got an empty list")
        if len(set(self.baselines)) != len(self.baselines):
            raise InvalidParameterError(f"baselines must not repeat a name, got {list(self.baselines)}")
        if self.quantus_metrics:
            from propgrad.harness.metric_columns import check_benchmark_metrics

            object.__setattr__(self, "quantus_metrics", check_benchmark_metrics(self.quantus_metrics))

    @property
    def cell_test(self) -> TestSettings:
        """The property cells' test, checked with these settings: K, alpha, M placebos of ``placebo`` (sequential),
        the gradient statistic per step, no correction over columns; ``seed`` is the run's (each cell
        replaces it with its own, :func:`propgrad.harness.cells.cell_seed`)."""
        return self._cell_test  # type: ignore[attr-defined,no-any-return]

    @property
    def cell_run(self) -> RunSettings:
        """How the models run on a property cell's images: softmax outputs, ``forward_batch_size`` per pass."""
        return self._cell_run  # type: ignore[attr-defined,no-any-return]

    def to_dict(self) -> dict[str, Any]:
        """All settings as JSON-serialisable data."""
        out = asdict(self)
        out["suites"] = list(self.suites)
        out["baselines"] = list(self.baselines)
        out["quantus_metrics"] = list(self.quantus_metrics)
        out["baseline_kwargs"] = {k: dict(v) for k, v in self.baseline_kwargs.items()}
        if isinstance(self.pool_per_class, PoolSize):
            out["pool_per_class"] = self.pool_per_class.value
        return out

    def result_settings(self) -> dict[str, Any]:
        """The settings that change results (a resumed run must match them); batch sizes don't."""
        out = self.to_dict()
        for name in ("forward_batch_size", "chunk_size"):
            out.pop(name)
        if not self.quantus_metrics:  # runs before the option existed keep their settings hash
            out.pop("quantus_metrics")
        if self.permutation_stream == 1:  # so do runs of stream 1, written before there were streams
            out.pop("permutation_stream")
        return out


def preset(
    *,
    quick: bool,
    suites: tuple[str, ...],
    baselines: tuple[str, ...],
    baseline_classes: Mapping[str, type] | None = None,
    seed: int = 0,
    n_permutations: int | None = None,
    n_placebos: int | None = None,
    placebo: str = PLACEBO_VARIANT,
    correction: str | None = "bh",
    realisations: int = 1,
    quantus_metrics: tuple[str, ...] = (),
    permutation_stream: int = DEFAULT_STREAM,
) -> BenchmarkSettings:
    """Settings of the quick or full benchmark.

    Quick: K = 1000 permutations, each class's pool limited to ``suite.images_per_class()``
    images (so resamples bootstrap), modest baseline sample counts (:data:`QUICK_BASELINE_KWARGS`).
    Full: K = 10,000, every test image, every baseline at its defaults.

    Args:
        quick: Quick or full mode.
        suites: Suite names.
        baselines: Baseline names.
        baseline_classes: The classes of ``baselines`` (to keep only keyword arguments their
            constructors accept); None passes the quick keyword arguments unchecked.
        seed: Seed.
        n_permutations: Override of K.
        n_placebos: Override of M (default: :data:`propgrad.stats.settings.DEFAULT_PLACEBOS`).
        placebo: The placebo variant (default: :data:`PLACEBO_VARIANT`).
        correction: The correction over images (see :class:`BenchmarkSettings`).
        realisations: R (see :class:`BenchmarkSettings`).
        quantus_metrics: Quantus metric class names (see :class:`BenchmarkSettings`).
        permutation_stream: The permutations' stream version (see :class:`BenchmarkSettings`).
    """
    kwargs: dict[str, dict[str, Any]] = {}
    if quick:
        for name in baselines:
            wanted = QUICK_BASELINE_KWARGS.get(name, {})
            cls = (baseline_classes or {}).get(name)
            kwargs[name] = {k: v for k, v in wanted.items() if cls is None or accepts_kwarg(cls, k)}
    return BenchmarkSettings(
        suites=tuple(suites),
        quick=quick,
        seed=seed,
        n_permutations=(1000 if quick else 10_000) if n_permutations is None else n_permutations,
        n_placebos=DEFAULT_PLACEBOS if n_placebos is None else n_placebos,
        placebo=placebo,
        correction=correction,
        realisations=realisations,
        baselines=tuple(baselines),
        baseline_kwargs={k: v for k, v in kwargs.items() if v},
        pool_per_class=PoolSize.SUITE_IMAGES_PER_CLASS if quick else None,
        quantus_metrics=tuple(quantus_metrics),
        permutation_stream=permutation_stream,
    )


def accepts_kwarg(cls: type, name: str) -> bool:
    """Whether ``cls(**{name: ...})`` names one of the class's (declared or constructor) parameters."""
    from propgrad.plugins.parameters import accepts

    return accepts(cls, name)
