"""Whether the compiled CPU kernels (:mod:`propgrad.stats.cpu_kernels`, numba) can be used here."""

from __future__ import annotations

import warnings
from types import ModuleType

_STATE: dict[str, ModuleType | None] = {}


def compiled_kernels() -> ModuleType | None:
    """The compiled kernels' module, or None (once warned) when numba is missing or broken.

    Without them every computation falls back to the torch kernels, with the same results.
    """
    if "module" not in _STATE:
        try:
            from propgrad.stats import cpu_kernels
        except ImportError as error:
            warnings.warn(f"propgrad's compiled CPU kernels are unavailable ({error}); using torch", stacklevel=2)
            _STATE["module"] = None
        else:
            _STATE["module"] = cpu_kernels
    return _STATE["module"]
