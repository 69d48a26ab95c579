"""Image I/O and small tensor helpers: load, save, resize, crop, normalise, bundled example images, masks.

Images are float tensors (3, H, W) in [0, 1] (RGBA: (4, H, W)); masks are float tensors (H, W)
in [0, 1]. Files are read with scikit-image (imageio/Pillow underneath) and written with Pillow.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from propgrad.core.atomic_files import atomic_write
from propgrad.core.validation import check_int
from propgrad.errors import InputFileError, InvalidParameterError

EXAMPLE_IMAGES: tuple[str, ...] = ("chelsea", "astronaut", "coffee", "rocket")
"""Colour images bundled with scikit-image (available offline)."""
_EXAMPLE_FILES: dict[str, str] = {
    "chelsea": "chelsea.png",
    "astronaut": "astronaut.png",
    "coffee": "coffee.png",
    "rocket": "rocket.jpg",
}
"""Each example image's file in scikit-image's ``data`` folder."""

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
"""Per-channel mean of ImageNet's training images, the usual :class:`Normalize` of torchvision's models."""
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
"""Per-channel standard deviation of ImageNet's training images."""

Size = int | tuple[int, int]

_BOMB_ADVICE = (
    "It may be a decompression bomb; if you trust the file, raise PIL.Image.MAX_IMAGE_PIXELS (None switches the "
    "guard off)"
)


def _check_size(size: Any, name: str = "size") -> tuple[int, int]:
    """Normalise ``size`` (an int for a square, or (height, width)) to a pair of positive ints."""
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        pair: tuple[Any, ...] = (size, size)
    elif isinstance(size, (tuple, list)) and len(size) == 2:
        pair = tuple(size)
    else:
        raise InvalidParameterError(f"{name} must be an int or a (height, width) pair, got {size!r}")
    if not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in pair):
        raise InvalidParameterError(f"{name} must hold positive integers, got {size!r}")
    return int(pair[0]), int(pair[1])


def to_unit_float(array: np.ndarray, name: str) -> np.ndarray:
    """Convert a uint8 / uint16 / bool / float array to float32 in [0, 1].

    Raises:
        ValueError: For other dtypes, or float data outside [0, 1].
    """
    if array.dtype == np.bool_:
        return array.astype(np.float32)
    if array.dtype in (np.uint8, np.uint16):
        return array.astype(np.float32) / float(np.iinfo(array.dtype).max)
    if np.issubdtype(array.dtype, np.floating):
        out = array.astype(np.float32)
        if not np.isfinite(out).all() or out.min() < -1e-4 or out.max() > 1 + 1e-4:
            raise InvalidParameterError(
                f"{name}: float image data must lie in [0, 1], got range [{np.nanmin(out):.3g}, {np.nanmax(out):.3g}]"
            )
        return np.clip(out, 0.0, 1.0)
    raise InvalidParameterError(
        f"{name}: unsupported pixel type {array.dtype}; expected uint8, uint16, bool or float in [0, 1]"
    )


def array_to_rgba(array: np.ndarray, name: str) -> torch.Tensor:
    """Convert an (H, W), (H, W, 1|2|3|4) array to an RGBA float tensor (4, H, W) in [0, 1].

    Grey becomes RGB by repetition; a missing alpha channel becomes fully opaque.
    """
    data = to_unit_float(np.asarray(array), name)
    if data.ndim == 2:
        data = data[:, :, None]
    if data.ndim != 3 or data.shape[2] not in (1, 2, 3, 4) or 0 in data.shape:
        raise InvalidParameterError(
            f"{name}: expected a grey, grey+alpha, RGB or RGBA image, got an array of shape {array.shape}"
        )
    channels = data.shape[2]
    colour = data[:, :, :1].repeat(3, axis=2) if channels <= 2 else data[:, :, :3]
    if channels in (2, 4):
        alpha = data[:, :, -1:]
    else:
        alpha = np.ones_like(data[:, :, :1])
    rgba = np.concatenate([colour, alpha], axis=2)
    return torch.from_numpy(np.ascontiguousarray(rgba.transpose(2, 0, 1)))


def check_image_header(path: Path) -> tuple[int, int] | None:
    """Refuse a decompression bomb from the file's header alone, before any pixel is decoded.

    Pillow's ``Image.open`` reads only the header. An image with more pixels than
    ``PIL.Image.MAX_IMAGE_PIXELS`` (about 89 million by default; None switches the guard off) is
    refused: a 13000 x 13000 PNG of ~160 KB would otherwise decode to 2.7 GB of float RGBA.

    Returns:
        ``(width, height)`` from the header, or None if Pillow does not recognise the format (it
        is then left to scikit-image to read or refuse).

    Raises:
        ValueError: For an image with too many pixels, naming the file and the limit.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():  # Pillow warns about (and past 2x the limit refuses) bombs
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                width, height = opened.size
    except Image.DecompressionBombError as err:  # more than twice the limit: Pillow's own refusal
        raise InvalidParameterError(
            f"image {path} has too many pixels: {str(err).rstrip('.')}. {_BOMB_ADVICE}"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):  # not an image Pillow knows
        return None
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and width * height > limit:
        raise InvalidParameterError(
            f"image {path} is {width}x{height} = {width * height:,} pixels, more than the limit of "
            f"{int(limit):,} pixels (PIL.Image.MAX_IMAGE_PIXELS). {_BOMB_ADVICE}"
        )
    return width, height


def _read(path: str | Path) -> np.ndarray:
    from skimage import io

    path = Path(path)
    if not path.exists():
        raise InputFileError(f"image file not found: {path}")
    if path.is_dir():
        raise InvalidParameterError(f"expected an image file, got a folder: {path}")
    check_image_header(path)
    try:
        with warnings.catch_warnings():  # imageio warns about legacy plugins it probes
            warnings.simplefilter("ignore", DeprecationWarning)
            return np.asarray(io.imread(str(path)))
    except Exception as err:  # imageio/Pillow raise many different types
        raise InvalidParameterError(
            f"could not read image {path} (not an image file, or a truncated or corrupt one): "
            f"{type(err).__name__}: {err}"
        ) from err


def load_rgba(path: str | Path, *, size: Size | None = None) -> torch.Tensor:
    """Load an image file as RGBA, keeping its alpha channel (opaque if it has none).

    Args:
        path: Image file (PNG, JPEG, TIFF ... anything scikit-image reads).
        size: Optional output size, an int (square) or (height, width).

    Returns:
        Float tensor (4, H, W) in [0, 1].

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If the file is not a readable image or has an unsupported layout.
    """
    rgba = array_to_rgba(_read(path), f"image {path}")
    return rgba if size is None else resize(rgba, size)


def load_image(path: str | Path, *, size: Size | None = None) -> torch.Tensor:
    """Load an image file as RGB float (3, H, W) in [0, 1]; alpha is dropped (see :func:`load_rgba`).

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If the file is not a readable image.
    """
    return load_rgba(path, size=size)[:3].contiguous()


def load_mask(path: str | Path, *, size: Size | None = None) -> torch.Tensor:
    """Load a mask image as float (H, W) in [0, 1]: its alpha channel if it has transparency,
    else the mean of its colour channels (white = 1)."""
    rgba = load_rgba(path, size=size)
    return rgba[3] if bool((rgba[3] < 1).any()) else rgba[:3].mean(dim=0)


def as_mask(mask: Any, name: str, *, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Check and convert a mask: a bool or float tensor (H, W) or (1, H, W) in [0, 1], or a path.

    Args:
        mask: The mask, or a path to a mask image (see :func:`load_mask`).
        name: Argument name used in error messages.
        size: If given, the required (H, W).

    Returns:
        Float tensor (H, W) in [0, 1] (float32 for bool input).
    """
    if isinstance(mask, (str, Path)):
        mask = load_mask(mask)
    if not isinstance(mask, torch.Tensor):
        raise InvalidParameterError(f"{name} must be a torch.Tensor (H, W) or a path, got {type(mask).__name__}")
    if mask.dim() == 3 and mask.shape[0] == 1:
        mask = mask[0]
    if mask.dim() != 2 or mask.numel() == 0:
        raise InvalidParameterError(f"{name} must have shape (H, W) or (1, H, W), got {tuple(mask.shape)}")
    if mask.dtype == torch.bool:
        mask = mask.float()
    elif not mask.is_floating_point():
        raise InvalidParameterError(f"{name} must be a bool or float tensor in [0, 1], got {mask.dtype}")
    elif not torch.isfinite(mask).all() or mask.min() < 0 or mask.max() > 1:
        raise InvalidParameterError(
            f"{name} must hold values in [0, 1], got range [{float(mask.min()):.3g}, {float(mask.max()):.3g}]"
        )
    if size is not None and tuple(mask.shape) != tuple(size):
        raise InvalidParameterError(f"{name} must match the image size {tuple(size)} (H, W), got {tuple(mask.shape)}")
    return mask


def resize(tensor: torch.Tensor, size: Size) -> torch.Tensor:
    """Resize (C, H, W) or (N, C, H, W) float images bilinearly (antialiased when shrinking).

    Args:
        tensor: Float image tensor; values are clamped to their original range afterwards.
        size: An int (square output) or (height, width).

    Returns:
        The resized tensor, same dtype and device (the input itself if the size already matches).
    """
    height, width = _check_size(size)
    if not isinstance(tensor, torch.Tensor) or tensor.dim() not in (3, 4):
        raise InvalidParameterError(
            "resize expects a tensor (C, H, W) or (N, C, H, W), got "
            f"{tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__}"
        )
    if not tensor.is_floating_point():
        raise InvalidParameterError(f"resize expects a float tensor, got {tensor.dtype}")
    if tuple(tensor.shape[-2:]) == (height, width):
        return tensor
    batch = tensor if tensor.dim() == 4 else tensor[None]
    shrink = height < batch.shape[-2] or width < batch.shape[-1]
    out = F.interpolate(batch, size=(height, width), mode="bilinear", align_corners=False, antialias=shrink)
    out = out.clamp(float(tensor.min()), float(tensor.max()))
    return out if tensor.dim() == 4 else out[0]


def resize_shorter_side(tensor: torch.Tensor, size: int) -> torch.Tensor:
    """Resize (C, H, W) or (N, C, H, W) images so the shorter side is ``size``, keeping the aspect ratio.

    The longer side is rounded to the nearest pixel (at least 1); see :func:`resize` for the
    interpolation.

    Raises:
        InvalidParameterError: ``size`` is not a positive integer, or ``tensor`` is no float image tensor.
    """
    side = check_int(size, "size", hint="the shorter side's length in pixels")
    if not isinstance(tensor, torch.Tensor) or tensor.dim() not in (3, 4):
        return resize(tensor, side)  # resize names what was wrong with the tensor
    h, w = tensor.shape[-2:]
    scale = side / min(h, w)
    return resize(tensor, (max(1, round(h * scale)), max(1, round(w * scale))))


def center_crop(tensor: torch.Tensor, size: Size, name: str = "crop") -> torch.Tensor:
    """The centre (height, width) of (C, H, W) or (N, C, H, W) images (offsets rounded down, as Hugging Face's).

    Args:
        tensor: The images.
        size: An int (a square crop) or (height, width); at most the image's size.
        name: How errors call ``size`` (``"--crop 224"`` in the command line).

    Returns:
        A view of the crop (the input itself when the sizes already match).

    Raises:
        InvalidParameterError: ``size`` is not positive, or larger than the image in either side
            (the message gives both sizes: crop after resizing, not instead of it).
    """
    height, width = _check_size(size, name)
    if not isinstance(tensor, torch.Tensor) or tensor.dim() not in (3, 4):
        got = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
        raise InvalidParameterError(f"center_crop expects a tensor (C, H, W) or (N, C, H, W), got {got}")
    h, w = tensor.shape[-2:]
    if height > h or width > w:
        raise InvalidParameterError(
            f"{name}: a {height} x {width} crop does not fit in the image of {h} x {w} pixels (height x width); "
            "crop at most the image's size (resize it first to crop a larger area)"
        )
    top, left = (h - height) // 2, (w - width) // 2
    return tensor[..., top : top + height, left : left + width]


class Normalize(nn.Module):
    """A model's input normalisation, ``(image - mean) / std`` per RGB channel, as a ``preprocess``.

    Sources intervene on [0, 1] images; this maps them to what a model trained on normalised
    inputs eats (``PropertyGradient(model, preprocess=Normalize(mean, std))``, or
    ``nn.Sequential(Normalize(mean, std), model)`` for a model of [0, 1] images). The images keep
    their device and dtype (mean and std are applied in it, so float64 images are exact).

    Attributes:
        mean: The three means, as Python floats.
        std: The three standard deviations.

    Args:
        mean: Three numbers, one per channel (ImageNet's: 0.485, 0.456, 0.406).
        std: Three positive numbers (ImageNet's: 0.229, 0.224, 0.225).

    Raises:
        InvalidParameterError: not three finite numbers each, or a std <= 0.
    """

    def __init__(self, mean: Any, std: Any) -> None:
        super().__init__()
        values = {"mean": _three_numbers(mean, "mean"), "std": _three_numbers(std, "std")}
        if min(values["std"]) <= 0:
            raise InvalidParameterError(
                f"std must hold 3 positive numbers (it divides each channel), got {list(values['std'])}"
            )
        self.mean, self.std = values["mean"], values["std"]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(3, H, W) or (B, 3, H, W) float images -> normalised images of the same shape and dtype."""
        if not isinstance(images, torch.Tensor) or images.dim() not in (3, 4) or images.shape[-3] != 3:
            got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise InvalidParameterError(f"Normalize expects RGB images (3, H, W) or (B, 3, H, W), got {got}")
        dtype = images.dtype if images.is_floating_point() else torch.float32
        mean = torch.tensor(self.mean, dtype=dtype, device=images.device)[:, None, None]
        std = torch.tensor(self.std, dtype=dtype, device=images.device)[:, None, None]
        return (images - mean) / std

    def extra_repr(self) -> str:
        mean, std = (", ".join(f"{v:g}" for v in values) for values in (self.mean, self.std))
        return f"mean=({mean}), std=({std})"


def _three_numbers(values: Any, name: str) -> tuple[float, float, float]:
    """Three finite numbers, one per RGB channel (a list, tuple, array or tensor)."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise InvalidParameterError(f"{name} must hold 3 numbers (one per RGB channel), got {values!r}")
    items = list(values.reshape(-1).tolist() if isinstance(values, (torch.Tensor, np.ndarray)) else values)
    numbers = [v for v in items if isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_))]
    if len(items) != 3 or len(numbers) != 3 or not all(np.isfinite(float(v)) for v in numbers):
        raise InvalidParameterError(
            f"{name} must hold 3 finite numbers (one per RGB channel), got {len(items)} value"
            f"{'s' if len(items) != 1 else ''}: {items}"
        )
    return float(numbers[0]), float(numbers[1]), float(numbers[2])


def save_image(path: str | Path, tensor: torch.Tensor) -> Path:
    """Save a float (3, H, W) RGB or (4, H, W) RGBA tensor in [0, 1] as an 8-bit image, atomically.

    The format follows the file extension (``.png`` keeps alpha; JPEG cannot).

    Returns:
        The path written.

    Raises:
        ValueError: For a wrong shape, dtype or range, or an unknown file extension.
    """
    from PIL import Image

    path = Path(path)
    if not isinstance(tensor, torch.Tensor) or tensor.dim() != 3 or tensor.shape[0] not in (3, 4):
        shape = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
        raise InvalidParameterError(f"save_image expects a tensor (3, H, W) or (4, H, W), got {shape}")
    if not tensor.is_floating_point():
        raise InvalidParameterError(f"save_image expects a float tensor in [0, 1], got {tensor.dtype}")
    lo, hi = float(tensor.min()), float(tensor.max())
    if not (lo >= -1e-4 and hi <= 1 + 1e-4):
        raise InvalidParameterError(f"save_image expects values in [0, 1], got range [{lo:.3g}, {hi:.3g}]")
    Image.init()
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise InvalidParameterError(
            f"save_image cannot infer an image format from the extension of {path}; use e.g. .png or .jpg"
        )
    array = (tensor.detach().cpu().float().clamp(0, 1) * 255).round().to(torch.uint8)
    if fmt == "JPEG" and array.shape[0] == 4:
        array = array[:3]
    image = Image.fromarray(array.permute(1, 2, 0).numpy())
    return atomic_write(path, lambda tmp: image.save(tmp, format=fmt))


def example_image(name: str = "chelsea", size: Size | None = None) -> torch.Tensor:
    """A colour example image bundled with scikit-image (no download) as (3, H, W) in [0, 1].

    Args:
        name: One of :data:`EXAMPLE_IMAGES`.
        size: Optional output size, an int (square) or (height, width).

    Raises:
        ValueError: For an unknown name.
    """
    if name not in EXAMPLE_IMAGES:
        raise InvalidParameterError(f"name must be one of {', '.join(EXAMPLE_IMAGES)}, got {name!r}")
    image = array_to_rgba(_example_array(name), f"example image {name!r}")[:3].contiguous()
    return image if size is None else resize(image, size)


def _example_array(name: str) -> np.ndarray:
    """The pixels of example image ``name``, read with Pillow from scikit-image's ``data`` folder.

    ``skimage.data``'s own loader reads through ``skimage.io``, whose import (it pulls in
    ``skimage.color`` and scipy) took about 0.2 s of a cold ``propgrad explain`` for a 15 ms read;
    Pillow decodes the same file to the same array (``skimage.io`` reads PNG and JPEG with Pillow,
    checked pixel for pixel in the tests). A scikit-image without the file in its folder is asked
    through ``skimage.data``.
    """
    import importlib.util

    from PIL import Image

    spec = importlib.util.find_spec("skimage")  # the package's folder, without importing it
    folders = (spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / "data" / _EXAMPLE_FILES[name]
        if path.is_file():
            with Image.open(path) as opened:
                return np.asarray(opened)
    from skimage import data

    return np.asarray(getattr(data, name)())
