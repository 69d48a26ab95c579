"""Zero-shot models with several text descriptors per class: cosine similarities, one column per descriptor.

A zero-shot classifier compares an image embedding with text embeddings. Following the paper's
CLIP experiments (Sec. 4.4, Appendix E, Tab. 13), each class has several descriptors ("toy
elephant", "elephant", "picture of an elephant" ...), and every descriptor is an output column:
C = classes × descriptors cosine similarities, class-major (column ``k * D + d`` is descriptor d
of class k). :class:`ClassGrouping` says which columns belong to which class, and
:class:`ZeroShotClassifier` is the forward wrapper; ``PropertyGradient`` reads its grouping and
aggregates the explanation per class.

Encoders plug in three ways:

- a Hugging Face ``CLIPModel`` (or any model with ``get_image_features``/``get_text_features``) and
  its processor: :meth:`ZeroShotClassifier.from_clip`, or :meth:`ZeroShotClassifier.from_pretrained`
  with a folder or hub id;
- any pair of plain callables ``encode_image(images) -> (B, E)`` and ``encode_text(texts) -> (T, E)``,
  which is how an open_clip model plugs in (``model.encode_image`` with its normalisation in
  ``preprocess``, and ``lambda texts: model.encode_text(tokenizer(texts))``):
  :meth:`ZeroShotClassifier.from_text_encoder`;
- precomputed text embeddings (C, E) or (K, D, E): the constructor.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from propgrad.core.progress import hf_progress_bars
from propgrad.core.validation import check_int
from propgrad.errors import InputFileError, InvalidParameterError, ModelOutputError, PropgradError

__all__ = [
    "ClassGrouping",
    "ClipPreprocess",
    "ZeroShotClassifier",
    "check_descriptors",
    "load_descriptors",
    "resolve_grouping",
]


class MissingDependencyError(PropgradError, ImportError):
    """An optional dependency (transformers for CLIP) is not installed."""


def check_descriptors(descriptors: Any, name: str = "descriptors") -> dict[str, list[str]]:
    """Check a mapping ``class name -> list of descriptors``: non-empty names, equally long non-empty lists.

    Args:
        descriptors: The mapping, e.g. ``{"elephant": ["toy elephant", "elephant"], "giraffe": [...]}``.
        name: How the argument is called in error messages (``"--descriptors FILE"`` on the command line).

    Returns:
        A plain ``dict`` of lists of strings, in the given order.

    Raises:
        InvalidParameterError: not a mapping of strings to lists of strings.
        InvalidParameterError: no classes, an empty class name or descriptor, an empty list, or lists of
            different lengths (every class needs the same number of descriptors, so that the
            per-class mean and standard deviation are over equally many columns).
    """
    if not isinstance(descriptors, Mapping):
        raise InvalidParameterError(
            f"{name} must map each class name to a list of descriptors, e.g. "
            f'{{"elephant": ["toy elephant", "elephant"]}}, got {type(descriptors).__name__}'
        )
    if not descriptors:
        raise InvalidParameterError(f"{name} is empty; give at least one class with its descriptors")
    checked: dict[str, list[str]] = {}
    for cls, texts in descriptors.items():
        if not isinstance(cls, str) or not cls.strip():
            raise InvalidParameterError(f"{name}: class names must be non-empty strings, got {cls!r}")
        if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence):
            raise InvalidParameterError(
                f"{name}: class {cls!r} must have a list of descriptors, got {type(texts).__name__} {texts!r}"
            )
        if not texts:
            raise InvalidParameterError(f"{name}: class {cls!r} has an empty list of descriptors; give at least one")
        bad = [t for t in texts if not isinstance(t, str) or not t.strip()]
        if bad:
            raise InvalidParameterError(
                f"{name}: class {cls!r} has a descriptor that is not a non-empty string: {bad[0]!r}"
            )
        checked[cls] = list(texts)
    lengths = {cls: len(texts) for cls, texts in checked.items()}
    if len(set(lengths.values())) > 1:
        first = next(iter(lengths))
        other = next(cls for cls, n in lengths.items() if n != lengths[first])
        raise InvalidParameterError(
            f"{name}: descriptor lists have different lengths ({first!r}: {lengths[first]}, {other!r}: "
            f"{lengths[other]}); give every class the same number of descriptors"
        )
    return checked


def load_descriptors(path: str | Path, name: str | None = None) -> dict[str, list[str]]:
    """Read a descriptors JSON file, ``{"class name": ["descriptor 1", ...], ...}`` (see :func:`check_descriptors`).

    Raises:
        InputFileError: no such file.
        InvalidParameterError: not valid JSON, or not a valid descriptor mapping.
    """
    path = Path(path)
    label = name or f"descriptors file {str(path)!r}"
    if not path.is_file():
        raise InputFileError(f"{label}: no such file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidParameterError(
            f'{label} is not valid JSON ({exc}); expected {{"class name": ["descriptor 1", ...], ...}}'
        ) from exc
    try:
        return check_descriptors(data, label)
    except TypeError as exc:
        raise InvalidParameterError(str(exc)) from exc


@dataclass(frozen=True)
class ClassGrouping:
    """Which output columns belong to which class: K classes of D columns each.

    Attributes:
        class_names: The K class names.
        columns: K tuples of D output-column indices (no column twice).
        column_labels: A label per output column (descriptor texts), or None.
    """

    class_names: tuple[str, ...]
    columns: tuple[tuple[int, ...], ...]
    column_labels: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if len(self.class_names) != len(self.columns) or not self.columns:
            raise InvalidParameterError(
                f"a class grouping needs one list of columns per class, got {len(self.class_names)} names and "
                f"{len(self.columns)} lists"
            )
        sizes = {len(cols) for cols in self.columns}
        if len(sizes) != 1 or 0 in sizes:
            raise InvalidParameterError(
                f"every class must hold the same number (>= 1) of columns, got sizes {[len(c) for c in self.columns]}"
            )
        flat = [c for cols in self.columns for c in cols]
        if len(set(flat)) != len(flat):
            raise InvalidParameterError("a class grouping holds an output column twice")
        if min(flat) < 0:
            raise InvalidParameterError(f"output column indices must be >= 0, got {min(flat)}")

    @classmethod
    def from_descriptors(cls, descriptors: Mapping[str, Sequence[str]], name: str = "descriptors") -> ClassGrouping:
        """The class-major grouping of a descriptor mapping: column ``k * D + d`` is descriptor d of class k."""
        checked = check_descriptors(descriptors, name)
        d = len(next(iter(checked.values())))
        return cls(
            class_names=tuple(checked),
            columns=tuple(tuple(range(k * d, (k + 1) * d)) for k in range(len(checked))),
            column_labels=tuple(text for texts in checked.values() for text in texts),
        )

    @property
    def n_classes(self) -> int:
        """K."""
        return len(self.class_names)

    @property
    def n_descriptors(self) -> int:
        """D, the columns per class."""
        return len(self.columns[0])

    @property
    def n_columns(self) -> int:
        """The smallest number of output columns this grouping fits (its largest index + 1)."""
        return max(c for cols in self.columns for c in cols) + 1

    def index(self) -> torch.Tensor:
        """The (K, D) tensor of column indices."""
        return torch.tensor(self.columns, dtype=torch.long)

    def descriptor_labels(self) -> list[list[str]]:
        """The (K, D) labels of the grouped columns (``"column j"`` without column labels)."""
        labels = self.column_labels
        return [[labels[j] if labels is not None else f"column {j}" for j in cols] for cols in self.columns]

    def check_fits(self, n_columns: int, name: str = "classes") -> None:
        """Refuse a grouping that names a column the outputs do not have.

        Raises:
            InvalidParameterError: naming ``name``, the largest column and the number of outputs.
        """
        if self.n_columns > n_columns:
            raise InvalidParameterError(
                f"{name} groups output column {self.n_columns - 1}, but the model has {n_columns} output "
                f"column{'s' if n_columns != 1 else ''}"
            )
        if self.column_labels is not None and len(self.column_labels) != n_columns:
            raise InvalidParameterError(
                f"{name} labels {len(self.column_labels)} columns, but the model has {n_columns} output columns"
            )

    def gather(self, outputs: torch.Tensor) -> torch.Tensor:
        """Outputs (..., C) regrouped as (..., K, D)."""
        index = self.index().to(outputs.device)
        return outputs[..., index.reshape(-1)].reshape(*outputs.shape[:-1], *index.shape)

    def mean_std(self, outputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-class mean and standard deviation over the descriptors: (..., C) -> two (..., K).

        The standard deviation is the population one (``ddof=0``, numpy's default): the spread of
        the D descriptors used, defined for D = 1 (zero).
        """
        grouped = self.gather(outputs)
        return grouped.mean(-1), grouped.std(-1, unbiased=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {
            "class_names": list(self.class_names),
            "columns": [list(cols) for cols in self.columns],
            "descriptors": self.descriptor_labels(),
        }


def resolve_grouping(classes: Any, forward_func: Any = None, name: str = "classes") -> ClassGrouping | None:
    """The class grouping to aggregate an explanation by: ``classes`` if given, else the model's own.

    Args:
        classes: None, a :class:`ClassGrouping`, or a mapping ``class name -> list of output-column
            indices`` (equally many per class).
        forward_func: The model; a :class:`ZeroShotClassifier` (or any object with a
            ``class_grouping`` attribute holding a :class:`ClassGrouping`) brings its own.
        name: The argument's name for errors.

    Raises:
        InvalidParameterError: ``classes`` is neither, or its column lists are bad.
    """
    if classes is None:
        own = getattr(forward_func, "class_grouping", None)
        return own if isinstance(own, ClassGrouping) else None
    if isinstance(classes, ClassGrouping):
        return classes
    if not isinstance(classes, Mapping) or not classes:
        raise InvalidParameterError(
            f"{name} must be None, a ClassGrouping or a mapping class name -> list of output columns, e.g. "
            f"{{'cat': [0, 1], 'dog': [2, 3]}}, got {type(classes).__name__}"
        )
    columns = []
    for cls, cols in classes.items():
        if not isinstance(cls, str) or not cls:
            raise InvalidParameterError(f"{name}: class names must be non-empty strings, got {cls!r}")
        if isinstance(cols, (str, bytes)) or not isinstance(cols, Sequence) or not cols:
            raise InvalidParameterError(
                f"{name}: class {cls!r} must have a non-empty list of output columns, got {cols!r}"
            )
        if not all(isinstance(c, int) and not isinstance(c, bool) for c in cols):
            raise InvalidParameterError(f"{name}: class {cls!r} must list integer output columns, got {list(cols)!r}")
        columns.append(tuple(int(c) for c in cols))
    if len({len(c) for c in columns}) > 1:
        raise InvalidParameterError(
            f"{name}: classes hold different numbers of columns ({[len(c) for c in columns]}); give every class "
            "the same number"
        )
    try:
        return ClassGrouping(class_names=tuple(classes), columns=tuple(columns))
    except ValueError as exc:
        raise InvalidParameterError(f"{name}: {exc}") from exc


_RESAMPLE = {0: "nearest", 2: "bilinear", 3: "bicubic"}  # PIL's codes, as Hugging Face processors store them


class ClipPreprocess:
    """CLIP's image preprocessing on tensors: resize, centre crop, normalise, batched on the input's device.

    The same steps as a Hugging Face ``CLIPImageProcessor`` (resize the shorter side, crop the
    centre, subtract the mean and divide by the standard deviation), on float [0, 1] tensors
    (B, 3, H, W) with ``torch.nn.functional.interpolate`` (antialiased when shrinking), so a whole
    batch is preprocessed in one call on whatever device it lives on, with no PIL round trip.

    Args:
        mean: Per-channel mean (3 values).
        std: Per-channel standard deviation (3 positive values).
        size: Resize target: an int (the shorter side, aspect ratio kept), (height, width), or None (no resize).
        crop_size: (height, width) of the centre crop, an int for a square, or None (no crop).
        mode: Interpolation: ``"bicubic"`` (CLIP's), ``"bilinear"`` or ``"nearest"``.
    """

    def __init__(
        self,
        mean: Sequence[float],
        std: Sequence[float],
        size: int | tuple[int, int] | None = 224,
        crop_size: int | tuple[int, int] | None = 224,
        mode: str = "bicubic",
    ) -> None:
        if len(mean) != 3 or len(std) != 3 or not all(float(s) > 0 for s in std):
            raise InvalidParameterError(
                f"mean and std need 3 values each (std > 0), got mean={list(mean)}, std={list(std)}"
            )
        if mode not in ("bicubic", "bilinear", "nearest"):
            raise InvalidParameterError(f"mode must be 'bicubic', 'bilinear' or 'nearest', got {mode!r}")
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.size = size if size is None or isinstance(size, int) else (int(size[0]), int(size[1]))
        self.crop_size = (crop_size, crop_size) if isinstance(crop_size, int) else crop_size
        for label, value in (("size", self.size), ("crop_size", self.crop_size)):
            parts = () if value is None else (value,) if isinstance(value, int) else value
            if not all(isinstance(v, int) and v > 0 for v in parts):
                raise InvalidParameterError(f"{label} must hold positive integers, got {value!r}")
        self.mode = mode

    @classmethod
    def from_processor(cls, processor: Any) -> ClipPreprocess:
        """Read mean, std, sizes and interpolation from a Hugging Face processor or image processor."""
        image_processor = getattr(processor, "image_processor", processor)
        mean, std = getattr(image_processor, "image_mean", None), getattr(image_processor, "image_std", None)
        if mean is None or std is None:
            raise InvalidParameterError(
                f"processor {type(processor).__name__} has no image_mean/image_std; pass a CLIP processor or "
                "image processor, or build ClipPreprocess(mean, std, ...) yourself"
            )
        size: int | tuple[int, int] | None = None
        if getattr(image_processor, "do_resize", True):
            size = _size_of(getattr(image_processor, "size", None), shortest=True)
        crop = None
        if getattr(image_processor, "do_center_crop", False):
            crop = _size_of(getattr(image_processor, "crop_size", None), shortest=False)
        if not getattr(image_processor, "do_normalize", True):
            mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
        resample = getattr(image_processor, "resample", 3)
        mode = _RESAMPLE.get(int(getattr(resample, "value", resample) or 3), "bicubic")
        return cls(mean=list(mean), std=list(std), size=size, crop_size=crop, mode=mode)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """[0, 1] images (B, 3, H, W) -> normalised model inputs (B, 3, h, w), on the images' device."""
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
            got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise InvalidParameterError(f"ClipPreprocess expects float images (B, 3, H, W), got {got}")
        x = images if images.is_floating_point() else images.float()
        h, w = x.shape[-2:]
        if self.size is not None:
            if isinstance(self.size, int):  # the shorter side to size, the longer one floored (as transformers)
                short, long = min(h, w), max(h, w)
                other = max(1, int(self.size * long / short))
                target = (self.size, other) if h <= w else (other, self.size)
            else:
                target = self.size
            if tuple(target) != (h, w):
                antialias = self.mode != "nearest" and (target[0] < h or target[1] < w)
                kwargs = {} if self.mode == "nearest" else {"align_corners": False, "antialias": antialias}
                x = F.interpolate(x, size=target, mode=self.mode, **kwargs).clamp(0.0, 1.0)
        if self.crop_size is not None:
            ch, cw = self.crop_size
            h, w = x.shape[-2:]
            if ch > h or cw > w:  # as Hugging Face does: pad with zeros to the crop size
                ph, pw = max(0, ch - h), max(0, cw - w)
                x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
                h, w = x.shape[-2:]
            top, left = (h - ch) // 2, (w - cw) // 2
            x = x[..., top : top + ch, left : left + cw]
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device)[:, None, None]
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device)[:, None, None]
        return (x - mean) / std

    def __repr__(self) -> str:
        return f"ClipPreprocess(size={self.size}, crop_size={self.crop_size}, mode={self.mode!r})"


def _size_of(size: Any, *, shortest: bool) -> int | tuple[int, int] | None:
    """A Hugging Face size (dict or ``SizeDict``): the shorter side, or (height, width)."""
    if size is None:
        return None
    if isinstance(size, (int, float)):
        return int(size)
    fields = {
        key: (size.get(key) if isinstance(size, Mapping) else getattr(size, key, None))
        for key in ("shortest_edge", "height", "width")
    }
    short, height, width = (int(v) if v else 0 for v in fields.values())
    if shortest and short:
        return short
    if height and width:
        return height, width
    if short:
        return short
    raise InvalidParameterError(f"cannot read an image size from the processor's {size!r}")


def embeddings_of(out: Any, what: str) -> torch.Tensor:
    """The embedding tensor an encoder returned: a tensor, or a Hugging Face output object.

    transformers 4 returns tensors from ``get_image_features``/``get_text_features``; transformers 5
    returns a ``BaseModelOutputWithPooling`` whose ``pooler_output`` holds the projected embeddings
    (``image_embeds``/``text_embeds`` on a ``CLIPOutput``).

    Raises:
        ModelOutputError: naming ``what``, when no tensor can be found.
    """
    if isinstance(out, torch.Tensor):
        return out
    for key in ("image_embeds", "text_embeds", "pooler_output"):
        value = getattr(out, key, None)
        if isinstance(value, torch.Tensor):
            return value
    raise ModelOutputError(
        f"{what} must return a tensor of embeddings (batch, embedding_dim) or an output object with "
        f".pooler_output, got {type(out).__name__}"
    )


#: Text embeddings shorter than this have no direction: ``F.normalize`` (eps 1e-12) would not make them unit vectors.
MIN_EMBEDDING_NORM = 1e-12


def _refuse_zero_rows(flat: torch.Tensor, labels: Sequence[str]) -> None:
    """Refuse text embeddings (T, E) with a row of norm below :data:`MIN_EMBEDDING_NORM`, naming the texts.

    Normalised, such a row would be (near) zero, so its cosine similarity with every image would be
    0 and every explanation of that column flat, without a word.

    Raises:
        InvalidParameterError: naming the rows (and their descriptor texts).
    """
    zero = torch.nonzero(flat.float().norm(dim=-1) < MIN_EMBEDDING_NORM).flatten().tolist()
    if not zero:
        return
    named = ", ".join(f"{i} ({labels[i]!r})" if i < len(labels) else str(i) for i in zero[:5])
    raise InvalidParameterError(
        f"text_embeddings has {len(zero)} all-zero row(s) (norm below {MIN_EMBEDDING_NORM:g}): {named}"
        f"{' ...' if len(zero) > 5 else ''}; a zero vector has no direction, so its cosine similarity with every "
        "image would be 0 and every explanation of it flat. Check the text encoder"
    )


def _check_embeddings(out: Any, rows: int, dim: int | None, what: str) -> torch.Tensor:
    emb = embeddings_of(out, what)
    if emb.dim() != 2 or emb.shape[0] != rows or (dim is not None and emb.shape[1] != dim) or emb.shape[1] == 0:
        expected = f"({rows}, {dim})" if dim is not None else f"({rows}, embedding_dim)"
        raise ModelOutputError(f"{what} must return embeddings of shape {expected}, got {tuple(emb.shape)}")
    if not emb.is_floating_point() or emb.is_complex():
        raise ModelOutputError(f"{what} must return real floating-point embeddings, got dtype {emb.dtype}")
    if not torch.isfinite(emb).all():
        raise ModelOutputError(f"{what} returned NaN or Inf embeddings")
    return emb.detach()


def _owner_module(function: Any) -> nn.Module | None:
    """The ``nn.Module`` an encoder belongs to: the module itself, or the owner of a bound method."""
    if isinstance(function, nn.Module):
        return function
    owner = getattr(function, "__self__", None)
    return owner if isinstance(owner, nn.Module) else None


class ZeroShotClassifier(nn.Module):
    """Cosine similarities between image embeddings and text embeddings, one output column per descriptor.

    ``forward(images)`` maps [0, 1] images (B, 3, H, W) to (B, C) cosine similarities in [-1, 1],
    C = classes × descriptors, class-major. The images are preprocessed (``preprocess``) and
    encoded in chunks of ``batch_size`` (memory is bounded by the chunk, not by the batch), every
    chunk on the images' device. ``class_grouping`` (class names, descriptor labels, the class of
    each column) is what ``PropertyGradient`` aggregates the explanation by, and
    ``preferred_output_transform = "none"`` makes it score the raw similarities, as the paper does.

    Args:
        encode_image: Images (B, 3, h, w) after ``preprocess`` -> embeddings (B, E): a callable (an
            ``nn.Module``, a bound method such as open_clip's ``model.encode_image`` or Hugging Face's
            ``model.get_image_features``, whose module is registered so ``.to()`` and ``.eval()``
            reach it) returning a tensor or an output object with ``.pooler_output``.
        text_embeddings: Precomputed text embeddings, (C, E) class-major, or (K, D, E).
        descriptors: Mapping ``class name -> list of descriptors`` (the labels of the text
            embeddings, equally many per class), or None for "class k" with D = 1 per class ((C, E)) or
            "class k / descriptor d" ((K, D, E)).
        preprocess: Map from [0, 1] images to what ``encode_image`` eats (:class:`ClipPreprocess`
            for CLIP), or None.
        batch_size: Images encoded per call of ``encode_image``.

    Example:
        >>> model = ZeroShotClassifier.from_pretrained("openai/clip-vit-base-patch32", descriptors)
        >>> propgrad.PropertyGradient(model).attribute(image, source="frames", source_params={...})
    """

    preferred_output_transform = "none"

    def __init__(
        self,
        encode_image: Callable[[torch.Tensor], Any],
        text_embeddings: torch.Tensor,
        descriptors: Mapping[str, Sequence[str]] | None = None,
        *,
        preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
        batch_size: int = 64,
    ) -> None:
        super().__init__()
        if not callable(encode_image):
            raise InvalidParameterError(f"encode_image must be callable, got {type(encode_image).__name__}")
        if preprocess is not None and not callable(preprocess):
            raise InvalidParameterError(f"preprocess must be callable or None, got {type(preprocess).__name__}")
        self.batch_size = check_int(batch_size, "batch_size", hint="images encoded per call of encode_image")
        if not isinstance(text_embeddings, torch.Tensor) or text_embeddings.dim() not in (2, 3):
            got = tuple(text_embeddings.shape) if isinstance(text_embeddings, torch.Tensor) else type(text_embeddings)
            raise InvalidParameterError(f"text_embeddings must be a tensor (C, E) or (K, D, E), got {got}")
        if not text_embeddings.is_floating_point() or not torch.isfinite(text_embeddings).all():
            raise InvalidParameterError("text_embeddings must hold finite floating-point numbers")
        shape = text_embeddings.shape
        if 0 in shape:
            raise InvalidParameterError(f"text_embeddings must not be empty, got shape {tuple(shape)}")
        k, d = (shape[0], 1) if text_embeddings.dim() == 2 else (shape[0], shape[1])
        if descriptors is not None:
            grouping = ClassGrouping.from_descriptors(descriptors)
            if grouping.n_classes * grouping.n_descriptors != k * d:
                raise InvalidParameterError(
                    f"descriptors names {grouping.n_classes} classes × {grouping.n_descriptors} descriptors = "
                    f"{grouping.n_classes * grouping.n_descriptors} texts, but text_embeddings has shape "
                    f"{tuple(shape)} ({k * d} texts)"
                )
            if text_embeddings.dim() == 3 and (grouping.n_classes, grouping.n_descriptors) != (k, d):
                raise InvalidParameterError(
                    f"text_embeddings has shape {tuple(shape)} (K, D, E) but descriptors has "
                    f"{grouping.n_classes} classes of {grouping.n_descriptors}"
                )
        else:
            names = {}
            for i in range(k):
                names[f"class {i}"] = [f"class {i}" if d == 1 else f"class {i} / descriptor {j}" for j in range(d)]
            grouping = ClassGrouping.from_descriptors(names)
        self.class_grouping = grouping
        flat = text_embeddings.detach().reshape(k * d, shape[-1])
        _refuse_zero_rows(flat, grouping.column_labels or ())
        self.register_buffer("text_embeddings", F.normalize(flat.float(), dim=-1), persistent=False)
        owner = _owner_module(encode_image)
        if owner is not None:
            self.encoder = owner  # registered: .to(), .eval() and the device/dtype checks reach it
        self.__dict__["_encode_image"] = encode_image  # not registered twice when it is the module itself
        self.preprocess = preprocess

    @property
    def column_labels(self) -> tuple[str, ...]:
        """The C descriptor texts, class-major."""
        labels = self.class_grouping.column_labels
        assert labels is not None
        return labels

    @property
    def class_names(self) -> tuple[str, ...]:
        """The K class names."""
        return self.class_grouping.class_names

    @property
    def column_classes(self) -> torch.Tensor:
        """The class index (C,) of each output column."""
        d = self.class_grouping.n_descriptors
        return torch.arange(self.text_embeddings.shape[0]) // d

    @classmethod
    def from_text_encoder(
        cls,
        encode_image: Callable[[torch.Tensor], Any],
        encode_text: Callable[[list[str]], Any],
        descriptors: Mapping[str, Sequence[str]],
        *,
        preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
        batch_size: int = 64,
        text_batch_size: int = 256,
    ) -> ZeroShotClassifier:
        """Encode every descriptor with ``encode_text`` (in chunks of ``text_batch_size``, without gradients).

        Args:
            encode_image: As for the constructor.
            encode_text: A list of T strings -> embeddings (T, E) (a tensor or an output object
                with ``.pooler_output``); for open_clip, ``lambda texts: model.encode_text(tokenizer(texts))``.
            descriptors: Mapping ``class name -> list of descriptors``, equally many per class.
            preprocess: As for the constructor.
            batch_size: Images per call of ``encode_image``.
            text_batch_size: Texts per call of ``encode_text``.

        Raises:
            InvalidParameterError: bad descriptors (naming the class), or an encoder returning the
                wrong shape (naming ``encode_text``).
        """
        if not callable(encode_text):
            raise InvalidParameterError(f"encode_text must be callable, got {type(encode_text).__name__}")
        check_int(text_batch_size, "text_batch_size")
        grouping = ClassGrouping.from_descriptors(descriptors)
        texts = list(grouping.column_labels or ())
        chunks: list[torch.Tensor] = []
        owner = _owner_module(encode_text)
        modes = [(m, m.training) for m in owner.modules()] if owner is not None else []
        if owner is not None:
            owner.eval()
        try:
            with torch.no_grad():
                for start in range(0, len(texts), text_batch_size):
                    part = texts[start : start + text_batch_size]
                    dim = chunks[0].shape[1] if chunks else None
                    chunks.append(_check_embeddings(encode_text(part), len(part), dim, "encode_text").float().cpu())
        finally:
            for module, training in modes:
                module.training = training
        text = torch.cat(chunks)
        owner_image = _owner_module(encode_image)
        if owner_image is not None:
            for tensor in (*owner_image.parameters(), *owner_image.buffers()):
                text = text.to(tensor.device)
                break
        return cls(encode_image, text, grouping_descriptors(grouping), preprocess=preprocess, batch_size=batch_size)

    @classmethod
    def from_clip(
        cls,
        model: Any,
        processor: Any,
        descriptors: Mapping[str, Sequence[str]],
        *,
        batch_size: int = 64,
        text_batch_size: int = 256,
    ) -> ZeroShotClassifier:
        """Wrap a Hugging Face CLIP-like model (``get_image_features``/``get_text_features``) and its processor.

        The processor's tokenizer encodes the descriptors (padded, truncated to the model's
        length); its image settings become a :class:`ClipPreprocess`. Works with transformers 4
        (tensors) and 5 (output objects).

        Raises:
            InvalidParameterError: ``model`` has no ``get_image_features``/``get_text_features``, or ``processor``
                no tokenizer.
        """
        for method in ("get_image_features", "get_text_features"):
            if not callable(getattr(model, method, None)):
                raise InvalidParameterError(
                    f"model must be a CLIP-like model with .{method}(), got {type(model).__name__}"
                )
        tokenizer = getattr(processor, "tokenizer", processor)
        if not callable(tokenizer):
            raise InvalidParameterError(
                f"processor must be a CLIP processor or tokenizer, got {type(processor).__name__}"
            )

        def encode_text(texts: list[str]) -> Any:
            tokens = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
            device = next(iter(model.parameters())).device if isinstance(model, nn.Module) else None
            tokens = {key: value.to(device) if device is not None else value for key, value in tokens.items()}
            return model.get_text_features(**tokens)

        def encode_image(images: torch.Tensor) -> Any:
            return model.get_image_features(pixel_values=images)

        classifier = cls.from_text_encoder(
            encode_image,
            encode_text,
            descriptors,
            preprocess=ClipPreprocess.from_processor(processor),
            batch_size=batch_size,
            text_batch_size=text_batch_size,
        )
        if isinstance(model, nn.Module):
            classifier.encoder = model
            classifier.to(next(iter(model.parameters())).device)
        return classifier

    @classmethod
    def from_pretrained(
        cls,
        path_or_id: str | Path,
        descriptors: Mapping[str, Sequence[str]],
        *,
        device: str | torch.device = "cpu",
        batch_size: int = 64,
        text_batch_size: int = 256,
        show_progress: bool = False,
    ) -> ZeroShotClassifier:
        """Load a Hugging Face ``CLIPModel`` and its processor with ``from_pretrained(path_or_id)`` and wrap them.

        transformers' own progress bars (loading weights, downloads) show only with ``show_progress``.

        Raises:
            MissingDependencyError: transformers is not installed.
            InvalidParameterError: the folder or id cannot be loaded (the message says which and why).
        """
        try:
            import transformers
        except ImportError as exc:
            raise MissingDependencyError(
                "CLIP models need transformers: pip install 'propgrad[clip]' (or pip install transformers)"
            ) from exc
        source = str(path_or_id)
        try:
            with hf_progress_bars(transformers, show_progress):
                model = transformers.CLIPModel.from_pretrained(source)
                processor = transformers.AutoProcessor.from_pretrained(source)
        except (OSError, ValueError, KeyError) as exc:
            first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
            raise InvalidParameterError(f"cannot load a CLIP model and processor from {source!r}: {first}") from exc
        model = model.to(torch.device(device)).eval()
        return cls.from_clip(model, processor, descriptors, batch_size=batch_size, text_batch_size=text_batch_size)

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """L2-normalised image embeddings (B, E), encoded in chunks of ``batch_size`` on the images' device."""
        if not isinstance(images, torch.Tensor) or images.dim() != 4:
            got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise InvalidParameterError(f"images must be a tensor (B, 3, H, W), got {got}")
        dim = self.text_embeddings.shape[1]
        chunks = []
        for start in range(0, images.shape[0], self.batch_size):
            batch = images[start : start + self.batch_size]
            if self.preprocess is not None:
                batch = self.preprocess(batch)
            emb = _check_embeddings(self._encode_image(batch), batch.shape[0], dim, "encode_image")
            chunks.append(F.normalize(emb.float(), dim=-1))
        return torch.cat(chunks)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Cosine similarities (B, C) between each image and each descriptor, float32."""
        emb = self.encode_images(images)
        return emb @ self.text_embeddings.to(emb.device).T

    def extra_repr(self) -> str:
        g = self.class_grouping
        return f"classes={g.n_classes}, descriptors_per_class={g.n_descriptors}, batch_size={self.batch_size}"


def grouping_descriptors(grouping: ClassGrouping) -> dict[str, list[str]]:
    """The descriptor mapping of a class-major grouping (the inverse of :meth:`ClassGrouping.from_descriptors`)."""
    return dict(zip(grouping.class_names, grouping.descriptor_labels()))
