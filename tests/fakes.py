"""Fakes shared by the tests: tiny suites, models, sources and baselines whose answers are known.

Every fake that more than one test module uses lives here, once (a test module imports from here,
never from another test module; ``tests/project/test_test_imports.py`` holds that):

- :class:`BrightnessModel`: logits (bright, dark) from an image's mean brightness against a cut;
- :class:`DarkeningSuite`: uniform grey images (:data:`BRIGHTNESS`) darkened gradually to a final
  factor per image (:data:`FINAL_FACTOR`), judged by one brightness model per cut (:data:`CUTS`),
  so whether and where each prediction flips follows from arithmetic; with
  :func:`darkening_settings` and the :class:`ImageMap` baseline (the map is the image itself);
- :class:`GreySuite`: a smaller grey suite whose sizes, interventions and models a subclass sets
  (the resume tests' suites);
- :class:`Brighten`: a source that brightens the whole image over a number of steps.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from propgrad.baselines.base import AttributionBaseline
from propgrad.harness import BenchmarkSettings
from propgrad.sources.base import InterventionSequence, InterventionSource
from propgrad.suites.base import BenchmarkSuite

BRIGHTNESS = [0.9, 0.8, 0.75, 0.7, 0.65, 0.6, 0.2, 0.3, 0.33, 0.4, 0.45, 0.25]
"""The grey level of each image of :class:`DarkeningSuite` (class 1, "dark", below 0.5)."""
FINAL_FACTOR = [0.3, 0.9, 0.5, 0.95, 0.6, 0.95, 0.5, 0.6, 0.7, 0.7, 0.9, 0.4]
"""The factor each image of :class:`DarkeningSuite` is darkened to at the last step."""
CUTS = {"cut50": 0.5, "cut35": 0.35}
"""The models of :class:`DarkeningSuite` by name: the brightness below which each says "dark"."""
N_STEPS = 9
"""Steps of a :class:`DarkeningSuite` sequence."""


class BrightnessModel(nn.Module):
    """Logits of (bright, dark) from mean brightness against a cut; counts the images it has seen.

    Args:
        cut: The mean brightness at which the two logits are equal.
        scale: How steeply the logits move with brightness (a parameter, so it is in the weights).
        batch_weight: Weight of the whole batch's mean in every logit: nonzero makes the outputs
            depend on which images share a batch, as float rounding of batched kernels does.
    """

    def __init__(self, cut: float, scale: float = 10.0, batch_weight: float = 0.0) -> None:
        super().__init__()
        self.cut = cut
        self.scale = nn.Parameter(torch.tensor(scale))
        self.batch_weight = batch_weight
        self.images_seen = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.images_seen += x.shape[0]
        z = self.scale * (x.mean(dim=(1, 2, 3)) - self.cut)
        if self.batch_weight:
            z = z + self.batch_weight * x.mean()
        return torch.stack([z, -z], dim=1)


class DarkeningSuite(BenchmarkSuite):
    """Uniform grey images darkened to :data:`FINAL_FACTOR`; counts its :meth:`intervene` calls."""

    name = "darkening"
    class_names = ("bright", "dark")
    interventions = ("darken",)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._models = {name: BrightnessModel(cut).eval() for name, cut in CUTS.items()}
        self.intervene_calls = 0

    def settings(self) -> dict[str, Any]:
        return {"brightness": BRIGHTNESS, "final_factor": FINAL_FACTOR, "steps": N_STEPS}

    def models(self) -> dict[str, nn.Module]:
        return self._models

    def test_set(self) -> tuple[torch.Tensor, torch.Tensor]:
        b = torch.tensor(BRIGHTNESS)
        return b[:, None, None, None].expand(-1, 3, 6, 6).clone(), (b < 0.5).long()

    def intervene(self, intervention: str, index: int) -> InterventionSequence:
        self.intervene_calls += 1
        factors = torch.linspace(1.0, FINAL_FACTOR[index], N_STEPS)
        images = self.test_set()[0][index][None] * factors[:, None, None, None]
        return InterventionSequence(images, torch.arange(N_STEPS, dtype=torch.float32), "darkness", "step")

    def accuracy_table(self) -> dict[str, dict[str, float]]:
        return {name: {"test": 1.0} for name in self._models}

    def level_accuracy(self) -> dict[str, dict[str, Any]]:
        # What each model would score, computed without calling it (a finished run calls no model).
        b, labels = torch.tensor(BRIGHTNESS), self.test_set()[1]
        factors = [1.0, 0.5]

        def acc(cut: float, f: float, cls: int | None = None) -> float:
            keep = labels == cls if cls is not None else torch.ones_like(labels, dtype=torch.bool)
            return float(((b * f < cut).long() == labels)[keep].float().mean())

        return {
            "darkening factor": {
                "levels": [str(f) for f in factors],
                "accuracy": {name: [acc(cut, f) for f in factors] for name, cut in CUTS.items()},
                "class_accuracy": {
                    name: {c: [acc(cut, f, i) for f in factors] for i, c in enumerate(self.class_names)}
                    for name, cut in CUTS.items()
                },
            }
        }

    def images_per_class(self) -> int:
        return 4


class ImageMap(AttributionBaseline):
    """The map is the image itself, so the change score is the mean squared image change.

    Args:
        interrupt_after: Raise ``KeyboardInterrupt`` at this call (None: never), as a stopped run would.
    """

    name = "image_map"

    def __init__(self, interrupt_after: int | None = None) -> None:
        self.calls = 0
        self.interrupt_after = interrupt_after

    def attribute(self, model: nn.Module, images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.interrupt_after is not None and self.calls >= self.interrupt_after:
            raise KeyboardInterrupt
        self.calls += 1
        assert images.shape[0] == target.shape[0]
        return images.clone()


def darkening_settings(**overrides: Any) -> BenchmarkSettings:
    """Benchmark settings for :class:`DarkeningSuite` with :class:`ImageMap`, small and quick; ``overrides`` win."""
    base: dict[str, Any] = dict(
        suites=("darkening",),
        n_permutations=200,
        n_placebos=0,
        baselines=("image_map",),
        n_resamples=5,
        chunk_size=5,
    )
    base.update(overrides)
    return BenchmarkSettings(**base)


class GreySuite(BenchmarkSuite):
    """Uniform grey images (:attr:`greys`, 4x4 pixels) that each intervention scales linearly over
    :attr:`steps` steps to its factor in :attr:`final_factors`; one :class:`BrightnessModel` per cut.

    A subclass changes the class attributes; :attr:`scales` sets a model's ``scale`` (its weights),
    :attr:`batch_weight` makes every model batch-sensitive.
    """

    name = "grey"
    class_names = ("bright", "dark")
    interventions: ClassVar[tuple[str, ...]] = ("darken",)
    greys: ClassVar[tuple[float, ...]] = (0.9, 0.7, 0.6, 0.4, 0.3, 0.1)
    cuts: ClassVar[dict[str, float]] = {"cut50": 0.5, "cut35": 0.35}
    scales: ClassVar[dict[str, float]] = {}
    batch_weight: ClassVar[float] = 0.0
    steps: ClassVar[int] = 6
    final_factors: ClassVar[dict[str, float]] = {"darken": 0.4}
    per_class: ClassVar[int] = 3

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._models = {
            name: BrightnessModel(cut, self.scales.get(name, 10.0), self.batch_weight).eval()
            for name, cut in self.cuts.items()
        }

    def settings(self) -> dict[str, Any]:
        return {"greys": list(self.greys)}

    def models(self) -> dict[str, nn.Module]:
        return self._models

    def test_set(self) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.tensor(self.greys)
        return g[:, None, None, None].expand(-1, 3, 4, 4).clone(), (g < 0.5).long()

    def intervene(self, intervention: str, index: int) -> InterventionSequence:
        factors = torch.linspace(1.0, self.final_factors[intervention], self.steps)
        images = (self.test_set()[0][index][None] * factors[:, None, None, None]).clamp(0, 1)
        return InterventionSequence(images, torch.arange(self.steps, dtype=torch.float32), "darkness", "step")

    def accuracy_table(self) -> dict[str, dict[str, float]]:
        return {name: {"test": 1.0} for name in self.cuts}

    def images_per_class(self) -> int:
        return self.per_class


class Brighten(InterventionSource):
    """Adds 0 to 0.9 to every pixel (of the image times 0.1) over ``steps`` steps: moves a
    brightness model across its threshold. Counts its sequences in the class attribute ``calls``.

    Args:
        steps: Length of the sequence.
    """

    name = "brighten_test"
    description = "brighten for tests"
    property_name = "brightness"
    unit = "step"
    calls: ClassVar[int] = 0

    def __init__(self, steps: int = 9) -> None:
        self.steps = steps

    def _generate(self, image: torch.Tensor, *, seed: int, show_progress: bool) -> InterventionSequence:
        Brighten.calls += 1
        shift = torch.linspace(0.0, 0.9, self.steps, device=image.device, dtype=image.dtype)
        images = (image[None] * 0.1 + shift[:, None, None, None]).clamp(0, 1)
        return InterventionSequence(images, torch.arange(self.steps, dtype=torch.float32), "brightness", "step")
