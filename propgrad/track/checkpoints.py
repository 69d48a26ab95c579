"""A model's checkpoints as users have them: found in a folder, a glob or a list, ordered by training time, loaded.

:func:`find_checkpoints` turns a folder, a glob pattern or explicit files into :class:`Checkpoint`
records ordered by the epoch and step each file records (Hugging Face ``trainer_state.json``, the
Lightning dictionary or file name, safetensors metadata, the keys of a torch dictionary, or an
``epoch_<E>`` / ``step=<S>`` in the name), never by string order; :func:`load_checkpoint` puts one
into a model, weights-only by default (:mod:`propgrad.track.checkpoint_reading`). The formats:

========================  ===========  ================================================================
what                      kind         step and epoch from
========================  ===========  ================================================================
``checkpoint-<step>/``    hf-trainer   ``trainer_state.json`` (``global_step``, ``epoch``), else the name
``*.ckpt`` (Lightning)    lightning    the dictionary's ``global_step``/``epoch``, else ``epoch=E-step=S``
``*.safetensors``         safetensors  the header's metadata (``step``/``global_step``, ``epoch``)
``*.pt`` ``*.pth`` ``*.bin`` torch     the dictionary's ``global_step``/``step``/``epoch``
paper's ``*.pt``          paper        ``{"paras", "state_dict", "performance"}``; epoch from the name
any file, ``load_func``   custom       the name only (the file is the load function's business)
========================  ===========  ================================================================
"""

from __future__ import annotations

import glob
import re
import sys
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from propgrad.core.progress import hf_progress_bars
from propgrad.errors import InputFileError, PropgradWarning
from propgrad.track.checkpoint_reading import (
    CheckpointError,
    as_epoch,
    as_step,
    hf_metadata,
    hf_weight_file,
    hf_weight_shards,
    read_hf_folder,
    read_safetensors,
    read_torch_state,
    read_torch_summary,
    read_trainer_state,
    safetensors_shapes,
    tensor_shapes,
)

__all__ = [
    "CHECKPOINT_PATTERNS",
    "KINDS",
    "Checkpoint",
    "CheckpointError",
    "KnownShapes",
    "adapt_keys",
    "check_fits",
    "check_same_architecture",
    "find_checkpoints",
    "load_checkpoint",
    "read_shapes",
    "read_state_dict",
    "tensor_shapes",
]

KINDS = ("hf-trainer", "lightning", "safetensors", "torch", "paper", "custom")
TORCH_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
CHECKPOINT_PATTERNS = ("checkpoint-<step>/", "*.ckpt", "*.safetensors", "*.pt", "*.pth", "*.bin")
"""What :func:`find_checkpoints` looks for in a folder (named in its error when it finds none)."""

_HF_FOLDER = re.compile(r"checkpoint-(\d+)$")
_LIGHTNING_NAME = re.compile(r"(?:^|[-_])epoch=(\d+)-step=(\d+)")
_NAMED_EPOCH = re.compile(r"(?:^|[^a-z])epoch[=_-]?(\d+)", re.IGNORECASE)
_NAMED_STEP = re.compile(r"(?:^|[^a-z])(?:global_?)?step[=_-]?(\d+)", re.IGNORECASE)
_GLOB_CHARS = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class Checkpoint:
    """One checkpoint of a training run.

    Attributes:
        path: The file, or a Hugging Face Trainer folder ``checkpoint-<step>/``.
        kind: ``"hf-trainer"``, ``"lightning"``, ``"safetensors"``, ``"torch"``, ``"paper"`` or ``"custom"``
            (read by a ``load_func``).
        step: The global step it records, or None.
        epoch: The epoch it records (a float for Hugging Face's fractional epochs), or None.
        name: A short label for tables and plots (``"checkpoint-200"``, ``"epoch=3-step=120.ckpt"``).
        ordered_by: Where its place in the order came from: ``"metadata"`` (the file's own record of step
            or epoch), ``"name"`` (a step or epoch written in the file name), ``"name order"`` (the numbers
            in the names, none recording step or epoch) or ``"given order"`` (the order of an explicit list).
        shapes: The tensor shapes :func:`find_checkpoints` read from a torch file along with its step and
            epoch (the one pass over the file it makes), so :func:`read_shapes` need not read it again
            while the file keeps its size and modification time; None when not read. Not compared.
    """

    path: Path
    kind: str
    step: int | None
    epoch: float | None
    name: str
    ordered_by: str = "metadata"
    shapes: KnownShapes | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class KnownShapes:
    """A checkpoint file's tensor shapes as read once, and the file's ``(size, mtime_ns)`` when they were read.

    Attributes:
        stamp: The file's size and modification time (ns) before it was read.
        shapes: The shape of every tensor of its state dict, by key (as stored: no prefix stripped).
    """

    stamp: tuple[int, int]
    shapes: Mapping[str, tuple[int, ...]]

    def of(self, path: Path) -> dict[str, tuple[int, ...]] | None:
        """The shapes, or None when ``path`` is no longer the file they were read from (size or mtime changed)."""
        try:
            return dict(self.shapes) if file_stamp(path) == self.stamp else None
        except OSError:
            return None


def file_stamp(path: Path) -> tuple[int, int]:
    """A file's ``(size, mtime_ns)``: what tells whether it changed since it was read."""
    info = path.stat()
    return info.st_size, info.st_mtime_ns


def find_checkpoints(
    spec: str | Path | Sequence[str | Path],
    *,
    load_func: Callable[..., Any] | None = None,
    trust: bool = False,
) -> list[Checkpoint]:
    """A folder, a glob pattern or explicit files -> their checkpoints, ordered by epoch and step.

    The order is (epoch, step) as each checkpoint records it (see the module docstring), never the
    string order of the names (``checkpoint-1000`` comes after ``checkpoint-200``). When no
    checkpoint records a step or an epoch, an explicit list keeps its order and a folder or glob is
    put in the natural order of the numbers in the names, with a warning saying so. A Lightning
    ``last*.ckpt`` repeating another checkpoint's epoch and step is left out (Lightning's copy of the
    latest one).

    Args:
        spec: A folder (its ``checkpoint-<step>/`` folders if it has any, else its ``*.ckpt``,
            ``*.safetensors``, ``*.pt``, ``*.pth`` and ``*.bin`` files), a single checkpoint file or
            Trainer folder, a glob pattern, or a list of any of these.
        load_func: A user's ``load_func(model, path)``: the files are then not opened (kind
            ``"custom"``; step and epoch from the names only), and a folder is searched for any file.
        trust: Allow a full pickle of a torch file that weights-only loading refuses (runs its code).

    Returns:
        The checkpoints in training order.

    Raises:
        InputFileError: a named file or folder does not exist.
        CheckpointError: a folder with no checkpoints (naming the patterns looked for), a glob matching
            nothing, an unreadable file, two checkpoints with the same epoch and step, or checkpoints
            only some of which record a step or an epoch.
    """
    given = not isinstance(spec, (str, Path))
    items: list[str | Path] = [spec] if isinstance(spec, (str, Path)) else list(spec)
    unique: dict[Path, Path] = {}  # a symlink (Lightning's last.ckpt) or a file named twice counts once
    for item in items:
        for path in _expand(item, custom=load_func is not None):
            known = unique.setdefault(path.resolve(), path)
            if known.is_symlink() and not path.is_symlink():
                unique[path.resolve()] = path  # named by the file itself, not the link
    paths = list(unique.values())
    if not paths:
        raise CheckpointError("no checkpoints given: expected a folder, a glob pattern or checkpoint files")
    checkpoints = [_describe_checkpoint(path, custom=load_func is not None, trust=trust) for path in paths]
    return _order(_drop_lightning_last(_unique_names(checkpoints)), given=given)


def _expand(item: str | Path, *, custom: bool) -> list[Path]:
    path = Path(item).expanduser()
    if path.is_dir():
        has_trainer_folders = any(p.is_dir() and _HF_FOLDER.search(p.name) for p in path.iterdir())
        if not has_trainer_folders and _is_hf_folder(path):
            return [path]
        return _scan_folder(path, custom=custom)
    if path.exists():
        return [path]
    if _GLOB_CHARS.search(str(item)):
        matches = [Path(p) for p in glob.glob(str(path))]
        found = [p for p in matches if (p.is_file() and not p.name.startswith(".")) or _is_hf_folder(p)]
        if not found:
            raise CheckpointError(
                f"checkpoint pattern {str(item)!r} matches no checkpoint file or checkpoint-<step>/ folder"
                + (f" ({len(matches)} other entries)" if matches else "")
            )
        return sorted(found, key=_natural_key)
    raise InputFileError(f"checkpoints {str(item)!r}: no such file or folder (expected a folder, a file or a glob)")


def _is_hf_folder(path: Path) -> bool:
    return path.is_dir() and (hf_weight_file(path) is not None or _HF_FOLDER.search(path.name) is not None)


def _scan_folder(folder: Path, *, custom: bool) -> list[Path]:
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    trainer = [p for p in entries if p.is_dir() and _HF_FOLDER.search(p.name)]
    if trainer:
        return sorted(trainer, key=_natural_key)
    files = [p for p in entries if p.is_file() and (custom or p.suffix in (*TORCH_SUFFIXES, ".safetensors"))]
    if not files:
        raise CheckpointError(
            f"checkpoint folder {str(folder)!r} holds no checkpoints: looked for {', '.join(CHECKPOINT_PATTERNS)}"
        )
    return sorted(files, key=_natural_key)


def _natural_key(path: Path) -> tuple:
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", str(path)))


def _describe_checkpoint(path: Path, *, custom: bool, trust: bool) -> Checkpoint:
    """One checkpoint's kind, step and epoch (reading its metadata, not its tensors' bytes)."""
    if custom:
        step, epoch = _from_name(path.name)
        return Checkpoint(path, "custom", step, epoch, path.name, "name")
    if path.is_dir():
        hf_weight_shards(path)  # fails early on a folder without weights
        trainer_state = read_trainer_state(path)
        metadata = hf_metadata(trainer_state)
        step = as_step(metadata.get("global_step"))
        epoch = as_epoch(metadata.get("epoch"))
        if step is None:
            named = _HF_FOLDER.search(path.name)
            step = int(named.group(1)) if named else None
            return Checkpoint(path, "hf-trainer", step, epoch, path.name, "name" if step is not None else "")
        return Checkpoint(path, "hf-trainer", step, epoch, path.name)
    known = None
    if path.suffix == ".safetensors":
        _, metadata = read_safetensors(path, tensors=False)
        kind = "safetensors"
    else:
        stamp = file_stamp(path)
        metadata, shapes = read_torch_summary(path, trust=trust)  # the one read: step, epoch and shapes together
        known = KnownShapes(stamp, shapes)
        kind = _torch_kind(path, metadata)
    step, epoch = _step_epoch(metadata)
    if step is not None or epoch is not None:
        return Checkpoint(path, kind, step, epoch, path.name, shapes=known)
    step, epoch = _from_name(path.name)
    return Checkpoint(path, kind, step, epoch, path.name, "name" if (step, epoch) != (None, None) else "", shapes=known)


def _torch_kind(path: Path, metadata: Mapping[str, Any]) -> str:
    keys = set(metadata.get("checkpoint_keys", ()))
    if {"paras", "state_dict", "performance"} <= keys:
        return "paper"
    if "pytorch-lightning_version" in keys or (path.suffix == ".ckpt" and "state_dict" in keys):
        return "lightning"
    return "torch"


def _step_epoch(metadata: Mapping[str, Any]) -> tuple[int | None, float | None]:
    step = next(
        (as_step(metadata[k]) for k in ("global_step", "step") if k in metadata),
        None,
    )
    epoch = as_epoch(metadata["epoch"]) if "epoch" in metadata else None
    return step, epoch


def _from_name(name: str) -> tuple[int | None, float | None]:
    stem = Path(name).stem
    lightning = _LIGHTNING_NAME.search(stem)
    if lightning:
        return int(lightning.group(2)), int(lightning.group(1))
    trainer = _HF_FOLDER.search(stem)
    if trainer:
        return int(trainer.group(1)), None
    step = _NAMED_STEP.search(stem)
    epoch = _NAMED_EPOCH.search(stem)
    return (int(step.group(1)) if step else None), (int(epoch.group(1)) if epoch else None)


def _drop_lightning_last(checkpoints: list[Checkpoint]) -> list[Checkpoint]:
    recorded = {(c.epoch, c.step) for c in checkpoints if not c.path.name.startswith("last")}
    return [
        c
        for c in checkpoints
        if not (c.kind == "lightning" and c.path.name.startswith("last") and (c.epoch, c.step) in recorded)
    ]


def _order(checkpoints: list[Checkpoint], *, given: bool) -> list[Checkpoint]:
    have_step = [c.step is not None for c in checkpoints]
    have_epoch = [c.epoch is not None for c in checkpoints]
    if not any(have_step) and not any(have_epoch):
        how = "given order" if given else "name order"
        if len(checkpoints) > 1:
            warnings.warn(
                f"{len(checkpoints)} checkpoints record no step or epoch (e.g. {checkpoints[0].name!r}); they are "
                + ("taken in the order given" if given else "ordered by the numbers in their names"),
                PropgradWarning,
                stacklevel=3,
            )
        return [_with_order(c, how) for c in checkpoints]
    use_epoch, use_step = all(have_epoch), all(have_step)
    if not use_epoch and not use_step:
        recorded = next(c for c in checkpoints if c.step is not None or c.epoch is not None)
        bare = [c for c in checkpoints if c.step is None and c.epoch is None]
        if bare:
            why = f"{recorded.name!r} records its step or epoch but {bare[0].name!r} records neither"
        else:
            no_step = next(c for c in checkpoints if c.step is None)
            no_epoch = next(c for c in checkpoints if c.epoch is None)
            why = f"{no_step.name!r} records no step and {no_epoch.name!r} no epoch"
        raise CheckpointError(f"checkpoints cannot be ordered: {why}; give only checkpoints of one run, in one format")

    def key(c: Checkpoint) -> tuple:
        return (c.epoch if use_epoch else 0, c.step if use_step else 0)

    ordered = sorted(checkpoints, key=key)
    for first, second in zip(ordered, ordered[1:]):
        if key(first) == key(second):
            what = " and ".join(
                f"{label} {value}"
                for label, value, used in (("epoch", first.epoch, use_epoch), ("step", first.step, use_step))
                if used
            )
            raise CheckpointError(
                f"checkpoints {first.name!r} and {second.name!r} both record {what}: a folder should hold one "
                "training run; give the checkpoints to track explicitly (files or a narrower glob)"
            )
    return ordered


def _unique_names(checkpoints: list[Checkpoint]) -> list[Checkpoint]:
    """Same-named checkpoints (``run/checkpoint-*/model.safetensors``) named with as many folders as tell them apart."""
    by_name: dict[str, list[Checkpoint]] = {}
    for checkpoint in checkpoints:
        by_name.setdefault(checkpoint.name, []).append(checkpoint)
    names = {}
    for name, group in by_name.items():
        depth = 1
        while len(group) > 1 and len({Path(*c.path.parts[-depth:]) for c in group}) < len(group):
            depth += 1
        for checkpoint in group:
            names[checkpoint.path] = str(Path(*checkpoint.path.parts[-depth:])) if len(group) > 1 else name
    return [replace(c, name=names[c.path]) for c in checkpoints]


def _with_order(checkpoint: Checkpoint, ordered_by: str) -> Checkpoint:
    return replace(checkpoint, ordered_by=ordered_by)


def read_state_dict(checkpoint: Checkpoint, *, trust: bool = False) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """A checkpoint's state dict (as stored: no prefix stripped) and its metadata.

    Args:
        checkpoint: From :func:`find_checkpoints`.
        trust: Allow a full pickle of a torch file that weights-only loading refuses (runs its code).

    Returns:
        ``(state, metadata)``: metadata holds the step and epoch, the small plain entries of a checkpoint
        dictionary (``performance``, ``paras``, ``hyper_parameters`` ...; :func:`plain_metadata`), the
        Trainer's ``log`` entries, safetensors header entries, and ``opaque_objects``: the classes and
        functions a Lightning-style pickle named that were not rebuilt (read without running code).

    Raises:
        CheckpointError: unreadable, refused, or no state dict in it.
    """
    path = checkpoint.path
    if checkpoint.kind == "custom":
        raise CheckpointError(f"checkpoint {checkpoint.name!r} is read by its load_func, not by propgrad")
    if path.is_dir():
        state, metadata = read_hf_folder(path, trust=trust)
    elif path.suffix == ".safetensors":
        state, header = read_safetensors(path)
        metadata = dict(header)
    else:
        state, metadata = read_torch_state(path, trust=trust)
    metadata["step"] = checkpoint.step
    metadata["epoch"] = checkpoint.epoch
    return state, metadata


def read_shapes(checkpoint: Checkpoint, *, trust: bool = False) -> dict[str, tuple[int, ...]]:
    """The shape of every tensor of a checkpoint's state dict (safetensors: from the header alone; a torch file
    :func:`find_checkpoints` read: the shapes it kept, unless the file changed since)."""
    if checkpoint.shapes is not None:
        known = checkpoint.shapes.of(checkpoint.path)
        if known is not None:
            return known
    if checkpoint.path.suffix == ".safetensors":
        return safetensors_shapes(checkpoint.path)
    if checkpoint.path.is_dir():  # a Trainer folder: each shard's shapes (safetensors: from the header alone)
        shards = hf_weight_shards(checkpoint.path)
        if checkpoint.kind != "custom" or all(shard.suffix == ".safetensors" for shard in shards):
            shapes: dict[str, tuple[int, ...]] = {}
            for shard in shards:
                is_safetensors = shard.suffix == ".safetensors"
                shapes.update(
                    safetensors_shapes(shard) if is_safetensors else read_torch_summary(shard, trust=trust)[1]
                )
            return shapes
    elif checkpoint.kind != "custom":
        return read_torch_summary(checkpoint.path, trust=trust)[1]
    state, _ = read_state_dict(checkpoint, trust=trust)  # refused: a load_func's file is its own business
    return tensor_shapes(state)


def load_checkpoint(
    model: nn.Module,
    checkpoint: Checkpoint,
    *,
    trust: bool = False,
    load_func: Callable[[nn.Module, Path], Any] | None = None,
) -> nn.Module:
    """Load a checkpoint's weights into ``model`` and return the model to use.

    With ``load_func`` (Captum's ``TracInCP`` style), ``load_func(model, checkpoint.path)`` does it
    all; it returns the model to use, or anything else (None, a learning rate) meaning ``model``.
    A Hugging Face Trainer folder and a transformers ``PreTrainedModel`` give
    ``type(model).from_pretrained(folder)`` (on the model's device, in its train/eval mode), which must
    have the given model's keys and shapes (the folder's ``config.json`` builds it). Otherwise
    the state dict (:func:`read_state_dict`) loads into ``model`` in place, after stripping
    DataParallel's ``module.`` when every key carries it, the LightningModule's attribute (``model.``)
    when every key carries it and the rest then fit, or adding the model's own prefix to a Trainer
    folder's keys when that makes them fit (a wrapper around a Hugging Face model).

    Args:
        model: The model of the checkpoints' architecture.
        checkpoint: From :func:`find_checkpoints`.
        trust: Allow a full pickle of a torch file that weights-only loading refuses (runs its code).
        load_func: The user's own loading function.

    Returns:
        The model holding the checkpoint's weights.

    Raises:
        CheckpointError: unreadable or refused, or the weights do not fit the model (:func:`check_fits`).
    """
    if load_func is not None:
        result = load_func(model, checkpoint.path)
        return result if isinstance(result, nn.Module) else model
    if not isinstance(model, nn.Module):
        raise CheckpointError(
            f"checkpoint {checkpoint.name!r} loads into an nn.Module, not a {type(model).__name__}; "
            "for another kind of model give a load_func (--load-func module:fn)"
        )
    if checkpoint.kind == "hf-trainer" and _is_pretrained_model(model):
        return _from_pretrained(model, checkpoint)
    state, _ = read_state_dict(checkpoint, trust=trust)
    state = adapt_keys(state, set(model.state_dict()), checkpoint.kind)
    check_fits(model, state, checkpoint)
    model.load_state_dict(state)
    return model


def _is_pretrained_model(model: Any) -> bool:
    transformers = sys.modules.get("transformers")
    return transformers is not None and isinstance(model, transformers.PreTrainedModel)


def _from_pretrained(model: nn.Module, checkpoint: Checkpoint) -> nn.Module:
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    try:
        with hf_progress_bars(sys.modules["transformers"], show=False):  # tracking shows its own bar
            loaded, info = type(model).from_pretrained(checkpoint.path, output_loading_info=True)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise CheckpointError(
            f"checkpoint {checkpoint.name!r} does not load as a {type(model).__name__}: {first[:300]}"
        ) from exc
    missing = list(info.get("missing_keys") or [])
    mismatched = list(info.get("mismatched_keys") or [])
    if missing or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys ({_few(missing)}), left randomly initialised")
        if mismatched:
            parts.append(f"{len(mismatched)} keys of another shape ({_few([str(m[0]) for m in mismatched])})")
        raise CheckpointError(
            f"checkpoint {checkpoint.name!r} does not fit the {type(model).__name__}: {'; '.join(parts)}"
        )
    check_fits(model, loaded.state_dict(), checkpoint)  # the folder's config.json built the same model
    return loaded.to(device).train(model.training)


def adapt_keys(state: dict[str, Any], model_keys: set[str], kind: str) -> dict[str, Any]:
    """Strip (or add) the prefix by which a checkpoint's keys differ from the model's, where the format explains it.

    DataParallel's ``module.`` is stripped whenever every key carries it; a Lightning checkpoint's
    common first component (the LightningModule attribute holding the network) when every key
    carries it and the stripped keys are exactly the model's; a Trainer folder's keys get the
    model's own common first component when that makes them exactly the model's. Anything else is
    left for :func:`check_fits` to report.
    """
    if set(state) == model_keys:
        return state
    if state and all(key.startswith("module.") for key in state):
        state = {key[len("module.") :]: value for key, value in state.items()}
    if set(state) == model_keys or not state:
        return state
    if kind == "lightning":
        prefix = _common_first_component(state)
        if prefix and {key[len(prefix) :] for key in state} == model_keys:
            return {key[len(prefix) :]: value for key, value in state.items()}
    if kind == "hf-trainer":
        prefix = _common_first_component(model_keys)
        if prefix and {prefix + key for key in state} == model_keys:
            return {prefix + key: value for key, value in state.items()}
    return state


def _common_first_component(keys: Iterable[str]) -> str | None:
    firsts = {key.split(".", 1)[0] for key in keys if "." in key}
    keys = list(keys)
    if len(firsts) == 1 and all("." in key for key in keys):
        return next(iter(firsts)) + "."
    return None


def _dotted_prefixes(keys: Sequence[str]) -> list[str]:
    """Every dotted prefix (``"a."``, ``"a.b."`` ...) that all ``keys`` start with, shortest first."""
    if not keys:
        return []
    parts = keys[0].split(".")[:-1]
    found = []
    for n in range(1, len(parts) + 1):
        prefix = ".".join(parts[:n]) + "."
        if all(key.startswith(prefix) for key in keys):
            found.append(prefix)
        else:
            break
    return found


def _prefix_hint(state_keys: set[str], model_keys: set[str]) -> str:
    """Advice when the keys differ by one prefix: every checkpoint key (or every model key) carries it."""
    for prefix in _dotted_prefixes(sorted(state_keys)):
        stripped = {key[len(prefix) :] for key in state_keys}
        if len(stripped & model_keys) * 2 >= len(model_keys):
            return (
                f"; every checkpoint key starts with {prefix!r}: strip that prefix "
                f"(a load_func / --load-func calling model.load_state_dict({{k.removeprefix({prefix!r}): v ...}}))"
            )
    for prefix in _dotted_prefixes(sorted(model_keys)):
        added = {prefix + key for key in state_keys}
        if len(added & model_keys) * 2 >= len(model_keys):
            return (
                f"; every model key starts with {prefix!r} and the checkpoint's do not: the checkpoint holds the "
                f"inner model, so load it into model.{prefix.rstrip('.')} (or give a load_func / --load-func)"
            )
    return ""


def _few(keys: Iterable[str], n: int = 3) -> str:
    keys = sorted(keys)
    return ", ".join(repr(k) for k in keys[:n]) + (", ..." if len(keys) > n else "")


def check_fits(model: nn.Module, state: Mapping[str, Any], checkpoint: Checkpoint) -> None:
    """Raise unless ``state`` holds exactly the model's keys with the model's shapes.

    Raises:
        CheckpointError: one line naming the missing and unexpected keys (the first few and their
            counts) and the prefix to strip or add when every key differs by one, or the first key
            whose shape differs with both shapes (and how many more do).
    """
    own = model.state_dict()
    model_keys, state_keys = set(own), set(state)
    missing, unexpected = model_keys - state_keys, state_keys - model_keys
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys ({_few(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys ({_few(unexpected)})")
        raise CheckpointError(
            f"checkpoint {checkpoint.name!r} does not fit the model: {' and '.join(parts)}"
            + _prefix_hint(state_keys, model_keys)
        )
    wrong = [
        key
        for key in sorted(model_keys)
        if isinstance(state[key], torch.Tensor) and tuple(state[key].shape) != tuple(own[key].shape)
    ]
    if wrong:
        key = wrong[0]
        more = f" (and {len(wrong) - 1} more keys of another shape)" if len(wrong) > 1 else ""
        raise CheckpointError(
            f"checkpoint {checkpoint.name!r} does not fit the model: {key!r} has shape "
            f"{tuple(state[key].shape)} in the checkpoint and {tuple(own[key].shape)} in the model{more}"
        )


def check_same_architecture(
    checkpoints: Sequence[Checkpoint],
    read: Callable[[Checkpoint], Mapping[str, Any]] | None = None,
    *,
    trust: bool = False,
) -> None:
    """Raise if the checkpoints do not all hold the same keys with the same shapes (a folder mixing architectures).

    Args:
        checkpoints: From :func:`find_checkpoints`.
        read: ``read(checkpoint)`` -> its state dict (tensors) or shapes (tuples); default
            :func:`read_shapes` (safetensors headers only; torch files memory-mapped).
        trust: Passed to the default reader.

    Raises:
        CheckpointError: naming the first checkpoint and the first one that differs from it, and how.
    """
    if any(checkpoint.kind == "custom" for checkpoint in checkpoints):
        return  # a load_func's files are its own business
    reader = read if read is not None else (lambda c: read_shapes(c, trust=trust))
    reference: dict[str, tuple[int, ...]] | None = None
    first: Checkpoint | None = None
    for checkpoint in checkpoints:
        got = reader(checkpoint)
        if isinstance(got, tuple):  # read_state_dict's (state, metadata)
            got = got[0]
        shapes = _shapes(got)
        if reference is None or first is None:
            reference, first = shapes, checkpoint
            continue
        lacks, extra = set(reference) - set(shapes), set(shapes) - set(reference)
        if lacks or extra:
            parts = []
            if lacks:
                parts.append(f"lacks {len(lacks)} of its keys ({_few(lacks)})")
            if extra:
                parts.append(f"has {len(extra)} others ({_few(extra)})")
            raise CheckpointError(
                f"checkpoints {first.name!r} and {checkpoint.name!r} hold different architectures: "
                f"{checkpoint.name!r} {' and '.join(parts)}; track the checkpoints of one model at a time"
            )
        wrong = [key for key in sorted(reference) if reference[key] != shapes[key]]
        if wrong:
            key = wrong[0]
            raise CheckpointError(
                f"checkpoints {first.name!r} and {checkpoint.name!r} hold different architectures: {key!r} has "
                f"shape {reference[key]} in the first and {shapes[key]} in the second"
                + (f" (and {len(wrong) - 1} more keys)" if len(wrong) > 1 else "")
                + "; track the checkpoints of one model at a time"
            )


def _shapes(state: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    shapes = {
        key: tuple(value.shape) if isinstance(value, torch.Tensor) else tuple(value)
        for key, value in state.items()
        if isinstance(value, (torch.Tensor, tuple, list, torch.Size))
    }
    if shapes and all(key.startswith("module.") for key in shapes):
        shapes = {key[len("module.") :]: value for key, value in shapes.items()}
    return shapes
