"""Is tracking dominated by loading checkpoints and forward passes? ``PropertyTracker.track`` timed in one run.

A small ConvMixer (dim 32, depth 3, 10 classes, 32 px) gets ``--checkpoints`` checkpoints (100 by
default; each ``{"model_state_dict", "epoch"}`` with its own random weights, as ``torch.save`` users
write them) and ``--images`` images (10) with an ``alpha_patch`` sequence of ``--steps`` steps (31),
every column scored with K = ``--permutations`` (10,000). The track runs through
:class:`propgrad.track.PropertyTracker`, the same code ``propgrad track`` runs, which times its own
parts: loading every checkpoint into the one model, the forward passes, the tests. The script prints
the total against the sum of load and forward time (the target: at most 1.3 times it), the share of
the permutation tests (K per image and checkpoint, the scoring itself) and of everything else, and the
process's peak resident memory during the track against one checkpoint's and all checkpoints' size
(one model resident at a time: the peak grows by about one model, not by all of them).

Usage::

    python benchmarks/track_speed.py [--checkpoints 100] [--images 10] [--steps 31] [--threads 1]

Timings taken while other work shares the machine are not the figures to quote.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ARCHITECTURE = {"dim": 32, "depth": 3, "kernel_size": 5, "patch_size": 4, "num_classes": 10}


def build_model() -> torch.nn.Module:
    """The tracked model: a small ConvMixer."""
    from propgrad.suites.convmixer import ConvMixer

    return ConvMixer(**ARCHITECTURE)


def write_checkpoints(folder: Path, n: int) -> int:
    """``n`` checkpoints with their own random weights; returns one checkpoint's size in bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    model = build_model()
    for epoch in range(n):
        torch.manual_seed(epoch)
        for p in model.parameters():
            torch.nn.init.normal_(p, std=0.05)
        torch.save({"model_state_dict": model.state_dict(), "epoch": epoch}, folder / f"epoch_{epoch:03d}.pt")
    return (folder / "epoch_000.pt").stat().st_size


def _peak_rss_bytes() -> int:
    """The process's peak resident memory so far (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def measure(
    *,
    n_checkpoints: int = 100,
    n_images: int = 10,
    size: int = 32,
    steps: int = 31,
    n_permutations: int = 10_000,
    folder: Path | None = None,
) -> dict[str, Any]:
    """Write the checkpoints, track, and return the timing and memory figures of the track."""
    from propgrad.track import PropertyTracker

    with tempfile.TemporaryDirectory() as tmp:
        where = Path(folder) if folder is not None else Path(tmp) / "checkpoints"
        checkpoint_bytes = write_checkpoints(where, n_checkpoints)
        images = torch.rand(n_images, 3, size, size, generator=torch.Generator().manual_seed(0))
        # warm up on the first checkpoint with every image (the compiled kernels load on their first call of
        # each shape of work: one image tests one column, ten images ten), then the measured run over all of them
        warm = PropertyTracker(build_model, sorted(where.glob("*.pt"))[:1])
        warm.track(images, "alpha_patch", target=0, source_params={"steps": steps}, n_permutations=n_permutations)
        before = _peak_rss_bytes()
        start = time.perf_counter()
        tracker = PropertyTracker(build_model, where)  # finding, ordering and checking the files is part of it
        found = time.perf_counter()
        result = tracker.track(
            images, "alpha_patch", target=0, source_params={"steps": steps}, n_permutations=n_permutations
        )
        wall = time.perf_counter() - start
        after = _peak_rss_bytes()
    t = result.timing
    load_forward = t.load + t.forward
    return {
        "checkpoints": n_checkpoints,
        "images": n_images,
        "steps": steps,
        "n_permutations": n_permutations,
        "total_s": wall,
        "track_s": t.total,
        "load_s": t.load,
        "forward_s": t.forward,
        "test_s": t.test,
        "generate_s": t.generate,
        "find_s": found - start,
        "ratio": wall / load_forward,
        "computed": t.computed,
        "rows": len(result.rows()),
        "checkpoint_bytes": checkpoint_bytes,
        "all_checkpoints_bytes": checkpoint_bytes * n_checkpoints,
        "peak_rss_before": before,
        "peak_rss_after": after,
        "peak_growth_bytes": after - before,
    }


def _mib(n: float) -> str:
    return f"{n / 2**20:.3g} MiB"


def main(argv: list[str] | None = None) -> int:
    """Run the measurement and print it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=int, default=100)
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=31)
    parser.add_argument("--permutations", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    r = measure(
        n_checkpoints=args.checkpoints,
        n_images=args.images,
        size=args.size,
        steps=args.steps,
        n_permutations=args.permutations,
    )
    print(
        f"{r['checkpoints']} checkpoints x {r['images']} images x {r['steps']} steps, K = {r['n_permutations']}, "
        f"{args.threads} thread(s)"
    )
    print(f"  load     {r['load_s']:8.2f} s")
    print(f"  forward  {r['forward_s']:8.2f} s")
    print(f"  test     {r['test_s']:8.2f} s")
    print(f"  generate {r['generate_s']:8.2f} s (once)")
    verdict = "within" if r["ratio"] <= 1.3 else "ABOVE"
    print(
        f"  total    {r['total_s']:8.2f} s = {r['ratio']:.2f} x "
        f"(load + forward = {r['load_s'] + r['forward_s']:.2f} s); "
        f"{verdict} the 1.3 x target"
    )
    rest = r["total_s"] - r["load_s"] - r["forward_s"] - r["test_s"]
    print(
        f"  the permutation tests take {r['test_s'] / r['total_s']:.0%} of the total; everything else the track "
        f"does (checking the files, records, sequences) {rest:.2f} s = {rest / r['total_s']:.1%}, of which finding, "
        f"ordering and checking the {r['checkpoints']} files {r['find_s']:.2f} s"
    )
    print(
        f"  peak memory grew by {_mib(r['peak_growth_bytes'])} during the track (to {_mib(r['peak_rss_after'])}); "
        f"one checkpoint is {_mib(r['checkpoint_bytes'])}, "
        f"all {r['checkpoints']} are {_mib(r['all_checkpoints_bytes'])}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
