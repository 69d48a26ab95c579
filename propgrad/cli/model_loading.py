"""Loading a model from a command-line spec: ``module:callable``, a TorchScript file, ``clip:PATH_OR_ID`` or
``hf:PATH_OR_ID``."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from propgrad.core.progress import hf_progress_bars
from propgrad.core.validation import check_device
from propgrad.errors import InputFileError, InvalidParameterError, PropgradWarning

CLIP_PREFIX = "clip:"
HF_PREFIX = "hf:"


@dataclass(frozen=True)
class ImagePreparation:
    """How a model's images are prepared: resize, centre crop (on the [0, 1] image) and normalisation.

    Attributes:
        size: The resize: an int (the shorter side, aspect ratio kept), (height, width) (exactly
            that size), or None (keep the size).
        crop: (height, width) of the centre crop after resizing, or None (no crop).
        mean: Per-channel mean of the normalisation (3 values), or None (no normalisation).
        std: Per-channel standard deviation (3 values), or None.
    """

    size: int | tuple[int, int] | None = None
    crop: tuple[int, int] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    @classmethod
    def from_processor(cls, processor: Any) -> ImagePreparation:
        """Read the resize, centre crop, mean and std of a Hugging Face image processor.

        The processor's rescaling to [0, 1] needs no counterpart (propgrad's images are [0, 1]
        already); ``do_resize``, ``do_center_crop`` and ``do_normalize`` switch the steps off. The
        resize itself is propgrad's (bilinear, antialiased when shrinking:
        :func:`propgrad.core.images.resize`), whatever the processor's ``resample``.

        Raises:
            InvalidParameterError: the processor has no ``image_mean``/``image_std`` or no readable size.
        """
        from propgrad.explain.zero_shot import ClipPreprocess  # one reader of Hugging Face image settings

        read = ClipPreprocess.from_processor(processor)
        crop = read.crop_size
        identity = read.mean == (0.0, 0.0, 0.0) and read.std == (1.0, 1.0, 1.0)
        return cls(
            size=read.size,
            crop=None if crop is None else (int(crop[0]), int(crop[1])),
            mean=None if identity else read.mean,
            std=None if identity else read.std,
        )


class HfImageClassifier(nn.Module):
    """A Hugging Face image classifier (``AutoModelForImageClassification``) as a module of pixel values -> logits.

    Attributes:
        model: The ``*ForImageClassification`` model.
        image_preparation: Its image processor's resize, crop and normalisation (None without a
            processor): ``propgrad explain`` prepares the image and normalises it with these unless
            ``--size``, ``--crop`` or ``--normalize`` say otherwise.
    """

    def __init__(self, model: nn.Module, image_preparation: ImagePreparation | None = None) -> None:
        super().__init__()
        self.model = model
        self.image_preparation = image_preparation

    @property
    def labels(self) -> list[str] | None:
        """The class names of the model's config (``id2label``) in column order, or None if they do not cover it."""
        id2label = getattr(getattr(self.model, "config", None), "id2label", None) or {}
        names = {int(k): str(v) for k, v in id2label.items()}
        return [names[k] for k in range(len(names))] if set(names) == set(range(len(names))) and names else None

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Normalised images (B, 3, H, W) -> logits (B, C)."""
        return self.model(pixel_values=pixel_values).logits


def load_model(
    spec: str,
    weights: str | Path | None = None,
    device: str | torch.device = "cpu",
    descriptors: str | Path | None = None,
    show_progress: bool = False,
) -> Callable[..., torch.Tensor]:
    """Resolve a model spec into an eval-mode callable on ``device``.

    Args:
        spec: ``package.module:attribute`` (an ``nn.Module`` instance, or a class/factory called
            without arguments), the path of a TorchScript file (``torch.jit.save``),
            ``clip:PATH_OR_ID``: a Hugging Face CLIP model and processor (a folder written by
            ``save_pretrained`` or a hub id), wrapped as a zero-shot classifier with one output
            column per descriptor of ``descriptors``, or ``hf:PATH_OR_ID``: a Hugging Face image
            classifier (ViT, ConvNeXt ...) with its image processor (:func:`load_hf_classifier`).
        weights: Optional state-dict checkpoint, loaded with ``weights_only=True`` (no code runs).
        device: Where the model runs; it must exist here (a clear error for ``"cuda"`` on a
            CPU-only build).
        descriptors: The ``--descriptors`` JSON file of a ``clip:`` model,
            ``{"class name": ["descriptor 1", ...], ...}``.
        show_progress: Show transformers' progress bars while a ``clip:`` or ``hf:`` model loads (or downloads).

    Returns:
        The model, in eval mode.

    Raises:
        InputFileError: if a path in ``spec`` or ``weights`` does not exist.
        InvalidParameterError: if ``spec`` cannot be resolved or does not give a callable, the device does
            not exist, or ``weights`` is not a loadable state dict (a pickle that would run code,
            a truncated file, an image ...) or does not fit the model.
    """
    device = check_device(device, "--device")
    if spec.startswith(CLIP_PREFIX):
        return load_clip(spec, descriptors, weights, device, show_progress=show_progress)
    if descriptors is not None:
        raise InvalidParameterError(
            f"--descriptors is for zero-shot models (--model clip:PATH_OR_ID), not --model {spec!r}; a model "
            "of your own can group its outputs by returning a propgrad.explain.zero_shot.ZeroShotClassifier"
        )
    if spec.startswith(HF_PREFIX):
        return load_hf_classifier(spec, weights, device, show_progress=show_progress)
    path = Path(spec)
    if ":" not in spec or path.suffix in (".pt", ".pth", ".ts", ".jit"):
        if not path.exists():
            raise InputFileError(
                f"--model {spec!r}: no such TorchScript file; expected 'package.module:callable' or a file "
                "written by torch.jit.save"
            )
        try:
            model: Any = torch.jit.load(str(path), map_location=device)
        except RuntimeError as exc:
            raise InvalidParameterError(
                f"--model {spec!r} is not a TorchScript file ({exc.__class__.__name__}); "
                "plain state dicts go in --weights together with a 'module:callable' model"
            ) from exc
    else:
        module_name, _, attr = spec.partition(":")
        try:
            module = import_module(module_name)
        except ImportError as exc:
            raise InvalidParameterError(f"--model {spec!r}: cannot import module {module_name!r}: {exc}") from exc
        if not hasattr(module, attr):
            raise InvalidParameterError(f"--model {spec!r}: module {module_name!r} has no attribute {attr!r}")
        model = getattr(module, attr)
        if not isinstance(model, nn.Module):
            if not callable(model):
                raise InvalidParameterError(f"--model {spec!r} is a {type(model).__name__}, not a model or a factory")
            model = model()
    if weights is not None:
        model = _load_weights(model, Path(weights))
    if isinstance(model, nn.Module):
        model = model.to(device).eval()
    if not callable(model):
        raise InvalidParameterError(f"--model {spec!r} gave a {type(model).__name__}, which is not callable")
    return model


def load_clip(
    spec: str,
    descriptors: str | Path | None,
    weights: str | Path | None,
    device: torch.device,
    *,
    show_progress: bool = False,
) -> Callable[..., torch.Tensor]:
    """``clip:PATH_OR_ID`` with ``--descriptors FILE``: a :class:`~propgrad.explain.zero_shot.ZeroShotClassifier`.

    Raises:
        InvalidParameterError: no path or id, no ``--descriptors``, ``--weights`` given, a bad descriptors
            file (naming ``--descriptors``), or a model that cannot be loaded.
        InputFileError: the descriptors file does not exist.
    """
    from propgrad.explain.zero_shot import ZeroShotClassifier, load_descriptors

    source = spec[len(CLIP_PREFIX) :].strip()
    if not source:
        raise InvalidParameterError(
            "--model clip: needs a folder or Hugging Face id after 'clip:', e.g. clip:openai/clip-vit-base-patch32"
        )
    if descriptors is None:
        raise InvalidParameterError(
            f"--model {spec!r} needs --descriptors FILE.json: a JSON object mapping each class name to its "
            'descriptors, e.g. {"elephant": ["toy elephant", "elephant"], "giraffe": ["toy giraffe", "giraffe"]}'
        )
    if weights is not None:
        raise InvalidParameterError("--weights does not apply to --model clip:...; the folder or id holds the weights")
    texts = load_descriptors(descriptors, f"--descriptors {str(descriptors)!r}")
    return ZeroShotClassifier.from_pretrained(source, texts, device=device, show_progress=show_progress)


def load_hf_classifier(
    spec: str, weights: str | Path | None, device: torch.device, *, show_progress: bool = False
) -> HfImageClassifier:
    """``hf:PATH_OR_ID``: ``AutoModelForImageClassification`` and ``AutoImageProcessor`` from one folder or hub id.

    The model runs in eval mode on ``device`` and returns its logits; the processor's resize,
    centre crop and normalisation become the model's :class:`ImagePreparation`. A folder without
    an image processor loads with a warning (the image is then neither resized to the model's
    size nor normalised unless ``--size``, ``--crop`` and ``--normalize`` say how).

    Raises:
        InvalidParameterError: no path or id, ``--weights`` given, or no image classifier loads from it
            (the message says why, on one line).
        InputFileError: a path (starting with ``/``, ``.`` or ``~``) that does not exist.
        MissingDependencyError: transformers is not installed.
    """
    source = spec[len(HF_PREFIX) :].strip()
    if not source:
        raise InvalidParameterError(
            "--model hf: needs a folder or Hugging Face id after 'hf:', e.g. hf:google/vit-base-patch16-224"
        )
    if weights is not None:
        raise InvalidParameterError("--weights does not apply to --model hf:...; the folder or id holds the weights")
    if source.startswith(("/", ".", "~")) and not Path(source).expanduser().exists():
        raise InputFileError(
            f"--model {spec!r}: no such folder; give a folder written by save_pretrained or a Hugging Face id"
        )
    if source.startswith("~"):
        source = str(Path(source).expanduser())
    transformers = _import_transformers()
    with hf_progress_bars(transformers, show_progress):
        try:
            model = transformers.AutoModelForImageClassification.from_pretrained(source)
        except (OSError, ValueError, KeyError) as exc:
            raise InvalidParameterError(
                f"--model {spec!r}: cannot load a Hugging Face image classifier from {source!r}: {_first_line(exc)}"
            ) from exc
        try:
            processor = transformers.AutoImageProcessor.from_pretrained(source)
        except (OSError, ValueError, KeyError) as exc:
            warnings.warn(
                f"--model {spec!r} has no image processor ({_first_line(exc)}); the image is neither resized to the "
                "model's input size nor normalised: give --size, --crop and --normalize",
                PropgradWarning,
                stacklevel=2,
            )
            processor = None
    preparation = None if processor is None else ImagePreparation.from_processor(processor)
    return HfImageClassifier(model, preparation).to(device).eval()


def _import_transformers() -> Any:
    try:
        import transformers
    except ImportError as exc:
        from propgrad.explain.zero_shot import MissingDependencyError

        raise MissingDependencyError(
            "Hugging Face models need transformers: pip install 'propgrad[clip]' (or pip install transformers)"
        ) from exc
    return transformers


def _first_line(exc: BaseException) -> str:
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


def _load_weights(model: Any, path: Path) -> Any:
    if not path.exists():
        raise InputFileError(f"--weights {str(path)!r}: no such file")
    if path.is_dir():
        raise InvalidParameterError(
            f"--weights {str(path)!r} is a folder; give the checkpoint file saved by torch.save"
        )
    if not isinstance(model, nn.Module):
        raise InvalidParameterError("--weights needs a model that is an nn.Module")
    state = read_checkpoint(path)
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise InvalidParameterError(
            f"--weights {str(path)!r} holds a {type(state).__name__}, not a state dict; save the model's "
            "weights with torch.save(model.state_dict(), path)"
        )
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, KeyError) as exc:
        raise InvalidParameterError(f"--weights {str(path)!r} does not fit the model: {exc}") from exc
    return model


def read_checkpoint(path: Path) -> Any:
    """``torch.load(path, weights_only=True)``; any failure becomes one ``InvalidParameterError`` naming the file.

    ``weights_only=True`` never runs code from the file: a pickle that would (a malicious file, or
    a checkpoint holding whole objects rather than tensors) is refused, and so is anything that is
    no checkpoint at all (an image, a truncated download, an empty file). The reading and its
    messages are :func:`propgrad.track.checkpoint_reading.load_weights_only`'s, worded for ``--weights``.

    Raises:
        InvalidParameterError: the file cannot be loaded; the message says why, on one line.
    """
    from propgrad.track.checkpoint_reading import CheckpointError, load_weights_only

    try:
        return load_weights_only(
            path,
            f"--weights {str(path)!r}",
            "save the weights with torch.save(model.state_dict(), path)",
            expected=_WEIGHTS_EXPECTED,
        )
    except CheckpointError as exc:
        raise InvalidParameterError(str(exc)) from exc


_WEIGHTS_EXPECTED = "--weights takes a file written by torch.save(model.state_dict(), path)"
