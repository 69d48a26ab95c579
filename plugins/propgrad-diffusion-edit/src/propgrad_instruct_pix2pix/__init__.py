"""The former name of :mod:`propgrad_diffusion_edit` (the plugin was InstructPix2Pix only).

``import propgrad_instruct_pix2pix`` and its submodules (``.source``, ``.sampler``, ``.testing`` ...)
are the same module objects as ``propgrad_diffusion_edit``'s, so code and monkeypatches written
against the old name keep working. New code imports ``propgrad_diffusion_edit``.
"""

from __future__ import annotations

import importlib
import sys

import propgrad_diffusion_edit
from propgrad_diffusion_edit import *  # noqa: F403 - the old name re-exports the package
from propgrad_diffusion_edit import __all__, __version__  # noqa: F401

for _name in (
    "fidelity",
    "filmstrip",
    "guidance",
    "model_loading",
    "params",
    "plugin",
    "sampler",
    "source",
    "testing",
):
    sys.modules[f"{__name__}.{_name}"] = importlib.import_module(f"propgrad_diffusion_edit.{_name}")
    globals()[_name] = sys.modules[f"{__name__}.{_name}"]
del _name, importlib, sys, propgrad_diffusion_edit
