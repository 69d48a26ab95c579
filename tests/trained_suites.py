"""Trained built-in suites shared by the slow tests: trained once per test session, in files.

The fixture :func:`tests.conftest.quick_fur` calls :func:`train_quick_fur` under a file lock, so
of the parallel test workers (pytest-xdist) the first trains and the others read what it recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

PROBE_IMAGES = 8
"""Test images on which :class:`TrainedFur` records the freshly trained models' logits."""

RECORD_NAME = "quick-fur-training.pt"
"""The file, in the cache folder, holding what the training of the quick fur suite recorded."""


@dataclass(frozen=True)
class TrainedFur:
    """The session's trained quick fur suite (seed 0), as the tests see it.

    Attributes:
        cache: The cache folder holding it (the session's ``PROPGRAD_CACHE_DIR``).
        training_seconds: What the training recorded, per model (whichever worker trained it).
        outputs: Each freshly trained model's logits on the first :data:`PROBE_IMAGES` test images,
            taken before any reload, so a test can compare a reload with what training gave.
    """

    cache: Path
    training_seconds: dict[str, float]
    outputs: dict[str, torch.Tensor]


def train_quick_fur(cache: Path) -> TrainedFur:
    """The quick fur suite of seed 0 in ``cache``: trained and recorded on the first call, read after.

    Not safe to call from two processes at once: the caller holds a lock on ``cache``.

    Args:
        cache: The cache folder (a fresh one trains; one holding the record is only read).

    Returns:
        The folder, the training times and the trained models' logits on the probe images.
    """
    from propgrad.suites.fur import FurSuite

    record = Path(cache) / RECORD_NAME
    if not record.exists():
        suite = FurSuite(quick=True, seed=0, cache_dir=cache)
        models = suite.models()
        probe = suite.test_set()[0][:PROBE_IMAGES]
        with torch.no_grad():
            outputs = {name: model(probe) for name, model in models.items()}
        torch.save({"training_seconds": suite.training_seconds, "outputs": outputs}, record)
    saved = torch.load(record, weights_only=True)
    return TrainedFur(Path(cache), dict(saved["training_seconds"]), dict(saved["outputs"]))
