"""Old import path of :mod:`propgrad.stats.gradient`, kept for plugins."""

from propgrad.stats.gradient import apply_stencil, finite_difference_weights, property_gradient  # noqa: F401
