"""The ``patch`` suite: a procedural analogue of the paper's skin-lesion experiment (Sec. 4.2).

Nevi (class 0, round, uniform brown) vs melanomas (class 1, irregular, multi-coloured) on skin.
As in the ISIC archive (Scope et al.), colourful patches co-occur with nevi: in the ``biased``
training split a fraction ``patch_fraction`` of the nevi carries a patch (the paper: 50%), in the
``unbiased`` split no image does. One ConvMixer per split.

The ``patch`` intervention (paper Appx. C) blends a HELD-OUT patch (drawn from a seed range
disjoint from the training patches) into a melanoma image with alpha rising from 0 to 1,
placed so that it does not touch the lesion — the same placement rule as in training, so the
final step is in distribution. The flip benchmark's test set holds melanomas without patches,
as in the paper ("100 melanoma test images"). The intervention's held-out realisation
(:meth:`PatchSuite.held_out_realisation`, for the harness's ``held_out`` flip definition) blends
another held-out patch in at another position.

Evaluation splits: ``unbiased`` (no patches), ``biased`` (drawn like the biased training split,
with held-out patches) and ``patched_melanoma`` (every melanoma patched, no nevus: the
correlation reversed).
"""

from __future__ import annotations

from typing import Any

import torch

from propgrad.core.validation import check_int
from propgrad.errors import InvalidParameterError
from propgrad.hookspecs import hookimpl
from propgrad.sources.alpha_patch import AlphaPatchSource
from propgrad.sources.base import InterventionSequence
from propgrad.suites.cached import CachedSuite
from propgrad.suites.fur import balanced_labels
from propgrad.suites.patch_scenes import draw_lesions, keep_out_zone, patch_bank

TRAIN_PATCH_SEEDS = 0
"""First seed of the training patches."""
HELD_OUT_PATCH_SEEDS = 1_000_000
"""First seed of the held-out patches (evaluation and interventions); disjoint from training."""


class PatchSuite(CachedSuite):
    """Lesion classification where colourful patches are a spurious cue for "nevus".

    Args:
        quick: 32 px images and small models; False: 48 px, larger models, 100 test melanomas.
        seed: Seed of data generation, training and interventions.
        cache_dir: Cache root (None: ``propgrad.core.cache.default_cache_dir()``).
        show_progress: Progress bars for data generation and training.
    """

    name = "patch"
    description = (
        "Procedural skin lesions (nevus vs melanoma); colourful patches co-occur with nevi "
        "in the biased training split; held-out patches blended into melanomas (paper Sec. 4.2)."
    )
    class_names = ("nevus", "melanoma")
    interventions = ("patch",)
    training_splits = ("unbiased", "biased")
    level_check_images = 1000
    """Fresh melanomas of the in-distribution check (:meth:`level_data`)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._banks: dict[bool, torch.Tensor] = {}

    def settings(self) -> dict[str, Any]:
        """Every setting that determines the data and the models."""
        sizes = (
            dict(image_size=32, train_images=3000, test_melanomas=40, eval_per_class=200)
            if self.quick
            else dict(image_size=48, train_images=8000, test_melanomas=100, eval_per_class=500)
        )
        return {
            **self.settings_base(),
            **sizes,
            "patch_fraction": 0.5,
            "patch_side_fraction": 0.28,
            "train_patches": 64,
            "held_out_patches": 16,
            "steps": 21,
        }

    def images_per_class(self) -> int:
        """25 melanomas per resample in quick mode, 100 (the paper) in full mode."""
        return 25 if self.quick else 100

    def patch_side(self) -> int:
        """Patch side in pixels."""
        s = self.settings()
        return max(2, round(s["patch_side_fraction"] * s["image_size"]))

    def bank(self, held_out: bool) -> torch.Tensor:
        """The training or the held-out patches (count, 4, side, side), drawn once per suite."""
        if held_out not in self._banks:
            s = self.settings()
            count, first_seed = (
                (s["held_out_patches"], HELD_OUT_PATCH_SEEDS) if held_out else (s["train_patches"], TRAIN_PATCH_SEEDS)
            )
            self._banks[held_out] = patch_bank(count, self.patch_side(), first_seed)
        return self._banks[held_out]

    def draw(
        self,
        labels: torch.Tensor,
        with_patch: torch.Tensor,
        purpose: str,
        held_out: bool,
        alpha: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Scenes for ``labels``; images where ``with_patch`` get a patch of the chosen bank."""
        return draw_lesions(
            labels,
            with_patch,
            self.bank(held_out),
            self.settings()["image_size"],
            self.generator(f"scenes/{purpose}"),
            alpha=alpha,
            show_progress=self.show_progress,
            desc=f"{self.name}: drawing {purpose}",
        )

    def level_data(self) -> dict[str, tuple[list[str], torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Fresh melanomas with a held-out patch at five opacities (the intervention's steps 0,
        1/4, ..., 1), for the in-distribution check; training showed fully opaque patches only."""
        alphas = torch.linspace(0.0, 1.0, 5)
        labels = torch.ones(self.level_check_images, dtype=torch.long)
        which = torch.arange(labels.shape[0]) % 5
        scenes = self.draw(
            labels, torch.ones_like(labels, dtype=torch.bool), "levels/patch", held_out=True, alpha=alphas[which]
        )
        return {"patch opacity": ([f"{a:.2f}" for a in alphas.tolist()], scenes["images"], labels, which)}

    def biased_patches(self, labels: torch.Tensor, purpose: str) -> torch.Tensor:
        """Which images of a biased split carry a patch: a ``patch_fraction`` of the nevi, no melanoma."""
        u = torch.rand(labels.shape[0], generator=self.generator(f"patched/{purpose}"))
        return (labels == 0) & (u < self.settings()["patch_fraction"])

    def training_data(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Training images and labels of ``unbiased`` (no patches) or ``biased``."""
        if split not in self.training_splits:
            raise InvalidParameterError(f"split must be one of {list(self.training_splits)}, got {split!r}")
        s = self.settings()
        labels = balanced_labels(s["train_images"] // 2, self.generator(f"labels/train/{split}"))
        patched = (
            self.biased_patches(labels, f"train/{split}")
            if split == "biased"
            else torch.zeros_like(labels, dtype=torch.bool)
        )
        scenes = self.draw(labels, patched, f"train/{split}", held_out=False)
        return scenes["images"], scenes["labels"]

    def make_test_data(self) -> dict[str, torch.Tensor]:
        """Melanomas without patches, with their lesion masks."""
        labels = torch.ones(self.settings()["test_melanomas"], dtype=torch.long)
        scenes = self.draw(labels, torch.zeros_like(labels, dtype=torch.bool), "test", held_out=True)
        return {k: scenes[k] for k in ("images", "labels", "masks")}

    def evaluation_data(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """``unbiased``, ``biased`` and ``patched_melanoma`` splits (held-out patches)."""
        per_class = self.settings()["eval_per_class"]
        out = {}
        for split in ("unbiased", "biased", "patched_melanoma"):
            labels = balanced_labels(per_class, self.generator(f"labels/eval/{split}"))
            if split == "unbiased":
                patched = torch.zeros_like(labels, dtype=torch.bool)
            elif split == "biased":
                patched = self.biased_patches(labels, f"eval/{split}")
            else:
                patched = labels == 1
            scenes = self.draw(labels, patched, f"eval/{split}", held_out=True)
            out[split] = (scenes["images"], scenes["labels"])
        return out

    def intervene(self, intervention: str, index: int) -> InterventionSequence:
        """Blend held-out patch ``index mod held_out_patches`` in, away from the lesion (alpha 0 -> 1)."""
        self._check_index(intervention, index)
        n = self.bank(held_out=True).shape[0]
        return self._blend(index, index % n, self._split_seed(f"intervene/{index}"))

    def held_out_sticker(self, index: int) -> int:
        """The held-out patch of :meth:`held_out_realisation` on test image ``index``.

        ``(index + 1 + j) mod n`` for ``n`` held-out patches and ``j`` drawn uniformly from
        ``0 .. n - 2`` (the random stream ``held_out/sticker/<index>``): uniform over every
        held-out patch except :meth:`intervene`'s ``index mod n``. With a single held-out patch
        there is no other one, and it is that patch.
        """
        return self._other_sticker(index, "held_out")

    def _other_sticker(self, index: int, stream: str) -> int:
        n = self.bank(held_out=True).shape[0]
        j = int(torch.randint(max(n - 1, 1), (1,), generator=self.generator(f"{stream}/sticker/{index}")))
        return (index + 1 + j) % n

    def held_out_realisation(self, intervention: str, index: int) -> InterventionSequence:
        """Another realisation of the patch intervention on test image ``index``: the same alphas
        (0 -> 1), another held-out patch (:meth:`held_out_sticker`, never :meth:`intervene`'s)
        at another position, drawn with the seed of ``held_out/<index>`` by the same rule (the
        patch's centre outside the lesion's keep-out zone).

        The property is "a colourful patch is blended in, up to alpha"; which of the held-out
        patches it is, and where it sits away from the lesion, are what the suite's generator
        draws at random without changing that property, so both are redrawn.
        """
        return self._redrawn(intervention, index, "held_out")

    def realisation(self, intervention: str, index: int, number: int) -> InterventionSequence:
        """Realisation ``number`` of the patch intervention on test image ``index``: 0 is
        :meth:`intervene`'s; 1, 2, ... draw another held-out patch (never :meth:`intervene`'s) and
        position as :meth:`held_out_realisation` does, from the streams ``realisation/<number>/...``."""
        if number == 0:
            return self.intervene(intervention, index)
        return self._redrawn(intervention, index, f"realisation/{check_int(number, 'number')}")

    def _redrawn(self, intervention: str, index: int, stream: str) -> InterventionSequence:
        """The patch intervention with the sticker and the position drawn from the random ``stream``."""
        self._check_index(intervention, index)
        sequence = self._blend(index, self._other_sticker(index, stream), self._split_seed(f"{stream}/{index}"))
        sequence.metadata["realisation"] = f"{stream}: another held-out patch at another position"
        return sequence

    def _blend(self, index: int, sticker: int, seed: int) -> InterventionSequence:
        """Held-out patch ``sticker`` blended into test image ``index`` at a position drawn from ``seed``."""
        data = self.test_data()
        patch = self.bank(held_out=True)[sticker]
        source = AlphaPatchSource(
            patch=patch,
            scale=None,
            steps=self.settings()["steps"],
            avoid=keep_out_zone(data["masks"][index], patch.shape[1]),
        )
        sequence = source.generate(data["images"][index], seed=seed)
        sequence.metadata["held_out_patch"] = int(sticker)
        return sequence


@hookimpl
def register_suites(register: Any) -> None:
    """Register :class:`PatchSuite`."""
    register(PatchSuite)
