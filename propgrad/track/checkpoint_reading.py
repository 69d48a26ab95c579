"""Reading checkpoint files without running code from them: torch pickles, safetensors, Hugging Face folders.

``torch.load(weights_only=True)`` rebuilds tensors and plain containers only, so no code from the
file runs; it refuses any other object the pickle names. Real training checkpoints hold a few such
objects beside the weights (Lightning's hyper-parameters: an ``argparse.Namespace``, a loss module,
a path; callback states), so :func:`read_torch_file` then reads the file again with torch's own
weights-only unpickler, each refused class or function replaced by an inert :class:`OpaqueObject`
class that only records its arguments (a ``dict`` or ``list`` subclass such as Lightning's
``AttributeDict`` becomes a plain dict or list): nothing is imported and nothing the file names is
called, and the state dict (tensors only) comes out whole. Modules ``os``, ``sys``, ``posix`` and ``nt`` stay
refused (torch blocks them outright). A full pickle, which imports and runs what the file names,
happens only when the caller trusts the file (``trust=True``, ``--trust-checkpoint``).

Finding and ordering checkpoints needs only a file's step, epoch and tensor shapes:
:func:`read_torch_summary` reads a plain state dict's zip from its pickle alone, with the C
unpickler restricted to the few names such a pickle holds (every tensor a shape-only meta tensor,
no byte of the weights read), and any other file as above.

Every failure is one :class:`CheckpointError` naming the file and why (empty, truncated, an
image, not a checkpoint, refused).
"""

from __future__ import annotations

import collections
import io
import json
import math
import pickle
import re
import sys
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from propgrad.errors import PropgradError

__all__ = [
    "HF_WEIGHT_FILES",
    "STATE_KEYS",
    "TRUST_HINT",
    "CheckpointError",
    "OpaqueObject",
    "as_epoch",
    "as_step",
    "describe_unloadable",
    "extract_state_dict",
    "hf_metadata",
    "hf_weight_file",
    "hf_weight_shards",
    "load_weights_only",
    "plain_metadata",
    "read_hf_folder",
    "read_safetensors",
    "read_torch_file",
    "read_torch_state",
    "read_torch_summary",
    "read_trainer_state",
    "safetensors_shapes",
    "tensor_shapes",
]

TRUST_HINT = "pass --trust-checkpoint (trust=True in Python) only if you trust the file: a full pickle runs its code"
"""The one advice for a pickle that weights-only loading refuses."""

HF_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
"""The weight files of a Hugging Face ``save_pretrained`` / Trainer checkpoint folder, in the order they are tried."""

STATE_KEYS = ("state_dict", "model_state_dict", "model")
"""Keys of a checkpoint dictionary that hold the model's state dict, in the order they are tried."""

_MAGIC = {b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"GIF8": "a GIF image", b"%PDF": "a PDF file"}
_STATE_DICT_FILE = "a file written by torch.save(model.state_dict(), path)"
_REFUSED_GLOBAL = re.compile(r"GLOBAL (\S+?) was not an allowed global")
_MAX_OPAQUE_ROUNDS = 64


class CheckpointError(PropgradError, ValueError):
    """A checkpoint that cannot be found, read, ordered or loaded into the model; the message says which and why."""


class OpaqueObject:
    """Stands in for an object whose class a checkpoint names but weights-only loading does not rebuild.

    One subclass per refused global (``global_name`` is its dotted name). Creating one only stores
    the arguments and state the pickle gives; nothing of the named class is imported or run.
    """

    global_name: ClassVar[str] = "?"
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    state: Any

    def __new__(cls, *args: Any, **kwargs: Any) -> OpaqueObject:
        instance = super().__new__(cls)
        instance.args = args
        instance.kwargs = kwargs
        instance.state = None
        return instance

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<{self.global_name}, not rebuilt>"


class _OpaqueContainer(OpaqueObject):
    """Stands in for a ``dict`` or ``list`` subclass (Lightning's ``AttributeDict``): a plain dict or list."""

    container: ClassVar[type] = dict

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
        return cls.container()


def _opaque_class(global_name: str, container: type | None = None) -> type[OpaqueObject]:
    module, _, name = global_name.rpartition(".")
    namespace: dict[str, Any] = {"global_name": global_name, "__module__": module or "?"}
    if container is None:
        return type(name or global_name, (OpaqueObject,), namespace)
    return type(name or global_name, (_OpaqueContainer,), {**namespace, "container": container})


_CONTAINER_REFUSAL = re.compile(r"Can only (SETITEMS?|append|extend)[^<]*but got <class '([^']+)'>")


def _is_zip(path: Path) -> bool:
    with path.open("rb") as file:
        return file.read(4) == b"PK\x03\x04"


def _torch_load(path: Path, opaque: dict[str, type[OpaqueObject]] | None = None, *, full: bool = False) -> Any:
    """torch.load on the CPU, memory-mapped when the file is a zip (the tensors' bytes are read when used)."""
    mmap = _is_zip(path)
    with warnings.catch_warnings(record=True) as caught:  # torch warns about odd pickles it then refuses
        warnings.simplefilter("always")
        if full:
            loaded = torch.load(path, map_location="cpu", weights_only=False, mmap=mmap)
        elif opaque:
            with torch.serialization.safe_globals([(cls, name) for name, cls in opaque.items()]):
                loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        else:
            loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    for warning in caught:
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return loaded


def describe_unloadable(path: Path, exc: BaseException, expected: str = _STATE_DICT_FILE) -> str:
    """Why ``path`` could not be loaded, for an error message (empty, an image, truncated, not a checkpoint ...).

    Args:
        path: The file.
        exc: What loading it raised.
        expected: What the file should have been, said when it is an image or a PDF.
    """
    try:
        with path.open("rb") as file:
            head = file.read(8)
    except OSError as err:
        return f"cannot read it ({err.strerror or err})"
    if not head:
        return "the file is empty"
    for magic, kind in _MAGIC.items():
        if head.startswith(magic):
            return f"it is {kind}; expected {expected}"
    text = str(exc)
    if "TorchScript" in text:
        return "it is a TorchScript model (torch.jit.save), not a state dict; load it with a load_func"
    if head.startswith(b"PK\x03\x04") and zipfile.is_zipfile(path) and not _has_data_pkl(path):
        return "it is a zip archive, but not one torch.save wrote (no data.pkl record)"
    if isinstance(exc, RuntimeError) and "zip" in text.lower():
        return "it is truncated or corrupted (its zip archive cannot be read); download or save it again"
    if isinstance(exc, EOFError):
        return "it ends too early (truncated); download or save it again"
    unpickler = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", text)
    if unpickler:
        return f"it is a pickle that weights_only=True cannot read ({unpickler.group(1).strip()[:200]})"
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__)
    return f"torch.load failed ({type(exc).__name__}: {first[:200]})"


def _has_data_pkl(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("data.pkl") for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


_LOAD_ERRORS = (RuntimeError, EOFError, OSError, ValueError, IndexError, KeyError, TypeError, AttributeError)


def load_weights_only(path: Path, name: str, refused_advice: str, expected: str = _STATE_DICT_FILE) -> Any:
    """``torch.load(path, weights_only=True)``; any failure becomes one :class:`CheckpointError` starting with ``name``.

    Args:
        path: The file.
        name: How the message names the file, e.g. ``"--weights 'model.pt'"``.
        refused_advice: What to do about a pickle that would import something (ends the message).
        expected: What the file should have been (for :func:`describe_unloadable`).

    Raises:
        CheckpointError: the file cannot be loaded that way; the message says why, on one line.
    """
    try:
        return _torch_load(path)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL (\S+)", str(exc))
        if found:
            raise CheckpointError(
                f"{name} was refused: loading it would import {found.group(1).rstrip('.,')}, and only tensors and "
                f"plain containers are loaded (weights_only=True, so no code from the file runs); {refused_advice}"
            ) from exc
        raise CheckpointError(
            f"{name} is not a PyTorch checkpoint: {describe_unloadable(path, exc, expected)}"
        ) from exc
    except _LOAD_ERRORS as exc:
        raise CheckpointError(
            f"{name} is not a PyTorch checkpoint: {describe_unloadable(path, exc, expected)}"
        ) from exc


def read_torch_file(path: Path, *, trust: bool = False) -> tuple[Any, tuple[str, ...]]:
    """Load a ``torch.save`` file without running code from it; a full pickle only with ``trust``.

    Weights-only first; if the pickle names classes or functions that refuses, again with each of
    them an inert :class:`OpaqueObject` (see the module docstring). If even that fails (a blocked
    module such as ``os``, an opcode the weights-only unpickler lacks), the file is refused, or,
    with ``trust``, unpickled fully.

    Returns:
        ``(object, opaque)``: what the file holds and the dotted names of the globals that became
        :class:`OpaqueObject` classes (empty when plain weights-only loading worked or ``trust`` loaded it fully).

    Raises:
        CheckpointError: not a checkpoint (empty, truncated, an image ...), or refused without ``trust``.
    """
    name = f"checkpoint {str(path)!r}"
    try:
        return _torch_load(path), ()
    except pickle.UnpicklingError as exc:
        if "GLOBAL " not in str(exc):  # not a refusal: no torch file at all (a plain pickle, ...)
            if trust:
                return _full_load(path), ()
            raise CheckpointError(
                f"{name} is not a PyTorch checkpoint: {describe_unloadable(path, exc, _TRACK_EXPECTED)}"
            ) from exc
        refusal: BaseException = exc
    except _LOAD_ERRORS as exc:
        raise CheckpointError(
            f"{name} is not a PyTorch checkpoint: {describe_unloadable(path, exc, _TRACK_EXPECTED)}"
        ) from exc
    opaque: dict[str, type[OpaqueObject]] = {}
    if _is_zip(path):
        try:
            opaque = {g: _opaque_class(g) for g in torch.serialization.get_unsafe_globals_in_checkpoint(path)}
        except _LOAD_ERRORS:
            opaque = {}
    for _ in range(_MAX_OPAQUE_ROUNDS):
        try:
            return _torch_load(path, opaque), tuple(sorted(opaque))
        except pickle.UnpicklingError as exc:
            refusal = exc
            container = _CONTAINER_REFUSAL.search(str(exc))
            if container is not None and container.group(2) in opaque:  # a dict or list subclass
                kind = dict if container.group(1).startswith("SETITEM") else list
                if issubclass(opaque[container.group(2)], _OpaqueContainer):
                    break
                opaque[container.group(2)] = _opaque_class(container.group(2), kind)
                continue
            found = _REFUSED_GLOBAL.search(str(exc))
            refused = None if found is None else found.group(1)
            if refused is not None and "." not in refused:
                refused = f"builtins.{refused}"  # torch's message drops the module of builtins
            if refused is None or refused in opaque:
                break
            opaque[refused] = _opaque_class(refused)
        except _LOAD_ERRORS as exc:
            refusal = exc
            break
    if trust:
        return _full_load(path), ()
    raise CheckpointError(
        f"{name} was refused: weights-only loading (no code from the file runs) cannot read it "
        f"({_refusal_reason(refusal)}); {TRUST_HINT}"
    ) from refusal


def _refusal_reason(exc: BaseException) -> str:
    text = str(exc)
    blocked = re.search(r"GLOBAL (\S+) whose module (\S+) is blocked", text)
    if blocked:
        return f"it names {blocked.group(1)}, and module {blocked.group(2)} is never loaded"
    unsupported = _REFUSED_GLOBAL.search(text)
    if unsupported:
        return f"it names {unsupported.group(1)}, which weights-only loading does not rebuild"
    reason = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", text)
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("Weights only load")]
    return (reason.group(1) if reason else lines[0] if lines else type(exc).__name__)[:200]


def read_torch_state(path: Path, *, trust: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """The state dict inside a ``torch.save`` file and the file's plain metadata (:func:`plain_metadata`).

    Without ``trust``, as :func:`read_torch_file` and :func:`extract_state_dict` give it; with
    ``trust``, a file whose weights are a pickled object (``torch.save(model)``) is unpickled fully.
    Besides :func:`plain_metadata`, the metadata of a checkpoint dictionary holds ``state_key`` (where
    the state dict was), ``checkpoint_keys`` (its top-level keys) and ``opaque_objects`` (the globals
    that were not rebuilt).

    Raises:
        CheckpointError: unreadable, refused, or no state dict in it.
    """
    loaded, opaque = read_torch_file(path, trust=trust)
    try:
        state, key = extract_state_dict(loaded, f"checkpoint {str(path)!r}")
    except CheckpointError:
        if not (trust and opaque):
            raise
        loaded, opaque = _full_load(path), ()
        state, key = extract_state_dict(loaded, f"checkpoint {str(path)!r}")
    return state, _file_metadata(loaded, key, opaque)


def _file_metadata(loaded: Any, key: str | None, opaque: tuple[str, ...]) -> dict[str, Any]:
    """:func:`read_torch_state`'s metadata of what a file holds, its state dict found under ``key``."""
    metadata = plain_metadata(loaded, key)
    if key is not None:
        metadata["state_key"] = key
        metadata["checkpoint_keys"] = [str(k) for k in loaded]
    if opaque:
        metadata["opaque_objects"] = list(opaque)
    return metadata


_TRACK_EXPECTED = "a checkpoint written by torch.save, Lightning, safetensors or a Hugging Face Trainer"


def tensor_shapes(state: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """The shape of every tensor of a state dict, by key (other entries, such as ``_extra_state``, left out)."""
    return {key: tuple(value.shape) for key, value in state.items() if isinstance(value, torch.Tensor)}


def read_torch_summary(path: Path, *, trust: bool = False) -> tuple[dict[str, Any], dict[str, tuple[int, ...]]]:
    """A ``torch.save`` file's metadata (as :func:`read_torch_state` gives it) and its state dict's tensor shapes.

    What finding and ordering checkpoints needs, in one pass over the file. A zip file that holds only
    tensors of the state dict in plain containers (``torch.save(model.state_dict())``,
    ``{"model_state_dict": ..., "epoch": ...}``) is read by :func:`_skim_torch_zip` from its pickle
    alone, without the tensors' bytes (about a hundredth of the time of torch's weights-only
    unpickler, which is written in Python); any other file (Lightning's objects, optimizer states,
    an older format, a damaged file) by :func:`read_torch_state`, with its errors.

    Raises:
        CheckpointError: as :func:`read_torch_state`.
    """
    skimmed = _skim_torch_zip(path)
    if skimmed is not None:
        return skimmed
    state, metadata = read_torch_state(path, trust=trust)
    return metadata, tensor_shapes(state)


_STORAGE_BYTES = {
    "DoubleStorage": 8,
    "FloatStorage": 4,
    "HalfStorage": 2,
    "BFloat16Storage": 2,
    "LongStorage": 8,
    "IntStorage": 4,
    "ShortStorage": 2,
    "CharStorage": 1,
    "ByteStorage": 1,
    "BoolStorage": 1,
    "ComplexFloatStorage": 8,
    "ComplexDoubleStorage": 16,
}
"""The storage classes a plain state dict's pickle names (``GLOBAL torch FloatStorage``) and their element sizes."""


class _NotSkimmable(Exception):
    """The file is not a plain state dict :func:`_skim_torch_zip` reads; :func:`read_torch_state` reads it."""


class _StorageName:
    """What the skimming unpickler gives for ``torch.<X>Storage``: its name and element size, nothing of torch's."""

    __slots__ = ("itemsize", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.itemsize = _STORAGE_BYTES[name]


class _StorageRef:
    """A storage the pickle refers to (a record of the zip): its element count, never its bytes."""

    __slots__ = ("numel",)

    def __init__(self, numel: int) -> None:
        self.numel = numel


class _SkimmingUnpickler(pickle.Unpickler):
    """The C unpickler restricted to what a plain state dict's pickle names; every tensor becomes a meta tensor.

    ``find_class`` gives only ``collections.OrderedDict``, stand-ins for ``torch._utils._rebuild_tensor_v2``
    and ``_rebuild_parameter`` and the names of the storage classes; anything else stops the skim
    (:class:`_NotSkimmable`), nothing is imported. A storage reference must name a record of the zip
    holding at least its bytes. The tensors are shape-only (``device="meta"``: no memory, no data read).
    """

    def __init__(self, data: bytes, records: Mapping[str, int]) -> None:
        super().__init__(io.BytesIO(data))
        self.records = records
        self.tensors: list[torch.Tensor] = []

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return self._rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return self._rebuild_parameter
        if module == "torch" and name in _STORAGE_BYTES:
            return _StorageName(name)
        raise _NotSkimmable(f"{module}.{name}")

    def persistent_load(self, pid: Any) -> _StorageRef:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise _NotSkimmable("an unknown persistent id")
        _, kind, key, _, numel = pid
        if not isinstance(kind, _StorageName) or not isinstance(numel, int) or numel < 0:
            raise _NotSkimmable("an unknown storage")
        if self.records.get(str(key), -1) < numel * kind.itemsize:
            raise _NotSkimmable(f"storage {key!r} missing or short")
        return _StorageRef(numel)

    def _rebuild_tensor(self, storage: Any, offset: Any, size: Any, stride: Any, *rest: Any) -> torch.Tensor:
        shape = tuple(size) if isinstance(size, (tuple, list)) else None
        if not isinstance(storage, _StorageRef) or shape is None or not all(isinstance(d, int) for d in shape):
            raise _NotSkimmable("an unusual tensor")
        tensor = torch.empty(shape, device="meta")
        self.tensors.append(tensor)
        return tensor

    def _rebuild_parameter(self, data: Any, *rest: Any) -> torch.Tensor:
        if not isinstance(data, torch.Tensor):
            raise _NotSkimmable("an unusual parameter")
        return data


def _skim_torch_zip(path: Path) -> tuple[dict[str, Any], dict[str, tuple[int, ...]]] | None:
    """:func:`read_torch_summary` of a plain state dict's zip from its pickle alone, or None for any other file.

    The pickle is read by :class:`_SkimmingUnpickler`; the result goes through :func:`extract_state_dict`
    and :func:`plain_metadata` as :func:`read_torch_state`'s does. None (read it fully) unless every tensor
    is one of the state dict's (a one-element tensor elsewhere is metadata whose value needs the bytes).
    """
    try:
        if not _is_zip(path):
            return None
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            pickles = [i.filename for i in infos if i.filename.count("/") == 1 and i.filename.endswith("/data.pkl")]
            if len(pickles) != 1:
                return None
            prefix = pickles[0][: -len("data.pkl")]
            sizes = {
                i.filename[len(prefix) + 5 :]: i.file_size for i in infos if i.filename.startswith(prefix + "data/")
            }
            order = f"{prefix}byteorder"
            if order in archive.namelist() and archive.read(order).decode("ascii", "replace") != sys.byteorder:
                return None
            unpickler = _SkimmingUnpickler(archive.read(pickles[0]), sizes)
            loaded = unpickler.load()
        state, key = extract_state_dict(loaded, f"checkpoint {str(path)!r}")
    except Exception:  # noqa: BLE001 - anything unusual is read by read_torch_state, which says what is wrong
        return None
    in_state = {id(v) for v in state.values() if isinstance(v, torch.Tensor)}
    if len(unpickler.tensors) != len(in_state) or any(id(t) not in in_state for t in unpickler.tensors):
        return None
    return _file_metadata(loaded, key, ()), tensor_shapes(state)


def _full_load(path: Path) -> Any:
    try:
        return _torch_load(path, full=True)
    except (ImportError, AttributeError, pickle.UnpicklingError) as exc:
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise CheckpointError(
            f"checkpoint {str(path)!r} cannot be unpickled even when trusted: {type(exc).__name__}: {first[:200]} "
            "(install the code that saved it, or re-save the weights with torch.save(model.state_dict(), path))"
        ) from exc
    except _LOAD_ERRORS as exc:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is not a PyTorch checkpoint: {describe_unloadable(path, exc, _TRACK_EXPECTED)}"
        ) from exc


def _opaque_name(value: Any) -> str | None:
    if isinstance(value, OpaqueObject):
        return type(value).global_name
    if isinstance(value, type) and issubclass(value, OpaqueObject):
        return value.global_name
    return None


def extract_state_dict(loaded: Any, name: str) -> tuple[dict[str, Any], str | None]:
    """The model's state dict inside what a torch checkpoint holds, and the key it was under (None: bare).

    A bare state dict (every value a tensor), a dict holding it under ``state_dict``,
    ``model_state_dict`` or ``model`` (Lightning, the paper code, common training scripts), or an
    ``nn.Module`` (a whole pickled model, from a trusted full pickle).

    Args:
        loaded: What the file holds.
        name: How messages name the checkpoint, e.g. ``"checkpoint 'a.pt'"``.

    Raises:
        CheckpointError: no state dict in it; the message says what the file holds instead.
    """
    if isinstance(loaded, nn.Module):
        return dict(loaded.state_dict()), None
    opaque = _opaque_name(loaded)
    if opaque is not None:
        raise CheckpointError(_pickled_object(name, opaque))
    if not isinstance(loaded, Mapping):
        raise CheckpointError(
            f"{name} holds a {type(loaded).__name__}, not a state dict; expected a state dict or a dict holding one "
            f"under {', '.join(repr(k) for k in STATE_KEYS)} (save it with torch.save(model.state_dict(), path))"
        )
    if loaded and all(isinstance(value, torch.Tensor) for value in loaded.values()):
        return _checked_state(dict(loaded), name), None
    for key in STATE_KEYS:
        if key not in loaded:
            continue
        inner = loaded[key]
        if isinstance(inner, nn.Module):
            return dict(inner.state_dict()), key
        opaque = _opaque_name(inner)
        if opaque is not None:
            raise CheckpointError(_pickled_object(f"{name}[{key!r}]", opaque))
        if isinstance(inner, Mapping) and inner:
            return _checked_state(dict(inner), f"{name}[{key!r}]"), key
    keys = ", ".join(repr(k) for k in list(loaded)[:8]) + (" ..." if len(loaded) > 8 else "")
    raise CheckpointError(
        f"{name} holds a dict with keys {keys} but no state dict: expected tensors, or a state dict under "
        f"{', '.join(repr(k) for k in STATE_KEYS)}; for another layout give load_func (--load-func module:fn)"
    )


def _pickled_object(name: str, global_name: str) -> str:
    return (
        f"{name} holds a pickled {global_name} object, not a state dict of tensors, and weights-only loading does "
        f"not rebuild objects; re-save it with torch.save(model.state_dict(), path), or {TRUST_HINT}"
    )


def _checked_state(state: dict[str, Any], name: str) -> dict[str, Any]:
    for key, value in state.items():
        if not isinstance(key, str):
            raise CheckpointError(f"{name} is not a state dict: key {key!r} is a {type(key).__name__}, not a str")
        if not isinstance(value, torch.Tensor) and not key.endswith("_extra_state"):
            kind = _opaque_name(value) or type(value).__name__
            raise CheckpointError(f"{name} is not a state dict: {key!r} holds a {kind}, not a tensor")
    return state


def plain_metadata(loaded: Any, skip: str | None) -> dict[str, Any]:
    """The small plain entries of a checkpoint dictionary (epoch, step, performance, settings), JSON-ready.

    Numbers, strings, booleans, one-element tensors (as numbers) and small lists and dicts of them;
    the state dict (key ``skip``), optimizer, scheduler and loop states and anything else are left out.
    """
    if not isinstance(loaded, Mapping) or skip is None:
        return {}
    found = {}
    for key, value in loaded.items():
        if not isinstance(key, str) or key == skip or key == "loops" or "optimizer" in key or "scheduler" in key:
            continue
        plain = _plain(value, depth=3)
        if plain is not _NOT_PLAIN:
            found[key] = plain
    return found


_NOT_PLAIN = object()


def _plain(value: Any, depth: int) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 and not value.is_complex() else _NOT_PLAIN
    if depth == 0:
        return _NOT_PLAIN
    if isinstance(value, Mapping) and len(value) <= 64:
        items = {str(k): _plain(v, depth - 1) for k, v in value.items()}
        return {k: v for k, v in items.items() if v is not _NOT_PLAIN}
    if isinstance(value, (list, tuple)) and len(value) <= 64:
        items_list = [_plain(v, depth - 1) for v in value]
        return _NOT_PLAIN if any(v is _NOT_PLAIN for v in items_list) else items_list
    return _NOT_PLAIN


def read_safetensors(path: Path, *, tensors: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """A ``*.safetensors`` file's tensors (or, with ``tensors=False``, none) and its header's metadata.

    Raises:
        CheckpointError: not a safetensors file (empty, truncated, something else).
    """
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as file:
            metadata = dict(file.metadata() or {})
            state = {key: file.get_tensor(key) for key in file.keys()} if tensors else {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        if path.exists() and path.stat().st_size == 0:
            why = "the file is empty"
        else:
            why = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)[:200]
        raise CheckpointError(f"checkpoint {str(path)!r} is not a readable safetensors file: {why}") from exc
    return state, metadata


def safetensors_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """The tensor shapes of a ``*.safetensors`` file, from its header only."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as file:
            return {key: tuple(file.get_slice(key).get_shape()) for key in file.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"checkpoint {str(path)!r} is not a readable safetensors file: {exc}") from exc


def hf_weight_file(folder: Path) -> Path | None:
    """The first of :data:`HF_WEIGHT_FILES` in ``folder``, or None."""
    return next((folder / name for name in HF_WEIGHT_FILES if (folder / name).is_file()), None)


def hf_weight_shards(folder: Path) -> list[Path]:
    """The files holding a Hugging Face folder's weights: one file, or the shards an ``*.index.json`` lists.

    Raises:
        CheckpointError: no weights in the folder, or an unreadable index.
    """
    weights = hf_weight_file(folder)
    if weights is None:
        present = ", ".join(sorted(p.name for p in folder.iterdir())[:8]) or "nothing"
        raise CheckpointError(
            f"checkpoint folder {str(folder)!r} holds no model weights: expected one of {', '.join(HF_WEIGHT_FILES)} "
            f"(it holds {present})"
        )
    if not weights.name.endswith(".index.json"):
        return [weights]
    try:
        weight_map = json.loads(weights.read_text(encoding="utf-8"))["weight_map"]
        shards = sorted(set(weight_map.values()))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"checkpoint index {str(weights)!r} is not a weight index: {exc}") from exc
    missing = [shard for shard in shards if not (folder / shard).is_file()]
    if missing:
        raise CheckpointError(f"checkpoint index {str(weights)!r} lists missing shards: {', '.join(missing[:4])}")
    return [folder / shard for shard in shards]


def read_trainer_state(folder: Path) -> dict[str, Any]:
    """The ``trainer_state.json`` of a Hugging Face Trainer checkpoint folder ({} when there is none).

    Raises:
        CheckpointError: the file is not a JSON object.
    """
    path = folder / "trainer_state.json"
    if not path.is_file():
        return {}
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{str(path)!r} is not valid JSON ({exc}); the Trainer writes it: save it again") from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"{str(path)!r} holds a {type(state).__name__}, not the Trainer's state object")
    return state


def read_hf_folder(folder: Path, *, trust: bool = False) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The weights of a Hugging Face ``save_pretrained``/Trainer folder and its metadata from ``trainer_state.json``.

    Returns:
        ``(state, metadata)``; metadata holds ``global_step``, ``epoch``, ``best_metric`` and ``log`` (the
        ``log_history`` entries of that step) when the folder has a ``trainer_state.json``.
    """
    state: dict[str, torch.Tensor] = {}
    for shard in hf_weight_shards(folder):
        if shard.suffix == ".safetensors":
            state.update(read_safetensors(shard)[0])
        else:
            state.update(read_torch_state(shard, trust=trust)[0])
    return state, hf_metadata(read_trainer_state(folder))


def hf_metadata(trainer_state: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata of a Trainer checkpoint: step, epoch, best metric and the log entries of that step."""
    metadata = {key: trainer_state[key] for key in ("global_step", "epoch", "best_metric") if key in trainer_state}
    step = trainer_state.get("global_step")
    history = trainer_state.get("log_history")
    if isinstance(history, list):
        metadata["log"] = [e for e in history if isinstance(e, dict) and e.get("step") == step]
    return metadata


def as_step(value: Any) -> int | None:
    """``value`` (an int, a whole float, a one-element tensor or a numeric string) as a step, or None."""
    found = _number(value)
    return int(found) if found is not None and float(found).is_integer() else None


def as_epoch(value: Any) -> float | None:
    """``value`` (a number, a one-element tensor or a numeric string) as an epoch (an int stays an int), or None."""
    return _number(value)


def _number(value: Any) -> int | float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            return None
        value = value.item()
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text) if re.fullmatch(r"[+-]?\d+", text) else float(text)
        except ValueError:
            return None
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return value
