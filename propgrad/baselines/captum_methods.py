"""The paper's local attribution baselines (Appendix B.4), wrapping Captum.

Settings follow the paper: Guided Grad-CAM on the last convolutional layer, Occlusion with a
9x9 window, stride 4 and a grey baseline, LIME and Kernel SHAP on SLIC superpixels (100 segments,
compactness 1); everything else is Captum's default (Integrated Gradients: 50 steps, Gauss-Legendre;
LIME: 50 samples; Kernel SHAP: 25 samples). Our models take [0, 1] images, so "zero" baselines
are black and the grey baseline is 0.5. LIME and Kernel SHAP switch features off to grey 0.5
(Captum's default 0 would be black here; on the paper's normalised inputs 0 was the mean colour).

Every map has the input's shape (B, 3, H, W), is unnormalised, detached and on the images'
device, in the dtype of the model's parameters. Models are not modified: in-place ReLU modules
are handled on a cached copy (:mod:`propgrad.baselines.layers`), hooks are removed by Captum after
each call. Captum is imported only when a map is computed, so listing the baselines stays cheap.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import torch
from torch import nn

from propgrad.baselines.base import AttributionBaseline
from propgrad.baselines.captum_common import finish, prepare_inputs, run_quietly
from propgrad.baselines.layers import get_layer, last_conv_name, relu_safe_model
from propgrad.baselines.superpixels import superpixel_segments
from propgrad.core.validation import ParameterTypeError, check_seed
from propgrad.errors import InvalidParameterError
from propgrad.hookspecs import hookimpl
from propgrad.plugins.parameters import Parameters, parameter

if TYPE_CHECKING:
    from captum.attr import Lime

IG_METHODS: tuple[str, ...] = ("gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle")
"""Captum's integration rules for Integrated Gradients (``captum.attr._utils.approximation_methods``)."""

INTERPOLATE_MODES: tuple[str, ...] = ("nearest", "nearest-exact", "bilinear", "bicubic", "area")
"""Upsampling modes of ``torch.nn.functional.interpolate`` for (B, C, h, w) Grad-CAM maps."""

_IMAGE_VALUE = "an image value"


def _image_value(default: float, help: str) -> Any:  # noqa: A002 - as in parameter()
    """Declare a constant image value in [0, 1] (a baseline or fill colour)."""
    return parameter(default, help, bounds="[0, 1]", hint=_IMAGE_VALUE)


def _layer(value: Any, name: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ParameterTypeError(f"{name} must be a dotted module name (str) or None, got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class IntegratedGradientsParams(Parameters):
    """The settings of :class:`IntegratedGradientsBaseline`."""

    n_steps: int = parameter(50, "integration steps (Captum's default)", bounds="[1, inf)")
    baseline: float = _image_value(0.0, "value of the constant baseline image (0: black)")
    method: str = parameter("gausslegendre", "Captum's integration rule", choices=IG_METHODS)
    internal_batch_size: int | None = parameter(
        None, "steps evaluated per forward pass; None: all at once", bounds="[1, inf)"
    )


@dataclass(frozen=True)
class DeepLiftParams(Parameters):
    """The settings of :class:`DeepLiftBaseline`."""

    baseline: float = _image_value(0.0, "value of the constant reference image (0: black)")


@dataclass(frozen=True)
class GuidedGradCamParams(Parameters):
    """The settings of :class:`GuidedGradCamBaseline`."""

    layer: str | None = parameter(None, "dotted name of the layer; None: the last nn.Conv2d", parse=_layer)
    interpolate_mode: str = parameter("nearest", "how the Grad-CAM map is upsampled", choices=INTERPOLATE_MODES)


@dataclass(frozen=True)
class OcclusionParams(Parameters):
    """The settings of :class:`OcclusionBaseline`."""

    window: int = parameter(9, "side of the square occluding window in pixels (paper: 9)", bounds="[1, inf)")
    stride: int = parameter(4, "step of the window in both directions (paper: 4)", bounds="[1, inf)")
    baseline: float = _image_value(0.5, "value the window is filled with (paper: the mean grey)")
    perturbations_per_eval: int = parameter(16, "occluded images evaluated per forward pass", bounds="[1, inf)")


@dataclass(frozen=True)
class SuperpixelParams(Parameters):
    """The settings of :class:`LimeBaseline` and :class:`KernelShapBaseline`."""

    n_samples: int | None = parameter(
        None, "perturbed samples per image; None: Captum's default (LIME 50, Kernel SHAP 25)", bounds="[1, inf)"
    )
    n_segments: int = parameter(100, "SLIC segments (paper: 100)", bounds="[2, inf)")
    compactness: float = parameter(1.0, "SLIC compactness (paper: 1)", bounds="(0, inf)")
    min_segments: int = parameter(4, "fewest segments before the SLIC fallbacks kick in", bounds="[1, inf)")
    baseline: float = _image_value(0.5, "value of switched-off superpixels (grey)")
    perturbations_per_eval: int | None = parameter(
        None, "perturbed images per forward pass; None: all samples in one", bounds="[1, inf)"
    )
    seed: int = parameter(0, "seed of the sampling (the global torch RNG is left untouched)", parse=check_seed)


class IntegratedGradientsBaseline(AttributionBaseline):
    """Integrated Gradients from a constant baseline image (black by default).

    Args:
        n_steps: Integration steps (Captum's default 50).
        baseline: Value of the constant baseline image, in [0, 1].
        method: Captum's integration rule, one of :data:`IG_METHODS`.
        internal_batch_size: Steps evaluated per forward pass (None: all at once).
    """

    name = "integrated_gradients"
    description = "Integrated Gradients (Captum) from a black image"
    Params = IntegratedGradientsParams

    def attribute(self, model: nn.Module, images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        from captum.attr import IntegratedGradients

        images, target = prepare_inputs(model, images, target)
        maps = run_quietly(
            lambda: IntegratedGradients(model).attribute(
                images,
                baselines=self.baseline,
                target=target,
                n_steps=self.n_steps,
                method=self.method,
                internal_batch_size=self.internal_batch_size,
            )
        )
        return finish(maps, images, self.name)


class DeepLiftBaseline(AttributionBaseline):
    """DeepLIFT (Rescale rule) against a constant reference image (black by default).

    Captum hooks activation modules, so each activation module must be used once per forward
    and functional activations are treated as linear. In-place ReLU modules are handled on a
    copy of the model.

    Args:
        baseline: Value of the constant reference image, in [0, 1].
    """

    name = "deeplift"
    description = "DeepLIFT (Captum) against a black reference image"
    Params = DeepLiftParams

    def attribute(self, model: nn.Module, images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        from captum.attr import DeepLift

        images, target = prepare_inputs(model, images, target)
        safe = relu_safe_model(model)
        maps = run_quietly(lambda: DeepLift(safe).attribute(images, baselines=self.baseline, target=target))
        return finish(maps, images, self.name)


class GuidedGradCamBaseline(AttributionBaseline):
    """Guided Grad-CAM on the last ``nn.Conv2d`` of the model (or a named layer).

    Args:
        layer: Dotted name of the layer (as in ``model.named_modules()``); None picks the last
            ``nn.Conv2d`` in ``model.modules()`` order. Its output must be (B, C, h, w).
        interpolate_mode: How the Grad-CAM map is upsampled, one of :data:`INTERPOLATE_MODES`
            (Captum's default ``"nearest"``).
    """

    name = "guided_gradcam"
    description = "Guided Grad-CAM (Captum) on the last convolutional layer"
    Params = GuidedGradCamParams

    def attribute(self, model: nn.Module, images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        from captum.attr import GuidedGradCam

        if not isinstance(model, nn.Module):
            raise ParameterTypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        layer_name = self.layer if self.layer is not None else last_conv_name(model)
        get_layer(model, layer_name)  # clear error before any work
        images, target = prepare_inputs(model, images, target)
        safe = relu_safe_model(model)
        method = GuidedGradCam(safe, get_layer(safe, layer_name))
        maps = run_quietly(lambda: method.attribute(images, target=target, interpolate_mode=self.interpolate_mode))
        return finish(maps, images, f"{self.name} (layer {layer_name!r})")


class OcclusionBaseline(AttributionBaseline):
    """Occlusion with a square grey patch slid over the image (all channels at once).

    Args:
        window: Side of the square occluding window in pixels (paper: 9).
        stride: Step of the window in both directions (paper: 4).
        baseline: Value the window is filled with (paper: the mean grey, 0.5 on [0, 1]).
        perturbations_per_eval: Occluded images evaluated per forward pass.
    """

    name = "occlusion"
    description = "Occlusion (Captum), 9x9 grey window, stride 4"
    Params = OcclusionParams

    def attribute(self, model: nn.Module, images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        from captum.attr import Occlusion

        images, target = prepare_inputs(model, images, target)
        height, width = images.shape[-2:]
        if self.window > min(height, width):
            raise InvalidParameterError(f"window ({self.window}) must not exceed the image size ({height}x{width})")
        maps = run_quietly(
            lambda: Occlusion(model).attribute(
                images,
                sliding_window_shapes=(3, self.window, self.window),
                strides=(3, self.stride, self.stride),
                baselines=self.baseline,
                target=target,
                perturbations_per_eval=self.perturbations_per_eval,
            )
        )
        return finish(maps, images, self.name)


class _SuperpixelBaseline(AttributionBaseline):
    """Shared machinery of LIME and Kernel SHAP on SLIC superpixels.

    ``last_segmentation_info`` holds, after each call, one dict per image describing the
    segmentation actually used (see :func:`propgrad.baselines.superpixels.superpixel_segments`).
    """

    default_samples = 50
    Params = SuperpixelParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.n_samples = self.default_samples if self.params.n_samples is None else self.params.n_samples
        # every sample in one forward pass by default: the same maps, fewer passes
        self.perturbations_per_eval = self.params.perturbations_per_eval or self.n_samples
        self.last_segmentation_info: list[dict[str, Any]] = []

    @abstractmethod
    def _method(self, model: nn.Module) -> Lime:
        """The Captum attribution object for ``model``."""

    def attribute(self, model: nn.Module, images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        images, target = prepare_inputs(model, images, target)
        method = self._method(model)
        devices = [images.device.index or 0] if images.device.type == "cuda" else []
        maps, infos = [], []
        for image, label in zip(images, target):
            segments, info = superpixel_segments(  # clipped: perturbed images may leave [0, 1]
                image.clamp(0.0, 1.0),
                n_segments=self.n_segments,
                compactness=self.compactness,
                min_segments=self.min_segments,
            )
            infos.append(info)
            with torch.random.fork_rng(devices=devices):
                _seed(self.seed, images.device)
                maps.append(
                    run_quietly(
                        lambda image=image, label=label, segments=segments: method.attribute(
                            image[None],
                            target=label[None],
                            baselines=self.baseline,
                            feature_mask=segments[None, None],
                            n_samples=self.n_samples,
                            perturbations_per_eval=self.perturbations_per_eval,
                        )
                    )
                )
        self.last_segmentation_info = infos
        return finish(torch.cat(maps), images, self.name)


class LimeBaseline(_SuperpixelBaseline):
    """LIME (Captum defaults: Lasso surrogate, cosine kernel) on SLIC superpixels.

    Args:
        n_samples: Perturbed samples per image (Captum's default, used by the paper: 50).
        n_segments: SLIC segments (paper: 100).
        compactness: SLIC compactness (paper: 1).
        min_segments: Fewest segments before the SLIC fallbacks kick in.
        baseline: Value of switched-off superpixels (grey 0.5).
        perturbations_per_eval: Perturbed images per forward pass (default: all ``n_samples`` in one).
        seed: Seed of the sampling; the global torch RNG is left untouched.
    """

    name = "lime"
    description = "LIME (Captum) on SLIC superpixels (100 segments, compactness 1)"

    def _method(self, model: nn.Module) -> Lime:
        from captum.attr import Lime

        return Lime(model)


class KernelShapBaseline(_SuperpixelBaseline):
    """Kernel SHAP (Captum) on SLIC superpixels; same settings as :class:`LimeBaseline`.

    ``n_samples`` defaults to Captum's (and so the paper's) 25.
    """

    name = "kernel_shap"
    description = "Kernel SHAP (Captum) on SLIC superpixels (100 segments, compactness 1)"
    default_samples = 25

    def _method(self, model: nn.Module) -> Lime:
        from captum.attr import KernelShap

        return KernelShap(model)


BASELINES: tuple[type[AttributionBaseline], ...] = (
    IntegratedGradientsBaseline,
    DeepLiftBaseline,
    GuidedGradCamBaseline,
    OcclusionBaseline,
    LimeBaseline,
    KernelShapBaseline,
)


@hookimpl
def register_baselines(register: Callable[[type], None]) -> None:
    """Register the six built-in attribution baselines."""
    for baseline in BASELINES:
        register(baseline)


def _seed(seed: int, device: torch.device) -> None:
    """``torch.manual_seed(seed)`` for a sampler running on ``device``.

    On the CPU only the CPU generator is seeded, as ``torch.manual_seed`` seeds it: that also queues
    the seed for every accelerator torch has not initialised (CUDA, XPU, MTIA), formatting the call's
    stack for each: 21 s of a profiled default benchmark run here (9,000 calls, LIME and Kernel SHAP
    per image). Nothing on the CPU draws from them, and a queued seed outlived ``fork_rng``.
    """
    if device.type == "cpu":
        torch.default_generator.manual_seed(int(seed))
    else:
        torch.manual_seed(seed)
