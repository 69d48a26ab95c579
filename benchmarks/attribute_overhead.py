"""How much longer than the model's own forward passes does one ``attribute`` call take?

The model of issue 22: a 4-block ConvMixer (dim 64, random weights, 10 classes) explains an
``alpha_patch`` of 31 steps on 32 images (the four ``skimage`` photographs, eight times each) with
K = 10,000 permutations, at 64 and 128 px, two ways:

- ``paper``: the permutation test alone (``n_placebos=0``);
- ``default``: the call's defaults (the permutation test and the sequential size-aware placebo test,
  whose placebo sequences are forward passes of the model too).

The model is wrapped so that each of its forward passes is timed where it runs (inside the call),
so the ratio is the call's wall time over the time the model itself took in that call (1 = no
overhead). Runs are interleaved (every size and test once per repeat, after one discarded warm-up
of each) and the printed figure is the median ratio over ``--repeats``, beside the target of 1.25.
The default test takes about 10 s a call at 64 px and 2 minutes at 128 px here (32 images, most of
them needing all 100 placebos), so ``--tests paper`` is the quick measurement. ``--profile`` adds,
per size and test, the functions outside the model with the most own time (one extra profiled
call, not part of the ratio).

glibc's malloc thresholds are set as ``propgrad explain`` sets them
(:func:`propgrad.core.allocator.tune_allocator`; ``PROPGRAD_TUNE_ALLOCATOR=0`` keeps glibc's
defaults), so the model's own time does not depend on which sizes ran before in the process (with
glibc's adaptive thresholds, a 128-px call's large blocks raise them for the 64-px calls after it).

Usage::

    python benchmarks/attribute_overhead.py [--sizes 64 128] [--images 32] [--repeats 15]
        [--permutations 10000] [--tests paper default] [--threads N] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import sys
import time
from pathlib import Path

import torch
from device_check import TimedModel  # the forward passes timed where they run (benchmarks/ on sys.path)

TARGET = 1.25
"""The call's wall time over its model's forward passes (issue 22)."""
TESTS = {"paper": {"n_placebos": 0}, "default": {}}
"""The ``attribute`` keywords of each measured test."""


def issue_model() -> TimedModel:
    """The ConvMixer of issue 22 (random weights, seed 0), timed."""
    from propgrad.suites.convmixer import ConvMixer

    torch.manual_seed(0)
    return TimedModel(ConvMixer(dim=64, depth=4, kernel_size=5, patch_size=4, num_classes=10).eval())


def issue_images(size: int, n: int) -> torch.Tensor:
    """``n`` images of side ``size``: the four bundled photographs in turn."""
    from propgrad.core.images import EXAMPLE_IMAGES, example_image

    return torch.stack([example_image(EXAMPLE_IMAGES[i % len(EXAMPLE_IMAGES)], size=size) for i in range(n)])


def one_call(model: TimedModel, images: torch.Tensor, k: int, test: str) -> tuple[float, float, int]:
    """(wall seconds, forward seconds, images through the model) of one ``attribute`` call."""
    from propgrad import PropertyGradient

    model.seconds, model.images = 0.0, 0
    start = time.perf_counter()
    PropertyGradient(model).attribute(
        images, "alpha_patch", 0, source_params={"steps": 31}, n_permutations=k, **TESTS[test]
    )
    return time.perf_counter() - start, model.seconds, model.images


def profile_lines(model: TimedModel, images: torch.Tensor, k: int, test: str, top: int = 12) -> list[str]:
    """The ``top`` functions by own time outside the model in one profiled call.

    The model's time is its modules' functions and the built-ins (``torch.conv2d``, ...) that only
    they call; the first line sums the own time inside and outside the model.
    """
    profiler = cProfile.Profile()
    profiler.enable()
    one_call(model, images, k, test)
    profiler.disable()
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream)
    rows, inside = [], 0.0
    for (filename, line, name), (_, calls, own, cumulative, callers) in stats.stats.items():  # type: ignore[attr-defined]
        if _in_model(filename) or (filename == "~" and callers and all(_in_model(c[0]) for c in callers)):
            inside += own
            continue
        rows.append((own, calls, cumulative, f"{Path(filename).name}:{line}({name})"))
    rows.sort(reverse=True)
    outside = sum(own for own, *_ in rows)
    head = f"    {inside:7.3f} s own time in the model, {outside:7.3f} s outside it (profiled)"
    lines = [f"    {own:7.3f} s own  {cum:7.3f} s cum  {n:>7} calls  {where}" for own, n, cum, where in rows[:top]]
    return [head, *lines]


def _in_model(filename: str) -> bool:
    """Whether a profiled function is the model's: torch's modules, the ConvMixer, the timing wrapper."""
    return any(part in filename for part in ("torch/nn/modules", "torch/nn/functional", "convmixer", "device_check"))


Calls = dict[tuple[int, str], list[tuple[float, float, int]]]
"""Per (size, test): (wall seconds, forward seconds, images through the model) of each measured call."""


def measure(sizes: list[int], n_images: int, repeats: int, k: int, tests: tuple[str, ...] = tuple(TESTS)) -> Calls:
    """Every (size, test)'s calls, interleaved: one discarded warm-up each, then ``repeats`` rounds."""
    setups = {size: (issue_model(), issue_images(size, n_images)) for size in sizes}
    calls: Calls = {}
    for model, images in setups.values():
        for test in tests:
            one_call(model, images, k, test)  # warm-up: the compiled kernels, the source's first draw
    for _ in range(repeats):
        for size, (model, images) in setups.items():
            for test in tests:
                calls.setdefault((size, test), []).append(one_call(model, images, k, test))
    return calls


def main(argv: list[str] | None = None) -> int:
    """Measure and print one line per (size, test)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128], help="image sides (default: 64 128)")
    parser.add_argument("--images", type=int, default=32, help="images per call (default: 32)")
    parser.add_argument("--repeats", type=int, default=15, help="interleaved rounds (default: 15)")
    parser.add_argument("--permutations", type=int, default=10_000, help="K (default: 10,000)")
    parser.add_argument(
        "--tests", nargs="+", choices=list(TESTS), default=list(TESTS), help="tests to time (default: both)"
    )
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--profile", action="store_true", help="print where each call's time went")
    args = parser.parse_args(argv)
    for name in ("images", "repeats", "permutations"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    from propgrad.core.allocator import tune_allocator

    malloc = "tuned" if tune_allocator() else "glibc's defaults"
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, malloc thresholds {malloc}; "
        f"{args.images} images, 31 steps, K = {args.permutations}; medians of {args.repeats} interleaved calls"
    )
    from machine_load import StealClock  # benchmarks/ on sys.path

    steal, start = StealClock(), time.perf_counter()
    calls = measure(args.sizes, args.images, args.repeats, args.permutations, tuple(args.tests))
    wall = time.perf_counter() - start
    print(f"{'px':>4} {'test':<8} {'call s':>8} {'forward s':>10} {'images':>7} {'ratio':>6}  target")
    for (size, test), runs in calls.items():
        ratio = statistics.median(wall / forward for wall, forward, _ in runs)
        call = statistics.median(w for w, _, _ in runs)
        forward = statistics.median(f for _, f, _ in runs)
        images = runs[-1][2]
        verdict = "met" if ratio <= TARGET else "not met"
        print(f"{size:>4} {test:<8} {call:>8.3f} {forward:>10.3f} {images:>7} {ratio:>6.2f}  <= {TARGET} ({verdict})")
    print(steal.describe(wall))
    if args.profile:
        for size in args.sizes:
            model, images = issue_model(), issue_images(size, args.images)
            for test in args.tests:
                print(f"{size} px, {test}: own time outside the model")
                print("\n".join(profile_lines(model, images, args.permutations, test)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
