"""Checkpoint folders written the way training libraries write them, for the tests of ``propgrad track``.

:func:`write_checkpoints` saves one real checkpoint per epoch of a small model in one of the
formats :mod:`propgrad.track.checkpoints` reads; every checkpoint holds different weights (drawn
from a seed per epoch), so a test can tell which one was loaded. The files are built without the
training libraries themselves, the way they save:

- ``"hf-trainer"``: Hugging Face Trainer folders ``checkpoint-<step>/`` with ``trainer_state.json``
  (``global_step``, ``epoch``, ``log_history``) and ``model.safetensors`` (``save_pretrained`` when
  the model has it, so ``config.json`` is there for ``from_pretrained``); ``"hf-trainer-bin"`` the
  same with ``pytorch_model.bin``.
- ``"lightning"``: ``epoch=E-step=S.ckpt`` holding what Lightning's ``dump_checkpoint`` writes:
  ``epoch``, ``global_step``, ``pytorch-lightning_version``, ``state_dict`` (keys prefixed by the
  LightningModule's attribute, ``model.``), ``loops``, ``callbacks`` (a ModelCheckpoint state),
  ``optimizer_states``, ``lr_schedulers``, ``hparams_name`` and ``hyper_parameters`` holding objects
  (an ``argparse.Namespace``, a loss module, a path), which is what makes ``torch.load(weights_only=True)``
  refuse real Lightning files.
- ``"safetensors"``: ``step_<S>.safetensors`` with ``step`` and ``epoch`` in the header's metadata.
- ``"torch"``: ``ckpt_<E>.pt`` holding ``{"model_state_dict", "optimizer_state_dict", "epoch", "step"}``.
- ``"torch-bare"``: ``model_<E>.pt`` holding a bare state dict (no step, no epoch).
- ``"dataparallel"``: ``model_<E>.pth``, a bare state dict whose keys carry DataParallel's ``module.``.
- ``"paper"``: ``epoch_<E>.pt`` in the paper code's format ``{"paras", "state_dict", "performance"}`` (the
  epoch only in the file's name).
"""

from __future__ import annotations

import argparse
import json
import pathlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

KINDS = ("hf-trainer", "hf-trainer-bin", "lightning", "safetensors", "torch", "torch-bare", "dataparallel", "paper")
LIGHTNING_VERSION = "2.5.1"


class TinyNet(nn.Module):
    """A small image classifier (conv, batch norm with its buffers, linear head): (B, 3, H, W) -> (B, 2)."""

    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, width, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm2d(width)
        self.head = nn.Linear(width, 2)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.norm(self.conv(images))).mean(dim=(2, 3)))


def tiny_vit(num_labels: int = 2) -> nn.Module:
    """A randomly initialised ViT image classifier small enough for tests (transformers, from a config)."""
    from transformers import ViTConfig, ViTForImageClassification

    config = ViTConfig(
        image_size=16,
        patch_size=8,
        num_channels=3,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=num_labels,
    )
    return ViTForImageClassification(config).eval()


@dataclass(frozen=True)
class WrittenCheckpoint:
    """One checkpoint :func:`write_checkpoints` saved.

    Attributes:
        path: The file, or the ``checkpoint-<step>/`` folder.
        epoch: The epoch it records (Hugging Face: the float epoch at the end of that epoch).
        step: The global step it records.
        state: The model's own state dict at that checkpoint (keys without any prefix), cloned.
    """

    path: Path
    epoch: int | float
    step: int
    state: dict[str, torch.Tensor]


def randomised(model_factory: Callable[[], nn.Module], seed: int) -> nn.Module:
    """``model_factory()`` with every parameter and floating buffer redrawn from ``seed`` (one model per seed)."""
    model = model_factory()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                values = torch.randn(tensor.shape, generator=generator, dtype=torch.float64).to(tensor.dtype)
                if name.endswith("running_var"):
                    values = values.abs() + 0.5
                tensor.copy_(values)
    return model.eval()


def write_checkpoints(
    folder: str | Path,
    model_factory: Callable[[], nn.Module],
    kind: str,
    epochs: int | Sequence[int] = 3,
    *,
    steps_per_epoch: int = 100,
    seed: int = 0,
) -> list[WrittenCheckpoint]:
    """Save one checkpoint per epoch of ``model_factory()``'s model in the format ``kind`` (one of :data:`KINDS`).

    Args:
        folder: Where to write (created).
        model_factory: Builds the model; each epoch's weights are redrawn from ``seed + epoch``.
        kind: The format (see the module docstring).
        epochs: How many epochs (0, 1, ...) or which ones.
        steps_per_epoch: Global steps per epoch; epoch ``e`` ends at step ``(e + 1) * steps_per_epoch``.
        seed: Base seed of the weights.

    Returns:
        What was written, in epoch order.
    """
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r}: expected one of {', '.join(KINDS)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for epoch in range(epochs) if isinstance(epochs, int) else epochs:
        model = randomised(model_factory, seed + epoch)
        step = (epoch + 1) * steps_per_epoch
        state = {key: value.detach().clone() for key, value in model.state_dict().items()}
        path = _WRITERS[kind](folder, model, state, epoch, step)
        written.append(WrittenCheckpoint(path, float(epoch + 1) if kind.startswith("hf") else epoch, step, state))
    return written


def _hf_trainer(folder: Path, model: nn.Module, state: dict, epoch: int, step: int, *, bin_file: bool = False) -> Path:
    path = folder / f"checkpoint-{step}"
    path.mkdir(exist_ok=True)
    if bin_file:
        torch.save(state, path / "pytorch_model.bin")
    elif hasattr(model, "save_pretrained"):
        model.save_pretrained(path)
    else:
        from safetensors.torch import save_file

        save_file({key: value.contiguous() for key, value in state.items()}, path / "model.safetensors")
    log = [
        {"epoch": float(e + 1), "loss": 1.0 / (e + 1), "step": (e + 1) * step // (epoch + 1)} for e in range(epoch + 1)
    ]
    trainer_state = {
        "best_metric": None,
        "epoch": float(epoch + 1),
        "global_step": step,
        "log_history": log,
        "max_steps": 10 * step,
        "num_train_epochs": 10,
        "train_batch_size": 8,
    }
    (path / "trainer_state.json").write_text(json.dumps(trainer_state, indent=2), encoding="utf-8")
    torch.save({"state": {}, "param_groups": [{"lr": 1e-3, "params": [0]}]}, path / "optimizer.pt")
    return path


def lightning_checkpoint(state: dict, epoch: int, step: int, prefix: str = "model.") -> dict:
    """The dictionary Lightning's ``dump_checkpoint`` saves for a LightningModule holding the network as ``prefix``."""
    progress = {"total": {"ready": step, "completed": step}, "current": {"ready": step, "completed": step}}
    return {
        "epoch": epoch,
        "global_step": step,
        "pytorch-lightning_version": LIGHTNING_VERSION,
        "state_dict": {prefix + key: value for key, value in state.items()},
        "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": progress}, "validate_loop": {}},
        "callbacks": {
            "ModelCheckpoint{'monitor': 'val_loss', 'mode': 'min', 'every_n_train_steps': 0}": {
                "monitor": "val_loss",
                "best_model_score": torch.tensor(0.5 / (epoch + 1)),
                "best_model_path": f"/runs/lightning_logs/version_0/checkpoints/epoch={epoch}-step={step}.ckpt",
                "dirpath": pathlib.PurePosixPath("/runs/lightning_logs/version_0/checkpoints"),
            }
        },
        "optimizer_states": [{"state": {}, "param_groups": [{"lr": 0.01, "params": [0, 1]}]}],
        "lr_schedulers": [],
        "hparams_name": "kwargs",
        "hyper_parameters": {
            "args": argparse.Namespace(lr=0.01, batch_size=8),
            "loss": nn.CrossEntropyLoss(label_smoothing=0.1),
        },
    }


def _lightning(folder: Path, model: nn.Module, state: dict, epoch: int, step: int) -> Path:
    path = folder / f"epoch={epoch}-step={step}.ckpt"
    torch.save(lightning_checkpoint(state, epoch, step), path)
    return path


def _safetensors(folder: Path, model: nn.Module, state: dict, epoch: int, step: int) -> Path:
    from safetensors.torch import save_file

    path = folder / f"step_{step}.safetensors"
    tensors = {key: value.contiguous() for key, value in state.items()}
    save_file(tensors, path, metadata={"step": str(step), "epoch": str(epoch), "format": "pt"})
    return path


def _torch(folder: Path, model: nn.Module, state: dict, epoch: int, step: int) -> Path:
    path = folder / f"ckpt_{epoch}.pt"
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    torch.save(
        {"model_state_dict": state, "optimizer_state_dict": optimizer.state_dict(), "epoch": epoch, "step": step},
        path,
    )
    return path


def _torch_bare(folder: Path, model: nn.Module, state: dict, epoch: int, step: int) -> Path:
    path = folder / f"model_{epoch}.pt"
    torch.save(state, path)
    return path


def _dataparallel(folder: Path, model: nn.Module, state: dict, epoch: int, step: int) -> Path:
    path = folder / f"model_{epoch}.pth"
    torch.save({f"module.{key}": value for key, value in state.items()}, path)
    return path


def _paper(folder: Path, model: nn.Module, state: dict, epoch: int, step: int) -> Path:
    path = folder / f"epoch_{epoch}.pt"
    paras = {"lr": 0.001, "batch_size": 64, "arch": type(model).__name__, "num_epochs": 100}
    performance = {"train_acc": 0.5 + 0.01 * epoch, "val_acc": 0.5 + 0.005 * epoch}
    torch.save({"paras": paras, "state_dict": state, "performance": performance}, path)
    return path


_WRITERS: dict[str, Callable[..., Path]] = {
    "hf-trainer": _hf_trainer,
    "hf-trainer-bin": lambda *args: _hf_trainer(*args, bin_file=True),
    "lightning": _lightning,
    "safetensors": _safetensors,
    "torch": _torch,
    "torch-bare": _torch_bare,
    "dataparallel": _dataparallel,
    "paper": _paper,
}
