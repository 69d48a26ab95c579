"""Old import path of :mod:`propgrad.stats.flips`, kept for plugins."""

from propgrad.stats.flips import FlipResult, prediction_flips  # noqa: F401
