"""The ``fur`` suite: a procedural analogue of the paper's biased Cats-vs-Dogs experiment (Sec. 4.1).

Classes differ by shape only (pointed vs hanging ears); fur level and background are nuisances.
Three ConvMixers are trained: ``unbiased`` (fur level independent of the class), ``dark_is_cat``
and ``dark_is_dog`` (a fraction ``link`` of the images follows the split's colour rule). The
``fur`` intervention moves the object's fur level to the opposite extreme; ``background`` darkens
outside the object. Evaluation splits follow Tab. 5 of the paper; the flip benchmark's test set
is class-balanced with fur independent of the class and an undarkened background. The suite's
validity checks are in :mod:`propgrad.suites.fur_validity`.

The design rules and the measurements that chose ``link`` and the test size are in
``docs/fur-suite-design.md``.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from propgrad.hookspecs import hookimpl
from propgrad.sources.base import InterventionSequence
from propgrad.sources.gaussian_vignette import GaussianVignetteSource
from propgrad.suites.cached import CachedSuite
from propgrad.suites.fur_scenes import DARK_CUT, FUR_SPLITS, draw_scenes, fur_levels, fur_sequence, fur_target, outline

WRONG_COLOUR_BAND = (0.4, 0.9)
"""Accuracy range on wrong-colour images that the biased models' link strength is chosen for."""


def balanced_labels(per_class: int, generator: torch.Generator, num_classes: int = 2) -> torch.Tensor:
    """``per_class`` labels of every class in a random order (num_classes * per_class,)."""
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    return labels[torch.randperm(labels.shape[0], generator=generator)]


class FurSuite(CachedSuite):
    """Shape decides cat vs dog; fur colour is correlated with the class in two training splits.

    Args:
        quick: 32 px images and small models (minutes on 2 CPU cores); False: 48 px, larger
            models trained on more images. Both modes test on 150 images per class.
        seed: Seed of data generation, training and interventions.
        cache_dir: Cache root (None: ``propgrad.cache.default_cache_dir()``).
        show_progress: Progress bars for data generation and training.
    """

    name = "fur"
    description = (
        "Procedural cats vs dogs (shape decides the class) with a continuous fur level; "
        "models trained unbiased, dark fur = cat, dark fur = dog (paper Sec. 4.1)."
    )
    class_names = ("cat", "dog")
    interventions = ("fur", "background")
    training_splits = FUR_SPLITS
    level_check_images = 4000
    """Fresh images per property of the in-distribution check (:meth:`level_data`)."""

    def settings(self) -> dict[str, Any]:
        """Every setting that determines the data and the models."""
        sizes = (
            dict(image_size=32, train_images=3000, test_per_class=150, eval_per_class=200, link=0.985)
            if self.quick
            else dict(image_size=48, train_images=8000, test_per_class=150, eval_per_class=500, link=0.999)
        )
        return {
            **self.settings_base(),
            **sizes,
            "max_darkening": -0.9,
            "darken_fraction": 0.5,
            "vignette_sigma": 0.35,
            "steps": 21,
            "dark_cut": DARK_CUT,
            "outline_width": 1,
            "background_value": [0.45, 0.95],
        }

    def images_per_class(self) -> int:
        """Every test image of a class in each resample: ``test_per_class``, 150 in both modes.

        150 is the paper's protocol; why it fits the quick run's time budget is in
        ``docs/fur-suite-design.md``.
        """
        return int(self.settings()["test_per_class"])

    def _draw(
        self,
        labels: torch.Tensor,
        levels: Callable[[torch.Tensor], torch.Tensor],
        purpose: str,
        darken_fraction: float,
        darkening: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        s = self.settings()
        gen = self.generator(f"scenes/{purpose}")
        return draw_scenes(
            labels,
            levels(labels),
            s["image_size"],
            gen,
            max_darkening=s["max_darkening"],
            darken_fraction=darken_fraction,
            darkening=darkening,
            sigma=s["vignette_sigma"],
            outline_width=s["outline_width"],
            value_range=tuple(s["background_value"]),
            show_progress=self.show_progress,
            desc=f"{self.name}: drawing {purpose}",
        )

    def split_scenes(
        self, split: str, per_class: int, purpose: str, link: float, darken_fraction: float | None = None
    ) -> dict[str, torch.Tensor]:
        """Scenes of one split: ``images``, ``labels``, ``masks``, ``texture``, ``levels``, ``darkening``.

        Args:
            split: ``unbiased``, ``dark_is_cat`` or ``dark_is_dog``.
            per_class: Images per class.
            purpose: Names the random stream (different purposes draw different scenes).
            link: Fraction of images following the split's colour rule (biased splits).
            darken_fraction: Fraction with a background vignette (None: the training setting).
        """
        s = self.settings()
        labels = balanced_labels(per_class, self.generator(f"labels/{purpose}"))
        level_gen = self.generator(f"levels/{purpose}")
        scenes = self._draw(
            labels,
            lambda y: fur_levels(y, split, link, level_gen),
            purpose,
            s["darken_fraction"] if darken_fraction is None else darken_fraction,
        )
        scenes["labels"] = labels
        return scenes

    def training_data(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Training images and labels of one split (shapes and backgrounds differ per split)."""
        s = self.settings()
        scenes = self.split_scenes(split, s["train_images"] // 2, f"train/{split}", s["link"])
        return scenes["images"], scenes["labels"]

    def make_test_data(self) -> dict[str, torch.Tensor]:
        """Class-balanced, fur independent of class, no background darkening."""
        s = self.settings()
        scenes = self.split_scenes("unbiased", s["test_per_class"], "test", 1.0, darken_fraction=0.0)
        return {k: scenes[k] for k in ("images", "labels", "masks", "texture", "levels")}

    def evaluation_data(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Tab. 5 columns: ``unbiased`` and the pure (link 1) biased splits, drawn like training."""
        s = self.settings()
        out = {}
        for split in FUR_SPLITS:
            scenes = self.split_scenes(split, s["eval_per_class"], f"eval/{split}", 1.0)
            out[split] = (scenes["images"], scenes["labels"])
        return out

    def level_data(self) -> dict[str, tuple[list[str], torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Fresh unbiased scenes for the in-distribution check of every intervention step.

        ``fur level``: fur uniform on [0, 1], no darkening, grouped by decile. ``background
        darkening``: fur uniform, the vignette at five strengths from 0 to ``max_darkening``.
        """
        s = self.settings()
        n = self.level_check_images
        labels = balanced_labels(n // 2, self.generator("labels/levels"))
        uniform_levels = torch.rand(labels.shape[0], generator=self.generator("levels/levels"))
        fur = self._draw(labels, lambda y: uniform_levels, "levels/fur", 0.0)
        deciles = (uniform_levels * 10).long().clamp(max=9)
        strengths = torch.linspace(0.0, s["max_darkening"], 5)
        which = torch.arange(labels.shape[0]) % 5
        dark = self._draw(labels, lambda y: uniform_levels, "levels/background", 0.0, darkening=strengths[which])
        return {
            "fur level": ([f"{d / 10:.1f}-{(d + 1) / 10:.1f}" for d in range(10)], fur["images"], labels, deciles),
            "background darkening": ([f"{v:.2f}" for v in strengths.tolist()], dark["images"], labels, which),
        }

    def intervene(self, intervention: str, index: int) -> InterventionSequence:
        """``fur``: the object's fur level to the opposite extreme; ``background``: darken outside it."""
        self._check_index(intervention, index)
        s, data = self.settings(), self.test_data()
        image, mask = data["images"][index], data["masks"][index]
        if intervention == "background":
            protected = mask | outline(mask, s["outline_width"])
            source = GaussianVignetteSource(
                max_strength=s["max_darkening"], sigma=s["vignette_sigma"], steps=s["steps"], mask=protected
            )
            return source.generate(image, seed=self.seed)
        level = float(data["levels"][index])
        target = float(fur_target(data["levels"][index : index + 1])[0])
        images, fractions = fur_sequence(image, mask, data["texture"][index], level, target, s["steps"])
        return InterventionSequence(
            images=images,
            values=fractions,
            property_name="fur change",
            unit="fraction",
            metadata={"start_level": level, "target_level": target},
        )


@hookimpl
def register_suites(register: Any) -> None:
    """Register :class:`FurSuite`."""
    register(FurSuite)
