"""propgrad: explain vision models by gradual interventions on semantic properties.

The public names are imported lazily, so ``import propgrad`` stays cheap and a plugin that
imports ``propgrad.hookimpl`` does not pull in matplotlib or Captum. Type checkers read the
``TYPE_CHECKING`` imports below instead of the lazy ``__getattr__`` (which they never see), so
``propgrad.PropertyGradient`` has its real type and a misspelled name is an error; every name in
``_EXPORTS`` is imported there (``tests/test_packaging.py`` keeps the two in sync).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from propgrad.hookspecs import hookimpl

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "property_gradient": "propgrad.stats.gradient",
    "permutation_test": "propgrad.stats.permutation",
    "PermutationResult": "propgrad.stats.permutation",
    "prediction_flips": "propgrad.stats.flips",
    "FlipResult": "propgrad.stats.flips",
    "PropertyGradient": "propgrad.explain.explainer",
    "Explanation": "propgrad.explain.result",
    "InterventionSequence": "propgrad.sources.base",
    "InterventionSource": "propgrad.sources.base",
    "AttributionBaseline": "propgrad.baselines.base",
    "BenchmarkSuite": "propgrad.suites.base",
    "get_source": "propgrad.plugins",
    "list_sources": "propgrad.plugins",
    "get_baseline": "propgrad.plugins",
    "list_baselines": "propgrad.plugins",
    "get_suite": "propgrad.plugins",
    "list_suites": "propgrad.plugins",
    "plugin_failures": "propgrad.plugins",
    "describe_plugins": "propgrad.plugins",
    "baseline_maps": "propgrad.explain.maps",
    "BaselineMaps": "propgrad.explain.maps",
    "PropertyTracker": "propgrad.track.tracking",
}

__all__ = ["__version__", "hookimpl", *_EXPORTS]

if TYPE_CHECKING:  # the "X as X" form is an explicit re-export, also under mypy --strict
    from propgrad.baselines.base import AttributionBaseline as AttributionBaseline
    from propgrad.explain.explainer import PropertyGradient as PropertyGradient
    from propgrad.explain.maps import BaselineMaps as BaselineMaps
    from propgrad.explain.maps import baseline_maps as baseline_maps
    from propgrad.explain.result import Explanation as Explanation
    from propgrad.plugins import describe_plugins as describe_plugins
    from propgrad.plugins import get_baseline as get_baseline
    from propgrad.plugins import get_source as get_source
    from propgrad.plugins import get_suite as get_suite
    from propgrad.plugins import list_baselines as list_baselines
    from propgrad.plugins import list_sources as list_sources
    from propgrad.plugins import list_suites as list_suites
    from propgrad.plugins import plugin_failures as plugin_failures
    from propgrad.sources.base import InterventionSequence as InterventionSequence
    from propgrad.sources.base import InterventionSource as InterventionSource
    from propgrad.stats.flips import FlipResult as FlipResult
    from propgrad.stats.flips import prediction_flips as prediction_flips
    from propgrad.stats.gradient import property_gradient as property_gradient
    from propgrad.stats.permutation import PermutationResult as PermutationResult
    from propgrad.stats.permutation import permutation_test as permutation_test
    from propgrad.suites.base import BenchmarkSuite as BenchmarkSuite
    from propgrad.track.tracking import PropertyTracker as PropertyTracker
else:

    def __getattr__(name: str) -> Any:
        """Import a public name's module on first use (``propgrad.PropertyGradient`` ...)."""
        if name in _EXPORTS:
            return getattr(import_module(_EXPORTS[name]), name)
        raise AttributeError(f"module 'propgrad' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The module's attributes plus the lazily imported public names, for ``dir()`` and completion."""
    return sorted(set(globals()) | set(__all__))
