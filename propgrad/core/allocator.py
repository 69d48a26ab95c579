"""glibc's malloc thresholds for torch's CPU tensors: freed memory reused instead of mapped and faulted in anew.

torch allocates CPU tensors with ``malloc``. glibc serves a request above its mmap threshold with a
fresh ``mmap`` and trims free memory above its trim threshold at the top of the heap back to the
system, so the next allocation of that size faults every page in again (and the kernel zeroes each).
glibc raises both thresholds as it sees large blocks freed, but a model's activations of a few MiB
still cross them on many forward passes: 40 forward passes of a 4-block ConvMixer (dim 48) at a batch
of 128 64-px images faulted 484,864 pages in and took 2.54 s, against no faults and 1.21 s with the
thresholds below (one thread, this project's 2-core development machine; ``benchmarks/allocator.py``).
Two such processes at once (two Dask workers) fault in the kernel together: there two processes gave
1.47x one with glibc's defaults and 1.89x with these thresholds.

:func:`tune_allocator` sets the thresholds glibc would adapt to for such blocks (mmap above 32 MiB,
glibc's largest; trim above 64 MiB), once per process: blocks up to 32 MiB are reused from the heap,
and freed memory above 64 MiB at its top still goes back to the system. The commands (``propgrad
...``), :func:`propgrad.harness.run_benchmark` and the Dask workers call it; a Python user can call it
too. ``PROPGRAD_TUNE_ALLOCATOR=0`` in the environment leaves glibc's defaults.
"""

from __future__ import annotations

import os
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
MMAP_THRESHOLD = 32 << 20
"""Blocks above this come from their own mmap (glibc's largest mmap threshold on 64-bit systems)."""
TRIM_THRESHOLD = 64 << 20
"""Free memory at the top of the heap above this goes back to the system."""
ENV_VAR = "PROPGRAD_TUNE_ALLOCATOR"
"""``0`` leaves glibc's defaults."""

_TUNED: list[bool] = []


def tune_allocator() -> bool:
    """Set glibc's mmap and trim thresholds (:data:`MMAP_THRESHOLD`, :data:`TRIM_THRESHOLD`) for this process, once.

    Also undoes the setting Dask's nanny starts workers with (``MALLOC_TRIM_THRESHOLD_=65536``, with
    which glibc stops adapting its thresholds at all: a benchmark unit ran three times slower on a
    worker than in-process, mostly in page faults).

    Returns:
        Whether the thresholds were set: False on other C libraries than glibc, on other systems than
        Linux, and with ``PROPGRAD_TUNE_ALLOCATOR=0``. Later calls return the first call's answer.
    """
    if _TUNED:
        return _TUNED[0]
    done = False
    wanted = os.environ.get(ENV_VAR, "1").strip() != "0"
    if wanted and sys.platform.startswith("linux") and _glibc():
        try:
            import ctypes

            libc = ctypes.CDLL("libc.so.6")
            done = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
                libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
            )
        except (OSError, AttributeError):  # no mallopt to call: glibc's defaults stay
            done = False
    _TUNED.append(done)
    return done


def _glibc() -> bool:
    """Whether this process runs on glibc (asked of the C library, not read from the executable's bytes)."""
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (AttributeError, ValueError, OSError):  # no such name here: not glibc
        return False
