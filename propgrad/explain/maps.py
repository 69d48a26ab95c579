"""Every baseline's attribution maps for the original and the intervened image, ready to draw.

:func:`baseline_maps` runs the registered attribution baselines (or the ones named) on chosen steps
of an intervention sequence (by default the original, step 0, and the fully intervened image, step
-1) and returns channel-last numpy arrays (H, W, 3), the layout of
``captum.attr.visualization.visualize_image_attr(attr, original_image)``, so a user or the report
can show each map before and after side by side, on one colour scale (:meth:`BaselineMaps.scale`).
Captum's ``visualize_image_attr`` sums the channels (:meth:`BaselineMaps.channel_sum`) and refuses a
map whose sum is all zero (its scale is 0), which a baseline can return (e.g. Guided Grad-CAM on a
model whose red and blue gradients cancel); :meth:`BaselineMaps.constant` tells such a map (every
pixel of the channel sum equal) and its value, so it can be labelled instead of drawn blank.

Example:
    >>> import propgrad, torch
    >>> from propgrad.example_model import colour_balance_net
    >>> image = torch.rand(3, 32, 32)
    >>> maps = propgrad.baseline_maps(colour_balance_net(), image, target=0, baselines=["occlusion"],
    ...                               source="alpha_patch")
    >>> maps.map("occlusion", -1).shape
    (32, 32, 3)
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from propgrad.baselines.base import AttributionBaseline
from propgrad.core.forward import model_device, run_model
from propgrad.core.validation import ParameterTypeError, check_images, check_int, check_seed
from propgrad.errors import InvalidParameterError
from propgrad.explain.arguments import resolve_source
from propgrad.sources.base import InterventionSequence, InterventionSource

BaselineSpec = Sequence[str | AttributionBaseline] | Mapping[str, AttributionBaseline] | None

CONSTANT_RTOL = 1e-6
"""A map is constant (:meth:`BaselineMaps.constant`) when its channel sum spreads over at most this
fraction of its largest absolute channel value (float32 rounds a sum of three channels to ~2e-7 of it)."""


@dataclass(frozen=True)
class BaselineMaps:
    """Attribution maps of several baselines on a few steps of one intervention sequence.

    Attributes:
        maps: Baseline name → float32 array (S, H, W, 3), one channel-last map per step in
            ``steps`` order (unnormalised, as the baseline returned it).
        images: Float32 array (S, H, W, 3) in [0, 1]: the images the maps explain, the
            ``original_image`` of ``visualize_image_attr``.
        steps: The sequence indices of the S images (non-negative; 0 is the original image).
        values: The property value of each of the S steps.
        target: The class every map explains.
        failures: Baseline name → error message, for baselines that raised (a broken plugin
            never takes the call down; a warning names them too).
    """

    maps: dict[str, np.ndarray]
    images: np.ndarray
    steps: tuple[int, ...]
    values: tuple[float, ...]
    target: int
    failures: dict[str, str]

    def map(self, baseline: str, step: int) -> np.ndarray:
        """The (H, W, 3) map of ``baseline`` at sequence index ``step`` (one of :attr:`steps`, or -1 for the last).

        Raises:
            KeyError: For a baseline without maps (unknown or failed) or a step not computed.
        """
        if baseline not in self.maps:
            reason = f" (it failed: {self.failures[baseline]})" if baseline in self.failures else ""
            raise KeyError(f"no maps of baseline {baseline!r}{reason}; maps exist for {sorted(self.maps)}")
        return self.maps[baseline][self._position(step)]

    def image(self, step: int) -> np.ndarray:
        """The (H, W, 3) image at sequence index ``step`` (one of :attr:`steps`, or -1 for the last)."""
        return self.images[self._position(step)]

    def scale(self, baseline: str, *, summed: bool = False) -> float:
        """The largest absolute value of ``baseline``'s maps over all steps: one colour scale for all of them.

        Args:
            baseline: The baseline's name (NaN for one without maps).
            summed: Of the channel sums (:meth:`channel_sum`, what is drawn) instead of the channels.
        """
        if baseline not in self.maps:
            return float("nan")
        maps = self.maps[baseline].sum(-1) if summed else self.maps[baseline]
        return float(np.abs(maps).max())

    def channel_sum(self, baseline: str, step: int) -> np.ndarray:
        """The (H, W) map of ``baseline`` at ``step`` summed over the channels: what Captum's
        ``visualize_image_attr`` draws (and the explain report shows)."""
        return self.map(baseline, step).sum(-1)

    def constant(self, baseline: str, step: int) -> float | None:
        """The value of every pixel of :meth:`channel_sum` when they are all equal, else None.

        Equal within float tolerance: the pixels' spread is at most :data:`CONSTANT_RTOL` times the
        largest absolute channel value of this map (the rounding of a float32 channel sum), so an
        all-zero map and one whose channels cancel at every pixel are constant (value 0), and a map
        with structure of any size relative to its own values is not. A value within that tolerance
        of 0 is returned as 0.0.
        """
        drawn = self.channel_sum(baseline, step).astype(np.float64)
        tolerance = CONSTANT_RTOL * float(np.abs(self.map(baseline, step)).max())
        if not np.isfinite(drawn).all() or float(drawn.max() - drawn.min()) > tolerance:
            return None
        value = float(drawn.mean())
        return 0.0 if abs(value) <= tolerance else value

    def __repr__(self) -> str:
        """One line: the target, the steps, the baselines with maps (shape) and those that failed."""
        shape = "x".join(map(str, self.images.shape[1:3]))
        failed = f", failed: {', '.join(self.failures)}" if self.failures else ""
        return (
            f"BaselineMaps(target {self.target}, steps {list(self.steps)}, {shape} maps of "
            f"{', '.join(self.maps) or 'no baseline'}{failed})"
        )

    def _repr_html_(self) -> str:
        """The maps in a notebook cell: each baseline's map before and after on one colour scale, a constant
        map labelled with its value, the failures listed, as self-contained HTML
        (:func:`propgrad.explain.explanation_html.maps_fragment`)."""
        from propgrad.explain.explanation_html import maps_fragment

        return maps_fragment(self)

    def _position(self, step: int) -> int:
        if step == -1:
            return len(self.steps) - 1
        if step not in self.steps:
            raise KeyError(f"step {step} was not computed; computed steps: {list(self.steps)}")
        return self.steps.index(step)


def baseline_maps(
    model: nn.Module,
    inputs: InterventionSequence | torch.Tensor,
    target: int | None = None,
    baselines: BaselineSpec = None,
    steps: Sequence[int] = (0, -1),
    *,
    source: str | InterventionSource | None = None,
    source_params: dict[str, Any] | None = None,
    seed: int = 0,
) -> BaselineMaps:
    """Attribution maps of every baseline for chosen steps of an intervention sequence.

    Args:
        model: Module mapping [0, 1] images (B, 3, H, W) to logits (B, K), as the baselines take it.
        inputs: An :class:`~propgrad.sources.base.InterventionSequence`, or one image (3, H, W) in
            [0, 1] together with ``source`` (the sequence is generated with ``seed``).
        target: Class to explain; None uses the model's prediction on step 0 (the original image).
        baselines: None (every registered baseline with its default, the paper's, settings), a list
            of registered names and/or :class:`~propgrad.baselines.base.AttributionBaseline`
            instances, or a mapping name → instance.
        steps: Sequence indices to explain (negative ones count from the end); default the original
            and the fully intervened image.
        source: A registered source name or instance, when ``inputs`` is an image.
        source_params: Parameters of a source given by name.
        seed: Seed of the source's random choices.

    Returns:
        A :class:`BaselineMaps`; ``maps[name][k]`` is the map of ``steps[k]``, channel-last.

    Raises:
        InvalidParameterError: For a bad model, inputs, steps, an image without a source, or a target
            that is not one of the model's classes (checked once, before any baseline runs).
    """
    if not isinstance(model, nn.Module):
        raise ParameterTypeError(
            f"model must be a torch.nn.Module (the baselines need gradients), got {type(model).__name__}"
        )
    sequence = _sequence(inputs, source, source_params, seed)
    indices = _steps(steps, len(sequence))
    device = model_device(model, sequence.images.device)
    images = sequence.images[list(indices)].to(device)
    outputs = run_model(model, images[:1], batch_size=1)[0]  # the number of classes, and the prediction
    if target is None:
        target = int(outputs.argmax())
    n_classes = int(outputs.shape[0])
    target = check_int(
        target, "target", minimum=0, maximum=n_classes - 1, hint=f"a class index of the model's {n_classes} outputs"
    )
    labels = torch.full((len(indices),), target, dtype=torch.long, device=images.device)
    maps: dict[str, np.ndarray] = {}
    failures: dict[str, str] = {}
    for name, baseline in _baselines(baselines).items():
        try:
            result = baseline.attribute(model, images, labels)
            maps[name] = _channel_last(result, images.shape, name)
        except Exception as exc:  # one failing baseline never takes the others down
            failures[name] = f"{type(exc).__name__}: {exc}"
    if failures:
        warnings.warn(f"baseline_maps: no maps from {sorted(failures)}: {failures}", RuntimeWarning, stacklevel=2)
    return BaselineMaps(
        maps=maps,
        images=_channel_last(images, images.shape, "images"),
        steps=indices,
        values=tuple(float(sequence.values[i]) for i in indices),
        target=target,
        failures=failures,
    )


def _sequence(
    inputs: Any, source: str | InterventionSource | None, params: dict[str, Any] | None, seed: int
) -> InterventionSequence:
    if isinstance(inputs, InterventionSequence):
        if source is not None or params:
            raise InvalidParameterError(
                "source and source_params are for an image; inputs is already an InterventionSequence"
            )
        return inputs
    if source is None:
        raise InvalidParameterError(
            "inputs is an image, so baseline_maps needs source= (a source name or instance) to intervene on it; "
            "or pass an InterventionSequence"
        )
    image = check_images(inputs, "inputs", batched=False)
    return resolve_source(source, params).generate(image, seed=check_seed(seed))


def _steps(steps: Any, n: int) -> tuple[int, ...]:
    if isinstance(steps, (int, np.integer)) or isinstance(steps, (str, bytes)) or not isinstance(steps, Sequence):
        raise ParameterTypeError(f"steps must be a sequence of step indices such as (0, -1), got {steps!r}")
    resolved = []
    for step in steps:
        index = check_int(step, "steps", minimum=None)
        if not -n <= index < n:
            raise InvalidParameterError(f"steps must index the sequence of {n} images (-{n} .. {n - 1}), got {index}")
        resolved.append(index % n)
    if not resolved:
        raise InvalidParameterError("steps must name at least one step of the sequence")
    if len(set(resolved)) != len(resolved):
        raise InvalidParameterError(f"steps names one step twice: {list(steps)} (resolved {resolved})")
    return tuple(resolved)


def _baselines(baselines: BaselineSpec) -> dict[str, AttributionBaseline]:
    from propgrad.plugins import list_baselines
    from propgrad.plugins.parameters import build

    if baselines is None:
        return {name: build("baselines", cls) for name, cls in list_baselines().items()}
    if isinstance(baselines, Mapping):
        items = list(baselines.items())
    elif isinstance(baselines, (str, bytes)) or not isinstance(baselines, Sequence):
        raise ParameterTypeError(f"baselines must be None, a list of names or baselines, or a dict, got {baselines!r}")
    else:
        items = [(b if isinstance(b, str) else getattr(b, "name", ""), b) for b in baselines]
    resolved = {}
    for name, baseline in items:
        if not isinstance(baseline, (str, AttributionBaseline)):
            raise ParameterTypeError(f"baselines must hold names or AttributionBaseline instances, got {baseline!r}")
        resolved[name or type(baseline).__name__] = build("baselines", baseline)
    return resolved


def _channel_last(maps: Any, shape: torch.Size, name: str) -> np.ndarray:
    if not isinstance(maps, torch.Tensor) or tuple(maps.shape) != tuple(shape):
        got = tuple(maps.shape) if isinstance(maps, torch.Tensor) else type(maps).__name__
        raise InvalidParameterError(f"{name}: maps must have the images' shape {tuple(shape)}, got {got}")
    return maps.detach().float().cpu().permute(0, 2, 3, 1).contiguous().numpy()
