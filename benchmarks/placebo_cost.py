"""What does the size-aware verdict cost beside the paper's test? ``attribute`` timed three ways in one run.

A 4-block ConvMixer (random weights, 64 and 128 px, as in the issue that made the placebo test the
default) explains an ``alpha_patch`` of 31 steps with K = 10,000 permutations:

- ``paper``: the permutation test alone (``n_placebos=0``), the reference;
- ``default``: the permutation test and the sequential placebo test (M = 100, the automatic stop);
- ``fixed``: the permutation test and the placebo test over all M = 100 placebos (``placebo_stop=None``).

Two models bracket the cost of the sequential test: ``ignores`` reads only the image corner the
patch never touches (every placebo moves it more: an image stops after its first placebo), and
``reads`` reads only the patch's square (no placebo moves it as much: an image needs all M). The
printed ratios are each configuration's time over ``paper``'s, measured in the same process, best of
``--repeats``. Drawing the placebos and running the model on them are timed apart for ``fixed``.

Usage::

    python benchmarks/placebo_cost.py [--sizes 64 128] [--images 4] [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import time
from typing import Any, Callable

import torch


class Masked(torch.nn.Module):
    """A model that sees the image only through a fixed (H, W) mask (0 elsewhere)."""

    def __init__(self, model: torch.nn.Module, mask: torch.Tensor) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mask", mask)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """The wrapped model's outputs on the masked images."""
        return self.model(images * self.mask)


def _models(size: int) -> dict[str, torch.nn.Module]:
    """The ConvMixer seeing only a corner (``ignores``) or only the patch's square (``reads``)."""
    from propgrad.suites.convmixer import ConvMixer

    torch.manual_seed(0)
    net = ConvMixer(dim=48, depth=4, kernel_size=5, patch_size=4, num_classes=10).eval()
    corner = torch.zeros(size, size)
    corner[: size // 8, : size // 8] = 1
    centre = torch.zeros(size, size)
    lo, hi = size // 4, size - size // 4
    centre[lo:hi, lo:hi] = 1
    return {"ignores": Masked(net, corner).eval(), "reads": Masked(net, centre).eval()}


def _best(fn: Callable[[], Any], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _model_rows(model: torch.nn.Module, images: torch.Tensor, size: int, repeats: int, k: int) -> list[dict[str, Any]]:
    """One model's three configurations, and the parts of the fixed test, timed."""
    from propgrad import PropertyGradient
    from propgrad.explain.scoring import score_sequences
    from propgrad.sources.placebo_sequences import PlaceboPool, placebo_draw
    from propgrad.stats.settings import test_settings

    params = {"steps": 31, "position": (3 * size // 8, 3 * size // 8)}  # the patch inside the centre square
    configs = {
        "paper": test_settings(n_permutations=k, n_placebos=0),
        "default": test_settings(n_permutations=k),
        "fixed": test_settings(n_permutations=k, placebo_stop=None),
    }
    explainer = PropertyGradient(model, batch_size=64)

    def explain(settings: Any) -> list[Any]:
        return explainer.attribute(images, "alpha_patch", target=0, source_params=params, settings=settings)

    explain(configs["default"])  # warm up: the compiled kernels, the source's first draw
    times, drawn = {}, {}
    for config, settings in configs.items():
        times[config] = _best(lambda settings=settings: explain(settings), repeats)
        drawn[config] = [0 if e.placebo is None else e.placebo.n_drawn for e in explain(settings)]
    sequences = [e.sequence for e in explain(configs["paper"])]
    draw = placebo_draw(100)

    def draw_all() -> list[torch.Tensor]:
        return [PlaceboPool(seq, draw).images(0, 100) for seq in sequences]

    stacked = torch.cat([chunk.flatten(0, 1) for chunk in draw_all()])

    def forward_all() -> list[torch.Tensor]:
        return [model(stacked[i : i + 64]) for i in range(0, len(stacked), 64)]

    def own() -> Any:
        return score_sequences(model, images, sequences, [0] * len(sequences), explainer.run_settings, configs["paper"])

    parts = {"draw_100_s": _best(draw_all, repeats), "forward_100_s": _best(forward_all, repeats)}
    parts["sequence_forward_and_test_s"] = _best(own, repeats)
    return [
        {"config": c, "seconds": times[c], "ratio": times[c] / times["paper"], "placebos_drawn": drawn[c], **parts}
        for c in configs
    ]


def measure(size: int, n_images: int, repeats: int, n_permutations: int = 10_000) -> list[dict[str, Any]]:
    """Seconds and ratios to the paper's test of every (model, configuration) at one image size."""
    from propgrad.core.images import EXAMPLE_IMAGES, example_image

    images = torch.stack([example_image(EXAMPLE_IMAGES[i % len(EXAMPLE_IMAGES)], size=size) for i in range(n_images)])
    rows = []
    with torch.inference_mode():
        for name, model in _models(size).items():
            rows += [
                {"size": size, "model": name, **row}
                for row in _model_rows(model, images, size, repeats, n_permutations)
            ]
    return rows


def main(argv: list[str] | None = None) -> int:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128], help="image sizes (default: 64 128)")
    parser.add_argument("--images", type=int, default=4, help="images per attribute call (default: 4)")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs (default: 3)")
    parser.add_argument("--permutations", type=int, default=10_000, help="K (default: 10,000)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, {threads} threads; {args.images} images per call, K = {args.permutations}")
    print(f"{'px':>4} {'model':<8} {'config':<8} {'seconds':>8} {'x paper':>8}  placebos drawn per image")
    for size in args.sizes:
        for row in measure(size, args.images, args.repeats, args.permutations):
            print(
                f"{row['size']:>4} {row['model']:<8} {row['config']:<8} {row['seconds']:>8.3f} {row['ratio']:>8.3g}  "
                f"{row['placebos_drawn']}"
            )
            if row["config"] == "fixed":
                n = args.images
                print(
                    f"{'':>4} {row['model']:<8} per image: the sequence's forward pass and test "
                    f"{row['sequence_forward_and_test_s'] / n:.4f} s; "
                    f"drawing 100 placebos {row['draw_100_s'] / n:.4f} s; "
                    f"the model on them {row['forward_100_s'] / n:.4f} s"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
