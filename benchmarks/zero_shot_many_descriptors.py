"""A zero-shot explanation at the realistic size: N steps x (K classes x D descriptors) output columns.

The issue's size is one full turn in 1-degree steps (N = 360) against ImageNet's 1,000 classes
with ten descriptors each (C = 10,000 cosine similarities). This script runs
``PropertyGradient(ZeroShotClassifier(...)).attribute`` end to end on an in-plane rotation of an
example image and prints, for each phase, the wall time and the growth of the process's peak
resident memory (sampled every millisecond):

- **first call**: a tiny ``attribute`` call (4 steps, the same model) before anything is timed,
  so that one-time costs (imports, the permutation test's set-up) are not charged to the phases;
- **forward**: the wrapper alone on the N + 1 images (encoder chunks of ``--encoder-batch``);
- **attribute**: the whole explanation (forward, the permutation test of all C columns, the flips,
  the per-class aggregation with its test of the K class-mean curves);
- **aggregation**: :func:`propgrad.explain.result.aggregate_classes` alone on the explanation's outputs
  (the K class-mean tests and the (K, D) tables), to see what the per-class part adds.

By default the image encoder is a fixed random projection of 8 x 8 average-pooled pixels to
``--dim`` dimensions and the text embeddings are random, so the forward pass is cheap and the
numbers are propgrad's own cost; ``--clip PATH_OR_ID`` uses a real Hugging Face CLIP folder or id
instead (its descriptors are "a photo of class k, variant d"). Timings depend on the machine's load:
run it on a quiet one.

Usage::

    python benchmarks/zero_shot_many_descriptors.py [--steps 360] [--classes 1000] [--descriptors 10]
        [--permutations 10000] [--dim 512] [--size 224] [--encoder-batch 64] [--clip PATH_OR_ID]
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn.functional as F

import propgrad
from propgrad.core.images import example_image
from propgrad.explain.result import aggregate_classes
from propgrad.explain.scoring import PropertyAxis
from propgrad.explain.zero_shot import ZeroShotClassifier
from propgrad.sources.base import InterventionSequence, InterventionSource
from propgrad.stats.settings import test_settings


class InPlaneRotation(InterventionSource):
    """A full in-plane turn of the image in ``steps`` equal steps (periodic, degrees)."""

    name = "in_plane_rotation"
    description = "rotate the image in plane (benchmark)"
    property_name = "angle"
    unit = "degree"

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def generate(self, image: torch.Tensor, *, seed: int = 0, show_progress: bool = False) -> InterventionSequence:
        angles = torch.arange(self.steps, dtype=torch.float32) * (360.0 / self.steps)
        theta = torch.deg2rad(angles)
        cos, sin, zeros = torch.cos(theta), torch.sin(theta), torch.zeros(self.steps)
        affine = torch.stack([torch.stack([cos, -sin, zeros], 1), torch.stack([sin, cos, zeros], 1)], 1)
        grid = F.affine_grid(affine, (self.steps, *image.shape), align_corners=False)
        frames = F.grid_sample(image.expand(self.steps, *image.shape), grid, align_corners=False)
        return InterventionSequence(frames.clamp(0, 1), angles, "angle", "degree", periodic=True)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@contextmanager
def measured(label: str) -> Iterator[None]:
    """Print the wall time and the peak resident-memory growth of the block."""
    start_rss, peak, done = _rss_bytes(), [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(0.001)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds = time.perf_counter() - start
        done.set()
        thread.join()
        growth = max(0, max(peak[0], _rss_bytes()) - start_rss)
        print(f"  {label:<12} {seconds:9.2f} s   peak memory +{growth / 2**20:8.1f} MiB")


def random_classifier(classes: int, descriptors: int, dim: int, batch: int) -> ZeroShotClassifier:
    generator = torch.Generator().manual_seed(0)
    projection = torch.randn(3 * 8 * 8, dim, generator=generator)
    texts = torch.randn(classes, descriptors, dim, generator=generator)
    names = {f"class {k}": [f"class {k} descriptor {d}" for d in range(descriptors)] for k in range(classes)}

    def encode_image(images: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(images, 8).flatten(1) @ projection.to(images.device)

    return ZeroShotClassifier(encode_image, texts, names, batch_size=batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=360)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--descriptors", type=int, default=10)
    parser.add_argument("--permutations", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=512, help="embedding dimension of the random encoder")
    parser.add_argument("--size", type=int, default=224, help="image size")
    parser.add_argument("--encoder-batch", type=int, default=64)
    parser.add_argument("--clip", help="a Hugging Face CLIP folder or id instead of the random encoder")
    args = parser.parse_args()

    k, d = args.classes, args.descriptors
    print(
        f"N = {args.steps} steps x C = {k} classes x {d} descriptors = {k * d} columns, "
        f"K = {args.permutations} permutations, {torch.get_num_threads()} torch threads"
    )
    with measured("set-up"):
        if args.clip:
            names = {f"class {i}": [f"a photo of class {i}, variant {j}" for j in range(d)] for i in range(k)}
            model = ZeroShotClassifier.from_pretrained(args.clip, names, batch_size=args.encoder_batch)
        else:
            model = random_classifier(k, d, args.dim, args.encoder_batch)
    image = example_image("chelsea", size=args.size)
    source = InPlaneRotation(args.steps)
    sequence = source.generate(image)
    with measured("first call"):
        propgrad.PropertyGradient(model).attribute(image, source=InPlaneRotation(4), n_permutations=10)
    with measured("forward"):
        outputs = model(torch.cat([image[None], sequence.images]))
    assert outputs.shape == (args.steps + 1, k * d)
    with measured("attribute"):
        explanation = propgrad.PropertyGradient(model, batch_size=args.encoder_batch).attribute(
            image, source=source, n_permutations=args.permutations
        )
    assert explanation.classes is not None
    with measured("aggregation"):
        aggregate_classes(
            model.class_grouping,
            explanation,
            PropertyAxis(periodic=True),
            test_settings(n_permutations=args.permutations),
        )
    c = explanation.classes
    print(
        f"  {int(explanation.significant.sum())} of {k * d} descriptors and {int(c.significant.sum())} of {k} "
        "classes significant"
    )


if __name__ == "__main__":
    main()
