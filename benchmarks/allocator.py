"""Forward passes with glibc's malloc defaults against :func:`propgrad.core.allocator.tune_allocator`, in one run.

The benchmark's model (a ConvMixer of dim 48 and depth 4, 2 classes) runs ``--forwards`` forward
passes of a batch of ``--batch`` 64-px images on one thread, in fresh processes alternating between
glibc's defaults and the tuned thresholds (``--repeats`` each, after one warm-up pass per process).
It prints, per setting, the median wall time and minor page faults of the measured passes, the
ratio of the two times, and the same with two processes at once (as two Dask workers run):
what each process took, beside one process alone.

Usage::

    python benchmarks/allocator.py [--forwards 40] [--batch 128] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = """
import json, resource, sys, time, torch
from propgrad.core.allocator import tune_allocator
if sys.argv[1] == "tuned":
    assert tune_allocator(), "the thresholds could not be set (not glibc?)"
torch.set_num_threads(1)
from propgrad.suites.convmixer import ConvMixer
torch.manual_seed(0)
model = ConvMixer(dim=48, depth=4, kernel_size=5, patch_size=4, num_classes=2).eval()
x = torch.rand(int(sys.argv[3]), 3, 64, 64)
with torch.no_grad():
    model(x)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    start = time.perf_counter()
    for _ in range(int(sys.argv[2])):
        model(x)
    wall = time.perf_counter() - start
print(json.dumps({"wall": wall, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults}))
"""


def _env() -> dict[str, str]:
    """This environment without the variables that set glibc's thresholds or keep them at their defaults."""
    return {k: v for k, v in os.environ.items() if k not in ("PROPGRAD_TUNE_ALLOCATOR", "MALLOC_TRIM_THRESHOLD_")}


def run(mode: str, forwards: int, batch: int, at_once: int = 1) -> list[dict[str, float]]:
    """``at_once`` processes of ``mode`` started together; what each measured."""
    command = [sys.executable, "-c", CHILD, mode, str(forwards), str(batch)]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=_env()) for _ in range(at_once)]
    outs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        raise RuntimeError(f"a measuring process failed (exit codes {[p.returncode for p in procs]})")
    return [json.loads(out.strip().splitlines()[-1]) for out in outs]


def main(argv: list[str] | None = None) -> int:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--forwards", type=int, default=40)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    alone: dict[str, list[dict[str, float]]] = {"default": [], "tuned": []}
    pairs: dict[str, list[dict[str, float]]] = {"default": [], "tuned": []}
    for _ in range(args.repeats):
        for mode in alone:
            alone[mode] += run(mode, args.forwards, args.batch)
        for mode in pairs:
            pairs[mode] += run(mode, args.forwards, args.batch, at_once=2)
    med = {m: statistics.median(r["wall"] for r in alone[m]) for m in alone}
    both = {m: statistics.median(r["wall"] for r in pairs[m]) for m in pairs}
    print(
        f"{args.forwards} forward passes of a batch of {args.batch} 64-px images, one thread; medians of {args.repeats}"
    )
    for mode in alone:
        faults = statistics.median(r["faults"] for r in alone[mode])
        print(
            f"  {mode:8s} alone {med[mode]:7.3f} s ({faults:,.0f} page faults); two processes at once "
            f"{both[mode]:7.3f} s each: two give {2 * med[mode] / both[mode]:.2f}x one"
        )
    print(f"  defaults / tuned, alone: {med['default'] / med['tuned']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
