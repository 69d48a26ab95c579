"""Calibration of the default size-aware test: under an exact null it rejects at most alpha of the time.

The null is built so that the real intervention is exchangeable with its placebos: the "real"
sequence is itself a placebo of a base intervention (a smooth random direction whose every step
changes the image as much as the base's step), so it and the M placebos drawn for it are draws
of one construction. Whatever the model, ``P(p < alpha) <= alpha`` must then hold; with the
p-values ``(b + 1) / (M + 1)`` and Besag-Clifford's ``h / L`` the rejection rate is exactly
``floor-ish(alpha (M + 1)) / (M + 1)``, below alpha. The test runs the whole default road
(:meth:`PropertyGradient.attribute`: drawing, batched rounds, sequential stopping, the decision
rule) on 2000 images and checks the rate against alpha plus two binomial standard deviations.
With ``p = b / (M + 1)`` (the "+ 1" dropped) the rate at M = 9, alpha = 0.25 would be 0.3 and the
test fails; so it would with ``h / (L + 1)`` replaced by a p-value that ignores the stop.
"""

from __future__ import annotations

import math

import pytest
import torch

from propgrad import PropertyGradient
from propgrad.sources.base import InterventionSequence, InterventionSource
from propgrad.sources.placebo_sequences import PlaceboPool, placebo_draw
from propgrad.stats.settings import test_settings

SIZE, STEPS, IMAGES, ROUNDS = 12, 9, 200, 10


class ExchangeableDirection(InterventionSource):
    """A placebo of a base intervention (the image fading to grey), seeded by the seed and the image."""

    name = "exchangeable_direction"
    property_name = "direction"
    unit = "step"

    def generate(self, image: torch.Tensor, *, seed: int = 0, show_progress: bool = False) -> InterventionSequence:
        values = torch.arange(float(STEPS))
        base = torch.stack([image + (0.5 - image) * 0.04 * s for s in range(STEPS)])
        base_sequence = InterventionSequence(base, values, "fade", "step")
        own = (seed * 1_000_003 + int(image.sum() * 1e6)) % 2**62
        real = PlaceboPool(base_sequence, placebo_draw(1, seed=own)).images(0, 1)[0]
        return InterventionSequence(real, values, self.property_name, self.unit)


def _model() -> torch.nn.Module:
    torch.manual_seed(7)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 6, 3),
        torch.nn.Tanh(),
        torch.nn.Conv2d(6, 6, 3),
        torch.nn.Tanh(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(6, 2),
    )
    return net.eval()


def _rejections(alpha: float, n_placebos: int) -> tuple[int, int, int]:
    """(rejections, tests, placebos drawn) over ROUNDS batches of IMAGES random images."""
    explainer = PropertyGradient(_model(), batch_size=512)
    generator = torch.Generator().manual_seed(11)
    rejected = tests = drawn = 0
    for r in range(ROUNDS):
        images = 0.2 + 0.6 * torch.rand(IMAGES, 3, SIZE, SIZE, generator=generator)
        settings = test_settings(n_permutations=9, alpha=alpha, seed=r, n_placebos=n_placebos)
        with torch.no_grad():
            explanations = explainer.attribute(images, ExchangeableDirection(), target=0, settings=settings)
        rejected += sum(bool(e.verdict) for e in explanations)
        drawn += sum(e.placebo.n_drawn for e in explanations)
        tests += len(explanations)
    return rejected, tests, drawn


@pytest.mark.slow  # about 40 s of CPU: 2000 explanations with their placebos
def test_the_default_size_aware_test_rejects_an_exchangeable_null_at_most_alpha_of_the_time() -> None:
    alpha, m = 0.25, 9
    rejected, n, drawn = _rejections(alpha, m)
    limit = alpha + 2 * math.sqrt(alpha * (1 - alpha) / n)
    assert rejected / n <= limit, f"{rejected}/{n} = {rejected / n:.3f} rejected, more than {limit:.3f}"
    # exact under exchangeability: p < 0.25 needs b <= 1 of 9 placebos at least the observed, 2 / 10 of the ranks
    assert abs(rejected / n - 0.2) <= 3 * math.sqrt(0.2 * 0.8 / n)
    assert drawn < n * m  # the sequential test stopped early on some images
