"""propgrad: explain vision models by gradual interventions on semantic properties.

The public names are imported lazily, so ``import propgrad`` stays cheap and a plugin that
imports ``propgrad.hookimpl`` does not pull in matplotlib or Captum.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from propgrad.hookspecs import hookimpl

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "property_gradient": "propgrad.stats.gradient",
    "permutation_test": "propgrad.stats.permutation",
    "PermutationResult": "propgrad.stats.permutation",
    "prediction_flips": "propgrad.stats.flips",
    "FlipResult": "propgrad.stats.flips",
    "PropertyGradient": "propgrad.api",
    "Explanation": "propgrad.result",
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
    "baseline_maps": "propgrad.maps",
    "BaselineMaps": "propgrad.maps",
}

__all__ = ["__version__", "hookimpl", *_EXPORTS]


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use (``propgrad.PropertyGradient`` ...)."""
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'propgrad' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The module's attributes plus the lazily imported public names, for ``dir()`` and completion."""
    return sorted(set(globals()) | set(__all__))
