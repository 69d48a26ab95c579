"""Old import path of :mod:`propgrad.stats.permutation`, kept for plugins."""

from propgrad.stats.permutation import PermutationResult, permutation_test  # noqa: F401
