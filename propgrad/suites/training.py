"""Training and evaluating the suites' small classifiers on the CPU, reproducibly.

Training runs inside ``torch.random.fork_rng`` seeded from the suite's seed, so the global RNG
is not disturbed and the same seed gives the same weights; batches are drawn with an explicit
``torch.Generator``. Augmentation is limited to horizontal flips, which leave every property the
suites control (shape class, fur level, background darkening, patches) unchanged.

Training runs on :data:`TRAINING_THREADS` intra-op thread with deterministic kernels only
(:func:`reproducible_cpu`), so the weights do not depend on the caller's ``torch.set_num_threads``
(the benchmark's ``--threads``): on two threads a reduction (a batch norm's statistics, a
convolution's weight gradient) is summed in another order, and the rounding this leaves grows over
the steps into other weights (max |Δparam| 0.8 for a quick fur model).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from propgrad.core.forward import run_model
from propgrad.core.progress import progress_bar
from propgrad.core.validation import check_int
from propgrad.errors import InvalidParameterError
from propgrad.suites.convmixer import ConvMixer

TRAINING_THREADS = 1
"""torch's intra-op threads while a suite model trains, whatever the caller set (part of
``propgrad.suites.cached.CODE_VERSION``: changing it changes the weights)."""


@dataclass(frozen=True)
class TrainingConfig:
    """Hyper-parameters of one training run (all part of the suite's cache key).

    Attributes:
        epochs: Passes over the training set.
        batch_size: Images per optimisation step.
        lr: Peak learning rate of AdamW (one-cycle schedule).
        weight_decay: AdamW weight decay.
        dim, depth, kernel_size, patch_size: The ConvMixer's architecture.
    """

    epochs: int = 6
    batch_size: int = 64
    lr: float = 4e-3
    weight_decay: float = 5e-4
    dim: int = 32
    depth: int = 3
    kernel_size: int = 5
    patch_size: int = 4

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-serialisable dict."""
        return asdict(self)

    def build(self, num_classes: int = 2) -> ConvMixer:
        """A freshly initialised ConvMixer of this architecture."""
        return ConvMixer(
            dim=self.dim,
            depth=self.depth,
            kernel_size=self.kernel_size,
            patch_size=self.patch_size,
            num_classes=num_classes,
        )


def _check_data(images: torch.Tensor, labels: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise InvalidParameterError(f"images must be a tensor (N, 3, H, W), got {got}")
    if not isinstance(labels, torch.Tensor) or labels.shape != (images.shape[0],):
        got = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise InvalidParameterError(f"labels must be a tensor ({images.shape[0]},) matching images, got {got}")


@contextmanager
def reproducible_cpu(threads: int = TRAINING_THREADS) -> Iterator[None]:
    """Run the block on ``threads`` intra-op threads with deterministic kernels only.

    The caller's thread count and deterministic-algorithms setting are restored afterwards, also
    when the block raises.

    Args:
        threads: torch's intra-op threads inside the block.

    Yields:
        Nothing; the settings hold inside the ``with`` block.

    Raises:
        InvalidParameterError: If ``threads`` is not a positive integer.
    """
    threads = check_int(threads, "threads")
    previous_threads = torch.get_num_threads()
    previous_deterministic = torch.are_deterministic_algorithms_enabled()
    previous_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous_deterministic, warn_only=previous_warn_only)
        torch.set_num_threads(previous_threads)


def train_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    config: TrainingConfig,
    *,
    seed: int,
    num_classes: int = 2,
    progress: str | None = None,
    start: nn.Module | None = None,
    on_epoch: Callable[[int, int, nn.Module], None] | None = None,
) -> nn.Module:
    """Train a ConvMixer with cross-entropy and return it in eval mode.

    The same data, config, seed and start give bit-identical weights whatever
    ``torch.get_num_threads()`` the caller set: training runs inside :func:`reproducible_cpu`.

    Args:
        images: Training images (N, 3, H, W) in [0, 1].
        labels: Class indices (N,).
        config: Hyper-parameters.
        seed: Seed of the initialisation, the batch order and the flips.
        num_classes: Number of logits.
        progress: The label of a progress bar over the optimisation steps; None shows none.
        start: The model to train from (its weights are trained in place; ``num_classes`` is then
            unused), instead of ``config.build`` initialised from ``seed``.
        on_epoch: Called as ``on_epoch(epoch, step, model)`` with the model in eval mode before
            training (epoch 0, step 0) and after every epoch (``propgrad track --demo`` saves a
            checkpoint there).

    Returns:
        The trained model (eval mode, CPU).

    Raises:
        ValueError: If images and labels do not fit together.
    """
    _check_data(images, labels)
    n = images.shape[0]
    steps_per_epoch = max(1, (n + config.batch_size - 1) // config.batch_size)
    total = steps_per_epoch * config.epochs
    with reproducible_cpu(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = config.build(num_classes) if start is None else start
        gen = torch.Generator().manual_seed(seed + 1)
        optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=config.lr, total_steps=total, pct_start=0.25)
        if on_epoch is not None:
            on_epoch(0, 0, model.eval())
        with progress_bar(total, progress or "training", enabled=progress is not None, leave=False) as bar:
            for epoch in range(1, config.epochs + 1):
                model.train()
                order = torch.randperm(n, generator=gen)
                for start in range(0, n, config.batch_size):
                    idx = order[start : start + config.batch_size]
                    batch = images[idx]
                    flip = torch.rand(idx.shape[0], generator=gen) < 0.5
                    batch = torch.where(flip[:, None, None, None], batch.flip(-1), batch)
                    loss = F.cross_entropy(model(batch), labels[idx])
                    optimiser.zero_grad(set_to_none=True)
                    loss.backward()
                    optimiser.step()
                    schedule.step()
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss.item():.3f}")
                if on_epoch is not None:
                    on_epoch(epoch, epoch * steps_per_epoch, model.eval())
    return model.eval()


def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Predicted classes (N,) of ``model`` for images (N, 3, H, W), without gradients."""
    return run_model(model, images, batch_size=batch_size).argmax(1)


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of images classified correctly (in [0, 1])."""
    _check_data(images, labels)
    if images.shape[0] == 0:
        raise InvalidParameterError("accuracy needs at least one image, got none")
    return float((predict(model, images) == labels).float().mean())


def group_accuracy(
    predictions: torch.Tensor, labels: torch.Tensor, groups: torch.Tensor, n_groups: int
) -> list[float | None]:
    """Accuracy within each group ``0 .. n_groups - 1`` (None for an empty group).

    Args:
        predictions: Predicted classes (N,), e.g. from :func:`predict`.
        labels: True classes (N,).
        groups: Group index of every image (N,), integers in [0, n_groups).
        n_groups: Number of groups.
    """
    if predictions.shape != labels.shape or groups.shape != labels.shape or labels.dim() != 1:
        raise InvalidParameterError(
            f"predictions, labels and groups must be (N,) tensors of one length, got shapes "
            f"{tuple(predictions.shape)}, {tuple(labels.shape)}, {tuple(groups.shape)}"
        )
    if labels.shape[0] and not 0 <= int(groups.min()) <= int(groups.max()) < n_groups:
        raise InvalidParameterError(
            f"groups must be integers in [0, {n_groups}), got values from {int(groups.min())} to {int(groups.max())}"
        )
    correct = (predictions == labels).float()
    totals = torch.bincount(groups, minlength=n_groups).float()
    hits = torch.bincount(groups, weights=correct, minlength=n_groups)
    return [float(h / t) if t > 0 else None for h, t in zip(hits, totals)]


def load_classifier(state: dict[str, torch.Tensor], config: TrainingConfig, num_classes: int = 2) -> nn.Module:
    """A ConvMixer of ``config`` with the weights ``state`` (from ``state_dict()``), in eval mode."""
    model = config.build(num_classes)
    model.load_state_dict(state)
    return model.eval()
