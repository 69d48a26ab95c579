"""The ``fur`` suite: a procedural analogue of the paper's biased Cats-vs-Dogs experiment (Sec. 4.1).

Classes differ by shape only (pointed vs hanging ears); fur level and background are nuisances.
Three ConvMixers are trained: ``unbiased`` (fur level independent of the class), ``dark_is_cat``
and ``dark_is_dog`` (a fraction ``link`` of the images follows the split's colour rule). The
``fur`` intervention moves the object's fur level to the opposite extreme; ``background`` darkens
outside the object; ``background_equal_size`` darkens it as much as that image's fur intervention
changes the image (score only, informational). Every intervention has a held-out realisation
(:meth:`FurSuite.held_out_realisation`). Evaluation splits follow Tab. 5 of the paper; the flip
benchmark's test set is class-balanced with fur independent of the class and an undarkened
background. The suite's validity checks (:meth:`FurSuite.validity_checks`) are in
:mod:`propgrad.suites.fur_validity`.

The design rules and the measurements that chose ``link`` and the test size are in
``docs/fur-suite-design.md``.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import torch

from propgrad.core.validation import check_int
from propgrad.hookspecs import hookimpl
from propgrad.sources.base import InterventionSequence
from propgrad.sources.gaussian_vignette import GaussianVignetteSource
from propgrad.suites.cached import CachedSuite
from propgrad.suites.fur_scenes import (
    DARK_CUT,
    FUR_SPLITS,
    MATCH_REL_TOL,
    DarkeningDraw,
    SceneStyle,
    draw_scenes,
    fur_levels,
    fur_sequence,
    fur_target,
    matched_vignette_strength,
    outline,
    redrawn_fur_texture,
)
from propgrad.suites.fur_validity import FUR_THRESHOLDS, equal_size_lines, fur_checks
from propgrad.suites.validity import Check

WRONG_COLOUR_BAND = (0.4, 0.9)
"""Accuracy range on wrong-colour images that the biased models' link strength is chosen for."""

HELD_OUT_CENTRE_RANGE = (0.4, 0.6)
"""Range of each coordinate (y, x) of the vignette's centre in the background interventions'
held-out realisations (the image's fractions; :meth:`FurSuite.intervene` uses 0.5)."""


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
        cache_dir: Cache root (None: ``propgrad.core.cache.default_cache_dir()``).
        show_progress: Progress bars for data generation and training.
    """

    name = "fur"
    description = (
        "Procedural cats vs dogs (shape decides the class) with a continuous fur level; "
        "models trained unbiased, dark fur = cat, dark fur = dog (paper Sec. 4.1)."
    )
    class_names = ("cat", "dog")
    interventions = ("fur", "background", "background_equal_size")
    score_only_interventions = ("background_equal_size",)
    training_splits = FUR_SPLITS
    level_check_images = 4000
    """Fresh images per property of the in-distribution check (:meth:`level_data`)."""
    validity_thresholds = FUR_THRESHOLDS

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

    @classmethod
    def _validity_checks(cls, results: Mapping[str, Any], thresholds: Mapping[str, float]) -> list[Check]:
        """The fur suite's checks (:func:`propgrad.suites.fur_validity.fur_checks`)."""
        return fur_checks(results, suite=cls.name, **thresholds)

    @classmethod
    def validity_notes(cls, results: Mapping[str, Any]) -> list[str]:
        """The equal-size background's score table (:func:`propgrad.suites.fur_validity.equal_size_lines`)."""
        return equal_size_lines(results, suite=cls.name)

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
        style = SceneStyle(s["image_size"], s["vignette_sigma"], s["outline_width"], tuple(s["background_value"]))
        return draw_scenes(
            labels,
            levels(labels),
            style,
            gen,
            DarkeningDraw(s["max_darkening"], darken_fraction) if darkening is None else darkening,
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
            # the strengths' magnitudes, as the gaussian_vignette source reports them; the row says "darkening"
            "background darkening": ([f"{abs(v):.2f}" for v in strengths.tolist()], dark["images"], labels, which),
        }

    def intervene(self, intervention: str, index: int) -> InterventionSequence:
        """``fur``: the object's fur level to the opposite extreme; ``background``: darken outside
        it; ``background_equal_size``: the same darkening, at the strength whose pixel change
        equals this image's fur intervention's (:meth:`equal_size_strength`)."""
        self._check_index(intervention, index)
        if intervention == "fur":
            return self._fur(index)
        if intervention == "background":
            return self._vignette(index, self.settings()["max_darkening"])
        strength, capped, target = self.equal_size_strength(index)
        return self._equal_size(index, strength, capped, target)

    def held_out_realisation(self, intervention: str, index: int) -> InterventionSequence:
        """Another realisation of the intervention on test image ``index``: the same property path,
        another draw of what the scene's generator varies without changing the property.

        - ``fur``: the same fur levels at every step (start level to target level), with the fur
          TEXTURE redrawn. The texture is the only random part of the fur that is not its level:
          the scenes draw it per image (``texture(1, size, gen, smooth=0.15, grain=0.15)``,
          :func:`~propgrad.suites.fur_scenes.redrawn_fur_texture`) and it multiplies the level's
          colour, so another draw leaves the level of every pixel's colour as it was. It is
          dissolved in pixel by pixel (a seeded uniform threshold per pixel; at the step of
          fraction ``f`` the pixels below ``f`` have the new texture), so step 0 is the original
          image exactly and the last step has the new texture everywhere; the mask, outline and
          background stay as drawn, since they carry the class or another property.
        - ``background`` and ``background_equal_size``: the same strengths (the equal-size one
          keeps the strength matched at the centred Gaussian, so the values are the same), with
          the Gaussian's centre moved to (y, x) uniform in :data:`HELD_OUT_CENTRE_RANGE` squared,
          one centre per image shared by both. The property is how strongly the background is
          darkened; where the darkening is centred is not that property, and a centre near the
          middle still darkens towards the edges. The width stays (it sets how much of the
          background a strength darkens), and the object and its outline stay protected. The
          pixel change shifts a little with the centre, since other pixels darken; the training
          vignettes were all centred, so the moved ones are near, not inside, their distribution.

        Each draw comes from the random stream ``held_out/<intervention>/<index>`` (the centre's
        from ``held_out/background/<index>``), never used by :meth:`intervene` or :meth:`realisation`.
        """
        return self._redrawn(intervention, index, "held_out")

    def realisation(self, intervention: str, index: int, number: int) -> InterventionSequence:
        """Realisation ``number`` of the intervention on test image ``index``: 0 is :meth:`intervene`'s;
        1, 2, ... redraw what :meth:`held_out_realisation` redraws (fur texture, vignette centre),
        from the random streams ``realisation/<number>/...``, so none is the held-out one."""
        if number == 0:
            return self.intervene(intervention, index)
        return self._redrawn(intervention, index, f"realisation/{check_int(number, 'number')}")

    def _redrawn(self, intervention: str, index: int, stream: str) -> InterventionSequence:
        """The intervention with its texture or vignette centre drawn from the random ``stream``."""
        self._check_index(intervention, index)
        if intervention == "fur":
            tex, dissolve = redrawn_fur_texture(self.settings()["image_size"], self.generator(f"{stream}/fur/{index}"))
            sequence = self._fur(index, texture_to=tex, dissolve=dissolve)
            sequence.metadata["realisation"] = f"{stream}: fur texture redrawn, dissolved in pixel by pixel"
            return sequence
        centre = self._centre(index, stream)
        if intervention == "background":
            sequence = self._vignette(index, self.settings()["max_darkening"], centre)
        else:
            sequence = self._equal_size(index, *self.equal_size_strength(index), centre)
        sequence.metadata["realisation"] = f"{stream}: vignette centre moved"
        return sequence

    def held_out_centre(self, index: int) -> tuple[float, float]:
        """The vignette's (y, x) centre in the background held-out realisations of image ``index``."""
        return self._centre(index, "held_out")

    def _centre(self, index: int, stream: str) -> tuple[float, float]:
        low, high = HELD_OUT_CENTRE_RANGE
        y, x = (low + (high - low) * torch.rand(2, generator=self.generator(f"{stream}/background/{index}"))).tolist()
        return (y, x)

    def equal_size_strength(self, index: int) -> tuple[float, bool, float]:
        """The ``background_equal_size`` strength of test image ``index``, from the images alone.

        A bisection (:func:`~propgrad.suites.fur_scenes.matched_vignette_strength`) finds the
        darkening strength in [-1, 0) at which the masked, centred vignette's pixel change equals
        the fur intervention's on this image, within a relative :data:`MATCH_REL_TOL`; capped at
        -1 when even that changes the image less.

        Returns:
            ``(strength, capped, target)``: the strength, whether it is capped, and the fur
            intervention's pixel change that it matches.
        """
        s = self.settings()
        target = self._fur(index).pixel_change()
        strength, capped = matched_vignette_strength(
            self.test_data()["images"][index],
            self._protected(index),
            target,
            sigma=s["vignette_sigma"],
        )
        return strength, capped, target

    def _protected(self, index: int) -> torch.Tensor:
        """The pixels every background intervention keeps: the object and its outline."""
        mask = self.test_data()["masks"][index]
        return mask | outline(mask, self.settings()["outline_width"])

    def _vignette(self, index: int, strength: float, centre: tuple[float, float] | None = None) -> InterventionSequence:
        s = self.settings()
        source = GaussianVignetteSource(
            max_strength=strength,
            sigma=s["vignette_sigma"],
            steps=s["steps"],
            center=centre,
            mask=self._protected(index),
        )
        return source.generate(self.test_data()["images"][index], seed=self.seed)

    def _equal_size(
        self, index: int, strength: float, capped: bool, target: float, centre: tuple[float, float] | None = None
    ) -> InterventionSequence:
        sequence = self._vignette(index, strength, centre)
        sequence.metadata.update(
            {"max_strength": strength, "capped": capped, "target_pixel_change": target, "rel_tol": MATCH_REL_TOL}
        )
        return sequence

    def _fur(
        self, index: int, *, texture_to: torch.Tensor | None = None, dissolve: torch.Tensor | None = None
    ) -> InterventionSequence:
        data = self.test_data()
        level = float(data["levels"][index])
        target = float(fur_target(data["levels"][index : index + 1])[0])
        images, fractions = fur_sequence(
            data["images"][index],
            data["masks"][index],
            data["texture"][index],
            level,
            target,
            self.settings()["steps"],
            texture_to=texture_to,
            dissolve=dissolve,
        )
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
