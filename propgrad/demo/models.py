"""The models the demo offers: the example model, every suite model already trained and cached, and a
``--model`` spec given at launch.

Nothing is trained here: a suite's models are offered only when every one of them is in the cache
(``propgrad benchmark --suite fur`` trains and caches them once); the page names the command
otherwise. A model is loaded once per server and shared by the sessions (read-only, eval mode).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from propgrad.cli.model_loading import ImagePreparation
from propgrad.errors import InvalidParameterError

EXAMPLE_LABEL = "example: colour balance (warm / cool)"
"""The example model's name in the model menu (:func:`propgrad.example_model.colour_balance_net`)."""


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to explain.

    Attributes:
        model: The eval-mode model mapping [0, 1] images (after ``preparation``'s normalisation) to outputs.
        labels: Names of its output columns, or None.
        preparation: The resize, crop and normalisation of the images it eats.
    """

    model: Any
    labels: tuple[str, ...] | None
    preparation: ImagePreparation


@dataclass(frozen=True)
class ModelEntry:
    """One line of the model menu: its name and how to load it."""

    name: str
    load: Callable[[], LoadedModel]


class ModelCatalogue:
    """The models the demo offers, by menu name, each loaded once (thread-safe).

    Args:
        spec: A ``--model`` spec (``package.module:callable``, a TorchScript file, ``hf:PATH_OR_ID``),
            loaded now so that a bad spec stops the launch with its one-line error; None: none.
        cache_dir: Where cached suites are looked up (None: propgrad's cache folder,
            ``PROPGRAD_CACHE_DIR``).
        suites: The suites whose cached models are offered (None: every registered suite).

    Raises:
        InvalidParameterError, InputFileError: the spec cannot be loaded (as ``propgrad explain --model``).
    """

    def __init__(
        self, spec: str | None = None, *, cache_dir: Path | None = None, suites: Sequence[str] | None = None
    ) -> None:
        entries = [ModelEntry(EXAMPLE_LABEL, _example_model)]
        self._loaded: dict[str, LoadedModel] = {}
        if spec is not None:
            name = f"--model {spec}"
            self._loaded[name] = _spec_model(spec)
            entries.insert(0, ModelEntry(name, lambda: self._loaded[name]))
        entries += cached_suite_models(cache_dir, suites)
        self.entries = {entry.name: entry for entry in entries}
        self._lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        """The menu's names, the launch spec's first, then the example model's, then the suites'."""
        return list(self.entries)

    def get(self, name: str) -> LoadedModel:
        """The model of menu ``name``, loaded on first use.

        Raises:
            InvalidParameterError: a name not in the menu (listing the ones it holds).
        """
        entry = self.entries.get(name)
        if entry is None:
            raise InvalidParameterError(f"model must be one of {', '.join(map(repr, self.entries))}, got {name!r}")
        with self._lock:
            if name not in self._loaded:
                self._loaded[name] = entry.load()
            return self._loaded[name]


def _example_model() -> LoadedModel:
    from propgrad.example_model import CLASS_NAMES, colour_balance_net

    return LoadedModel(colour_balance_net(), tuple(CLASS_NAMES), ImagePreparation(size=64))


def _spec_model(spec: str) -> LoadedModel:
    """A ``--model`` spec loaded as ``propgrad explain`` loads it, with its labels and image preparation."""
    from propgrad.cli.explain import default_labels, own_preparation
    from propgrad.cli.model_loading import CLIP_PREFIX, load_model

    if spec.startswith(CLIP_PREFIX):
        raise InvalidParameterError(
            f"--model {spec!r}: the demo does not take zero-shot CLIP models (they need --descriptors); "
            "use propgrad explain --model clip:... --descriptors FILE.json"
        )
    model = load_model(spec)
    labels = default_labels(spec, model)
    return LoadedModel(model, None if labels is None else tuple(labels), own_preparation(model))


def cached_suite_models(cache_dir: Path | None = None, suites: Sequence[str] | None = None) -> list[ModelEntry]:
    """A menu entry per trained model of every cached suite whose models are all in the cache (no training).

    A suite is looked up in both its quick and its full settings; an entry is named
    ``suite fur (quick): unbiased``. Its images are resized and cropped to the suite's image size.
    """
    from propgrad.plugins import get_suite, list_suites
    from propgrad.suites.cached import CachedSuite

    entries = []
    for suite_name in list_suites() if suites is None else suites:
        cls = get_suite(suite_name)
        if not (isinstance(cls, type) and issubclass(cls, CachedSuite)):
            continue
        for quick in (True, False):
            suite = cls(quick=quick, cache_dir=cache_dir)
            if not all((suite.cache_path / f"model_{split}.pt").is_file() for split in suite.training_splits):
                continue
            mode = "quick" if quick else "full"
            for split in suite.training_splits:
                entries.append(ModelEntry(f"suite {suite_name} ({mode}): {split}", _suite_loader(suite, split)))
    return entries


def _suite_loader(suite: Any, split: str) -> Callable[[], LoadedModel]:
    def load() -> LoadedModel:
        side = int(suite.settings()["image_size"])
        model = suite.models()[split]  # from the cache: every split's weights exist (checked by their SHA-256)
        return LoadedModel(model, tuple(suite.class_names), ImagePreparation(size=side, crop=(side, side)))

    return load
