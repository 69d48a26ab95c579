"""A benchmark suite whose data are generated and whose models are trained once, then cached.

Everything lives in ``<cache_dir>/suites/<name>/<key>/`` with ``key = cache_key(name,
settings(), CODE_VERSION)``: ``test.pt`` (the test set and what the interventions need),
``model_<split>.pt`` (one ``state_dict`` per training split, loadable with
``weights_only=True``), ``accuracy.json``, ``level_accuracy-2.json`` and ``settings.json``. Every
file is written atomically, so an interrupted run leaves no half-written entry; the ``.pt``
files have their SHA-256 beside them (``*.pt.sha256``), and an entry that is damaged later
(truncated, edited, unreadable) is rebuilt with a :class:`~propgrad.core.cache.CacheRebuildWarning`
saying which file and why. Training gives the same bits whatever torch's thread count
(:func:`~propgrad.suites.training.train_classifier`), so a retrained model equals the lost one on
the same platform and torch version; the benchmark's cell store still keys cells by each model's
weights hash, and its reports show that hash, so runs on other models are told apart.
"""

from __future__ import annotations

import json
import time
import warnings
from abc import abstractmethod
from pathlib import Path
from typing import Any, Callable, ClassVar

import torch
from torch import nn

from propgrad.core.atomic_files import write_json
from propgrad.core.cache import CacheRebuildWarning, cache_key, default_cache_dir, load_tensors_checked, save_tensors
from propgrad.core.validation import check_int
from propgrad.errors import InvalidParameterError
from propgrad.suites.base import BenchmarkSuite
from propgrad.suites.training import (
    TrainingConfig,
    accuracy,
    group_accuracy,
    load_classifier,
    predict,
    train_classifier,
)

CODE_VERSION = "suites-3"
"""Bumped whenever a change to the drawing or training code changes the cached data or models
(suites-3: training on one thread, so the weights no longer depend on ``--threads``)."""
LEVEL_ACCURACY_FILE = "level_accuracy-2.json"
"""The cached accuracy per property level (version 2: the fur suite's background darkening levels are
the vignette strengths' magnitudes, 0 to 0.9, as everywhere else; the models are unchanged)."""


class CachedSuite(BenchmarkSuite):
    """Base of the built-in suites: lazy, cached data generation and training.

    Subclasses define ``training_splits`` (one model each), :meth:`settings`,
    :meth:`training_data`, :meth:`make_test_data` and :meth:`evaluation_data`, and may override
    :meth:`training_config`. ``training_seconds`` records the wall time of every model trained
    by this instance (empty when every model came from the cache).
    """

    training_splits: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self, *, quick: bool = True, seed: int = 0, cache_dir: Path | None = None, show_progress: bool = False
    ) -> None:
        if not isinstance(quick, bool):
            raise InvalidParameterError(f"quick must be a bool, got {type(quick).__name__}")
        seed = check_int(seed, "seed", minimum=0)
        if cache_dir is not None and not isinstance(cache_dir, (str, Path)):
            raise InvalidParameterError(f"cache_dir must be None or a path, got {type(cache_dir).__name__}")
        super().__init__(
            quick=quick,
            seed=seed,
            cache_dir=None if cache_dir is None else Path(cache_dir),
            show_progress=show_progress,
        )
        self._models: dict[str, nn.Module] | None = None
        self._test: dict[str, torch.Tensor] | None = None
        self._accuracy: dict[str, dict[str, float]] | None = None
        self._level_accuracy: dict[str, dict[str, Any]] | None = None
        self.training_seconds: dict[str, float] = {}

    # -- what subclasses provide -------------------------------------------------------------
    def training_config(self) -> TrainingConfig:
        """Architecture and optimisation of every model: quick, a ConvMixer of dim 48 and depth 4
        trained 10 epochs (~15 s per model on 2 idle cores); full, dim 64, depth 5, 15 epochs."""
        if self.quick:
            return TrainingConfig(epochs=10, batch_size=64, lr=4e-3, dim=48, depth=4, kernel_size=5, patch_size=4)
        return TrainingConfig(epochs=15, batch_size=64, lr=3e-3, dim=64, depth=5, kernel_size=5, patch_size=4)

    @abstractmethod
    def training_data(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Training images (N, 3, H, W) in [0, 1] and labels (N,) of one training split."""

    @abstractmethod
    def make_test_data(self) -> dict[str, torch.Tensor]:
        """The test set: ``images``, ``labels`` and whatever :meth:`intervene` needs."""

    @abstractmethod
    def evaluation_data(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Evaluation splits of :meth:`accuracy_table` by name: (images, labels)."""

    # -- cache -------------------------------------------------------------------------------
    @property
    def cache_key(self) -> str:
        """The key of this suite's cache entry (name, settings, code version)."""
        return cache_key(self.name, self.settings(), CODE_VERSION)

    @property
    def cache_path(self) -> Path:
        """The folder holding this suite's cached data and models."""
        root = self.cache_dir if self.cache_dir is not None else default_cache_dir()
        return Path(root) / "suites" / self.name / self.cache_key

    def _load_entry(self, filename: str, rebuild: str) -> dict[str, torch.Tensor] | None:
        """A cached tensor file, or None (missing, or damaged: then warn that it is rebuilt and why)."""
        path = self.cache_path / filename
        loaded = load_tensors_checked(path)
        if loaded.problem is not None:
            warnings.warn(
                f"{self.name}: the cached {path} is unusable: {loaded.problem}; {rebuild} it",
                CacheRebuildWarning,
                stacklevel=3,
            )
        return loaded.tensors

    def _write_settings(self) -> None:
        path = self.cache_path / "settings.json"
        if not path.exists():
            write_json(path, {"suite": self.name, "code_version": CODE_VERSION, "settings": self.settings()})

    # -- the BenchmarkSuite interface --------------------------------------------------------
    def models(self) -> dict[str, nn.Module]:
        """One trained model per training split (trained and cached on first use), eval mode."""
        if self._models is None:
            config = self.training_config()
            models = {}
            for split in self.training_splits:
                path = self.cache_path / f"model_{split}.pt"
                state = self._load_entry(path.name, "retraining")
                if state is None:
                    images, labels = self.training_data(split)
                    start = time.perf_counter()
                    model = train_classifier(
                        images,
                        labels,
                        config,
                        seed=self._split_seed(f"train/{split}"),
                        num_classes=len(self.class_names),
                        progress=f"{self.name}: train {split}" if self.show_progress else None,
                    )
                    self.training_seconds[split] = time.perf_counter() - start
                    save_tensors(path, model.state_dict())
                    self._write_settings()
                    models[split] = model
                else:
                    models[split] = load_classifier(state, config, len(self.class_names))
            self._models = models
        return self._models

    def test_data(self) -> dict[str, torch.Tensor]:
        """The cached test data (``images``, ``labels`` and intervention inputs)."""
        if self._test is None:
            path = self.cache_path / "test.pt"
            data = self._load_entry(path.name, "regenerating")
            if data is None:
                data = self.make_test_data()
                save_tensors(path, data)
                self._write_settings()
            self._test = data
        return self._test

    def test_set(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The flip benchmark's test images (M, 3, H, W) in [0, 1] and labels (M,)."""
        data = self.test_data()
        return data["images"], data["labels"]

    def _check_index(self, intervention: str, index: int) -> None:
        if intervention not in self.interventions:
            raise InvalidParameterError(f"intervention must be one of {list(self.interventions)}, got {intervention!r}")
        n = int(self.test_data()["labels"].shape[0])
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < n:
            raise InvalidParameterError(f"index must be an integer in [0, {n}), got {index!r}")

    def _cached_json(
        self, filename: str, compute: Callable[[], dict[str, Any]], valid: Callable[[dict[str, Any]], bool]
    ) -> dict[str, Any]:
        """``filename`` in the cache entry if it exists and ``valid`` accepts it, else ``compute()``
        written there atomically."""
        path = self.cache_path / filename
        if path.exists():
            try:
                table = json.loads(path.read_text())
            except (OSError, ValueError):
                table = None
            if isinstance(table, dict) and valid(table):
                return table
            warnings.warn(
                f"{self.name}: the cached {path} is unreadable or incomplete; recomputing it",
                CacheRebuildWarning,
                stacklevel=3,
            )
        table = compute()
        write_json(path, table)
        return table

    def accuracy_table(self) -> dict[str, dict[str, float]]:
        """Accuracy of every model (rows) on every evaluation split (columns); cached as JSON."""
        if self._accuracy is None:

            def compute() -> dict[str, Any]:
                splits = self.evaluation_data()
                return {
                    m: {s: accuracy(model, x, y) for s, (x, y) in splits.items()} for m, model in self.models().items()
                }

            self._accuracy = self._cached_json(
                "accuracy.json", compute, lambda table: set(table) == set(self.training_splits)
            )
        return self._accuracy

    def level_accuracy(self) -> dict[str, dict[str, Any]]:
        """:meth:`level_data` evaluated for every model, over all images and per class; cached as JSON."""
        if self._level_accuracy is None:

            def compute() -> dict[str, Any]:
                return {
                    prop: level_entry(self.models(), self.class_names, *data)
                    for prop, data in self.level_data().items()
                }

            def valid(table: dict[str, Any]) -> bool:
                return all(
                    set(entry.get("accuracy", {})) == set(self.training_splits)
                    and set(entry.get("class_accuracy", {})) == set(self.training_splits)
                    for entry in table.values()
                )

            self._level_accuracy = self._cached_json(LEVEL_ACCURACY_FILE, compute, valid)
        return self._level_accuracy

    def level_data(self) -> dict[str, tuple[list[str], torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Fresh images for :meth:`level_accuracy`: per property, the level labels, images, labels
        and each image's level index. The default has none."""
        return {}

    # -- seeds -------------------------------------------------------------------------------
    def _split_seed(self, split: str) -> int:
        """A seed per purpose, derived from the suite seed (stable across runs and platforms)."""
        return int(cache_key(self.name, self.seed, split), 16) % (2**31)

    def generator(self, purpose: str) -> torch.Generator:
        """A fresh CPU generator for one purpose (data of a split, test set, interventions)."""
        return torch.Generator().manual_seed(self._split_seed(purpose))

    def settings_base(self) -> dict[str, Any]:
        """Settings every cached suite shares: mode, seed and training configuration."""
        return {"quick": self.quick, "seed": self.seed, "training": self.training_config().to_dict()}


def level_entry(
    models: dict[str, nn.Module],
    class_names: tuple[str, ...],
    levels: list[str],
    images: torch.Tensor,
    labels: torch.Tensor,
    groups: torch.Tensor,
) -> dict[str, Any]:
    """One property of :meth:`CachedSuite.level_accuracy`: every model's accuracy per level,
    overall and per class, from one forward pass per model."""
    entry: dict[str, Any] = {"levels": list(levels), "accuracy": {}, "class_accuracy": {}}
    for m, model in models.items():
        pred = predict(model, images)
        entry["accuracy"][m] = group_accuracy(pred, labels, groups, len(levels))
        entry["class_accuracy"][m] = {
            name: group_accuracy(pred[labels == c], labels[labels == c], groups[labels == c], len(levels))
            for c, name in enumerate(class_names)
            if bool((labels == c).any())
        }
    return entry
