"""Python's garbage collector during a long run: the objects alive before it left out of its full passes.

A benchmark run holds about 450,000 objects before its first unit (torch's and matplotlib's modules,
the models, the test set). Each full pass of the collector re-scans all of them, and a run of the
default benchmark made about 14 such passes, 0.27 s each: 3.7 s of a 260-s run, a tenth of the
time the run spends outside its models and attribution calls. :func:`long_lived_frozen` moves the
objects alive when it starts to the collector's permanent generation (:func:`gc.freeze`) for the
duration of the block, so a full pass scans only what the run itself made.

A matplotlib figure is another case: drawing one makes about 35,000 tracked objects, most of them
alive until the figure is saved, so the collector's automatic passes during the drawing find little
and re-scan the figure again and again (a quarter of the default benchmark's figure time).
:func:`collector_paused` turns the automatic passes off for such a block and collects what it made
once, at its end.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def long_lived_frozen() -> Iterator[None]:
    """Leave the objects alive now out of the collector's passes while the block runs.

    Objects are still freed when their last reference goes; a reference cycle among them that
    becomes garbage inside the block is collected after it. On exit the objects return to the
    collector, unless the process had frozen objects before the block (``propgrad``'s command line
    freezes its imports for the life of the process): then they stay frozen with those.
    """
    already = gc.get_freeze_count() > 0
    gc.freeze()
    try:
        yield
    finally:
        if not already:
            gc.unfreeze()


@contextmanager
def collector_paused() -> Iterator[None]:
    """No automatic collection while the block runs; one pass over what it made when it ends.

    For a block that makes many objects which stay alive until it ends (a figure being drawn). The
    pass at the end is of the youngest generation (:func:`gc.collect` ``(0)``), which holds every
    container made since the collector last ran, so the block's garbage cycles are freed there.
    Nested blocks, and a collector that was off before, stay off until the outermost block that
    turned it off ends.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
            gc.collect(0)
