"""propgrad-hue-shift: a propgrad plugin providing the ``hue_shift`` intervention source.

The distribution declares this module under the ``propgrad`` entry-point group, so propgrad
finds it once it is installed; the hook below registers the source class.
"""

from __future__ import annotations

from typing import Callable

from propgrad import hookimpl
from propgrad_hue_shift.hue import hsv_to_rgb, rgb_to_hsv, rotate_hue
from propgrad_hue_shift.source import HueShiftSource

__version__ = "0.1.0"
__all__ = ["HueShiftSource", "hsv_to_rgb", "rgb_to_hsv", "rotate_hue", "register_sources"]


@hookimpl
def register_sources(register: Callable[[type], None]) -> None:
    """Register :class:`HueShiftSource` as the source ``hue_shift``."""
    register(HueShiftSource)
