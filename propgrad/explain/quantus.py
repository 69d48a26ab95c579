"""propgrad's attribution baselines inside Quantus, and the Quantus metrics propgrad supports.

One import gives a Quantus user every registered baseline with the paper's settings:

    >>> import numpy as np, quantus, torch
    >>> import propgrad.explain.quantus as pq
    >>> from propgrad.example_model import colour_balance_net
    >>> model = colour_balance_net()
    >>> x = np.random.default_rng(0).random((2, 3, 16, 16), dtype=np.float32)
    >>> y = np.array([0, 1])
    >>> metric = quantus.Sparseness(disable_warnings=True, display_progressbar=False)
    >>> scores = pq.evaluate(metric, model, x, y, baseline="occlusion")

- :func:`explain_func` (or :class:`QuantusExplainer`) is a Quantus ``explain_func(model, inputs,
  targets, **kwargs) -> np.ndarray``: numpy in, numpy out; the ``device`` Quantus passes (else the
  model's); channel-first (N, 3, H, W) inputs as Quantus hands them (channel-last (N, H, W, 3) is
  recognised too, or set ``channel_first``); maps summed over the channel axis with
  ``keepdims=True`` as ``quantus.explain`` returns them (``reduce_axes=()`` keeps all three
  channels). Unlike ``quantus.explain(method="Lime")`` it keeps the settings the paper used
  (SLIC feature masks and 50 / 25 samples for LIME / Kernel SHAP, the 9x9 grey occlusion window with
  stride 4, 50 Gauss-Legendre steps for Integrated Gradients); any constructor setting of the
  baseline can be overridden in ``explain_func_kwargs``. Inputs Quantus perturbs outside [0, 1]
  (MaxSensitivity's noise) are explained as they are
  (:func:`~propgrad.baselines.captum_common.images_outside_unit_range`).
- :func:`evaluate` runs one Quantus metric with a baseline and returns finite float scores, under
  :func:`numpy_compat` so Quantus 0.6's AUC metrics run on NumPy >= 2.4; metrics that cannot run
  are refused by name with the reason (:data:`SUPPORTED_METRICS`, :data:`UNSUPPORTED_METRICS`).

Quantus is imported only when a metric is built or run, so importing this module stays cheap.
"""

from __future__ import annotations

import types
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn

from propgrad.baselines.base import AttributionBaseline
from propgrad.baselines.captum_common import images_outside_unit_range
from propgrad.errors import InvalidParameterError, ParameterTypeError, PropgradError
from propgrad.plugins.parameters import build, settings_of

#: Quantus metrics that run on propgrad's baselines with Quantus 0.6 and the pinned NumPy (each is
#: run in ``tests/test_quantus.py``), with what they need. Those marked "AUC" call ``np.trapz``
#: (removed in NumPy 2.4) and run under :func:`numpy_compat`.
SUPPORTED_METRICS: dict[str, str] = {
    "FaithfulnessCorrelation": "faithfulness",
    "FaithfulnessEstimate": "faithfulness",
    "Monotonicity": "faithfulness",
    "MonotonicityCorrelation": "faithfulness",
    "PixelFlipping": "faithfulness (AUC of the curve)",
    "RegionPerturbation": "faithfulness (AUC of the curve)",
    "Selectivity": "faithfulness (AUC of the curve)",
    "SensitivityN": "faithfulness",
    "Infidelity": "faithfulness",
    "Sufficiency": "faithfulness",
    "Sparseness": "complexity",
    "Complexity": "complexity",
    "EffectiveComplexity": "complexity",
    "RandomLogit": "randomisation",
    "MPRT": "randomisation (mean correlation over layers)",
    "SmoothMPRT": "randomisation (mean correlation over layers)",
    "EfficientMPRT": "randomisation",
    "MaxSensitivity": "robustness (explains noisy inputs outside [0, 1])",
    "AvgSensitivity": "robustness (explains noisy inputs outside [0, 1])",
    "LocalLipschitzEstimate": "robustness (explains noisy inputs outside [0, 1])",
    "Continuity": "robustness (return_nan_when_prediction_changes=True needs np.NaN, removed in NumPy 2.0)",
    "Consistency": "robustness",
    "RelativeInputStability": "robustness",
    "RelativeOutputStability": "robustness",
    "RelativeRepresentationStability": "robustness",
    "Completeness": "axiomatic (True/False as 1/0)",
    "NonSensitivity": "axiomatic",
    "InputInvariance": "axiomatic (True/False as 1/0)",
    "RelevanceMassAccuracy": "localisation (needs s_batch)",
    "RelevanceRankAccuracy": "localisation (needs s_batch)",
    "AttributionLocalisation": "localisation (needs s_batch)",
    "TopKIntersection": "localisation (needs s_batch)",
    "PointingGame": "localisation (needs s_batch)",
    "AUC": "localisation (needs s_batch)",
}

#: Quantus 0.6 metrics refused by :func:`metric_class`, with the reason (each measured by running it
#: on a tiny CNN with 16x16 RGB images; any other Quantus name is refused as not supported).
UNSUPPORTED_METRICS: dict[str, str] = {
    "IROF": (
        "Quantus 0.6's IROF fails on RGB images with 'The shape of arr must be the same as the mask shape' "
        "(its SLIC segment mask has no channel axis)"
    ),
    "ROAD": "Quantus 0.6's ROAD fails on RGB images with an IndexError in its noisy linear imputation",
    "BatchSufficiency": "Quantus 0.6's BatchSufficiency fails on RGB images with a reshape error",
    "Focus": "Focus needs mosaics of images (custom_batch), not single images with one class each",
    "ModelParameterRandomisation": "the old name of MPRT (use MPRT)",
}

#: Constructor defaults propgrad sets for a metric given by name, so it returns one score per image.
SCALAR_DEFAULTS: dict[str, dict[str, Any]] = {
    "MPRT": {"return_average_correlation": True},
    "SmoothMPRT": {"return_average_correlation": True},
}

#: The metrics that need a segmentation mask (``s_batch``), e.g. an intervention's region.
NEEDS_MASK: tuple[str, ...] = tuple(name for name, note in SUPPORTED_METRICS.items() if "s_batch" in note)

_QUANTUS_KWARGS = ("device", "channel_first", "reduce_axes", "keepdims")


class QuantusMetricError(PropgradError, ValueError):
    """A Quantus metric propgrad cannot run (unknown name, or broken in Quantus 0.6)."""


class QuantusExplainer:
    """A propgrad baseline as a Quantus ``explain_func(model, inputs, targets, **kwargs)``.

    Args:
        baseline: A registered baseline name (``propgrad.list_baselines()``), a baseline class or an
            instance.
        **settings: Constructor settings of a baseline given by name or class (default: the
            paper's).

    Raises:
        TypeError: For a setting the baseline does not take, or settings with an instance.
    """

    def __init__(self, baseline: str | type | AttributionBaseline, **settings: Any) -> None:
        self.baseline = _baseline(baseline, settings)
        self.name = self.baseline.name or type(self.baseline).__name__

    def __repr__(self) -> str:
        return f"QuantusExplainer({self.name!r})"

    def __call__(self, model: nn.Module, inputs: Any, targets: Any, **kwargs: Any) -> np.ndarray:
        """Attribution maps of ``inputs`` for ``targets``, as Quantus wants them.

        Args:
            model: The ``nn.Module`` Quantus explains (mapping [0, 1] images to logits).
            inputs: Array (N, 3, H, W), or (N, H, W, 3); a torch tensor is accepted too.
            targets: Class per input: an int or N ints (array, list or tensor).
            **kwargs: What Quantus passes (``device``) and ``explain_func_kwargs``: ``channel_first``
                (None: inferred), ``reduce_axes`` (output axes summed; default the channel axis),
                ``keepdims`` (default True) and any constructor setting of the baseline for this call.

        Returns:
            Float array in the inputs' layout: (N, 1, H, W) by default for channel-first inputs.
        """
        options = {key: kwargs.pop(key) for key in _QUANTUS_KWARGS if key in kwargs}
        baseline = (
            self.baseline if not kwargs else _baseline(type(self.baseline), {**_settings(self.baseline), **kwargs})
        )
        array = _as_array(inputs)
        first = _channel_first(array, options.get("channel_first"))
        images = torch.from_numpy(np.ascontiguousarray(array if first else array.transpose(0, 3, 1, 2)))
        device = options.get("device")
        device = torch.device(device) if device is not None else _model_device(model)
        images = images.float().to(device)
        target = _targets(targets, images.shape[0], device)
        with images_outside_unit_range():
            maps = baseline.attribute(model, images, target)
        result = maps.detach().float().cpu().numpy()
        if result.shape != tuple(images.shape):
            raise InvalidParameterError(
                f"baseline {self.name!r} returned maps {result.shape}, expected {tuple(images.shape)}"
            )
        if not first:
            result = result.transpose(0, 2, 3, 1)
        axes = options.get("reduce_axes", (1 if first else 3,))
        axes = tuple(int(a) for a in axes)
        if 0 in axes:
            raise InvalidParameterError("reduce_axes must not hold the batch axis 0")
        return result.sum(axis=axes, keepdims=bool(options.get("keepdims", True))) if axes else result


def explain_func(
    baseline: str | type | AttributionBaseline = "integrated_gradients", **settings: Any
) -> QuantusExplainer:
    """A registered baseline as a Quantus ``explain_func`` with the paper's settings (see :class:`QuantusExplainer`)."""
    return QuantusExplainer(baseline, **settings)


def explain_funcs() -> dict[str, QuantusExplainer]:
    """Every registered baseline (built-in and plugins') as a Quantus ``explain_func``, by name."""
    from propgrad.plugins import list_baselines

    return {name: QuantusExplainer(cls) for name, cls in list_baselines().items()}


def explain(model: nn.Module, inputs: Any, targets: Any, **kwargs: Any) -> np.ndarray:
    """Like ``quantus.explain``, with ``method`` naming a propgrad baseline (default Integrated Gradients)."""
    method = kwargs.pop("method", "integrated_gradients")
    return QuantusExplainer(method)(model, inputs, targets, **kwargs)


def metric_class(name: str) -> type:
    """The Quantus metric class called ``name`` (Quantus's own class name), if propgrad supports it.

    Raises:
        QuantusMetricError: For an unknown or unsupported name, listing the supported ones.
    """
    supported = ", ".join(SUPPORTED_METRICS)
    if not isinstance(name, str):
        raise QuantusMetricError(
            f"a Quantus metric must be named by its class name, got {name!r}; supported: {supported}"
        )
    if name in UNSUPPORTED_METRICS:
        raise QuantusMetricError(
            f"Quantus metric {name!r} is not supported: {UNSUPPORTED_METRICS[name]}; supported: {supported}"
        )
    if name not in SUPPORTED_METRICS:
        raise QuantusMetricError(f"unknown Quantus metric {name!r}; supported (Quantus's class names): {supported}")
    import quantus

    return getattr(quantus, name)


def evaluate(
    metric: str | Any,
    model: nn.Module,
    x_batch: Any,
    y_batch: Any,
    *,
    baseline: str | type | AttributionBaseline | QuantusExplainer = "integrated_gradients",
    s_batch: Any = None,
    device: str | None = None,
    metric_kwargs: Mapping[str, Any] | None = None,
    **call_kwargs: Any,
) -> np.ndarray:
    """Run one Quantus metric on a propgrad baseline and return one finite score per image.

    Args:
        metric: A supported Quantus class name (built with ``metric_kwargs``, progress bar and
            warnings off) or a Quantus metric instance.
        model: The ``nn.Module`` to evaluate, mapping [0, 1] images to logits.
        x_batch: Images (N, 3, H, W) in [0, 1] (numpy or torch); channel-last is refused here.
        y_batch: Class per image (N,).
        baseline: The baseline whose maps are evaluated: a name, class, instance or explainer.
        s_batch: Segmentation masks (N, 1, H, W) (or (N, H, W)) for the localisation metrics, e.g.
            ``InterventionSequence.region`` of each image's sequence (:func:`s_batch`).
        device: Passed to Quantus (None: the model's device).
        metric_kwargs: Constructor arguments of a metric given by name.
        **call_kwargs: Further arguments of the metric's ``__call__``.

    Returns:
        Float array (N,) of scores: a metric returning one value per batch is repeated per image, one
        returning a curve per image (PixelFlipping, RegionPerturbation, Selectivity) gives the area
        under it (trapezoid rule, unit spacing: Quantus's ``calculate_auc``).

    Raises:
        QuantusMetricError: For an unsupported metric, a localisation metric without ``s_batch``,
            or scores that are not finite (named with the metric).
        InvalidParameterError: For an ``x_batch`` that is not (N, 3, H, W), a ``y_batch`` that is
            not N class indices, or an ``s_batch`` that is not one (1, H, W) mask per image.
    """
    instance, name = _metric(metric, metric_kwargs)
    if name in NEEDS_MASK and s_batch is None:
        raise QuantusMetricError(f"Quantus metric {name!r} needs s_batch, the masks of the regions that matter")
    x, y, s = _batches(x_batch, y_batch, s_batch)
    explainer = baseline if isinstance(baseline, QuantusExplainer) else QuantusExplainer(baseline)
    if device is None:
        device = str(_model_device(model))
    with numpy_compat():
        scores = instance(
            model=model,
            x_batch=x,
            y_batch=y,
            a_batch=None,
            s_batch=s,
            explain_func=explainer,
            device=device,
            **call_kwargs,
        )
    return _per_image(scores, x.shape[0], name)


def s_batch(sequences: Any) -> np.ndarray:
    """Quantus ``s_batch`` (N, 1, H, W) float32 from the ``region`` of N intervention sequences.

    Args:
        sequences: :class:`~propgrad.sources.base.InterventionSequence` objects, one per image of
            ``x_batch``, each with a ``region`` (sources that know the region they change set it).

    Raises:
        ValueError: For a sequence without a region, or regions of different sizes.
    """
    masks = []
    for i, sequence in enumerate(sequences):
        region = getattr(sequence, "region", None)
        if region is None:
            raise InvalidParameterError(
                f"sequence {i} has no region (its source does not say which pixels it changes); "
                "pass s_batch masks of your own"
            )
        masks.append(region.detach().cpu().numpy().astype(np.float32)[None])
    if not masks:
        raise InvalidParameterError("s_batch needs at least one sequence")
    if len({m.shape for m in masks}) > 1:
        raise InvalidParameterError(f"the regions have different sizes: {sorted({m.shape[1:] for m in masks})}")
    return np.stack(masks)


_NUMPY_FIXES: dict[str, Any] = {"trapz": getattr(np, "trapezoid", None), "NaN": np.nan}
_PATCHED_MODULES = ("quantus.helpers.utils", "quantus.metrics.robustness.continuity")


class _NumpyCompat(types.ModuleType):
    """numpy, plus the names Quantus 0.6 uses that this NumPy removed (``trapz``, ``NaN``)."""

    def __init__(self, fixes: dict[str, Any]) -> None:
        super().__init__("numpy")
        self.__dict__.update(fixes)

    def __getattr__(self, name: str) -> Any:
        return getattr(np, name)


@contextmanager
def numpy_compat() -> Iterator[None]:
    """Within this block, Quantus 0.6's modules that call ``np.trapz`` / ``np.NaN`` see them again.

    Only the module-level ``np`` name of those Quantus modules is swapped for a view of numpy with
    the missing names added, and restored on exit; the ``numpy`` module itself, and so the user's
    code, is never changed. A no-op for names this NumPy still has.
    """
    import importlib

    fixes = {name: value for name, value in _NUMPY_FIXES.items() if not hasattr(np, name) and value is not None}
    if not fixes:
        yield
        return
    swapped = []
    try:
        for module_name in _PATCHED_MODULES:
            module = importlib.import_module(module_name)
            if getattr(module, "np", None) is np:
                module.np = _NumpyCompat(fixes)  # type: ignore[attr-defined]
                swapped.append(module)
        yield
    finally:
        for module in swapped:
            module.np = np  # type: ignore[attr-defined]


def _metric(metric: Any, kwargs: Mapping[str, Any] | None) -> tuple[Any, str]:
    if isinstance(metric, str):
        metric_class(metric)
        defaults = {"disable_warnings": True, "display_progressbar": False, **SCALAR_DEFAULTS.get(metric, {})}
        options = {**defaults, **dict(kwargs or {})}
        return metric_class(metric)(**options), metric
    if kwargs:
        raise ParameterTypeError("metric_kwargs are for a metric given by name, not a metric instance")
    name = type(metric).__name__
    metric_class(name)  # refuse an unsupported instance the same way
    return metric, name


def _per_image(scores: Any, n: int, name: str) -> np.ndarray:
    if isinstance(scores, Mapping):
        raise QuantusMetricError(
            f"Quantus metric {name!r} returned a score per layer ({list(scores)[:3]}...); build it with "
            "return_average_correlation=True for one score per image"
        )
    values = np.asarray(scores, dtype=float)
    if values.ndim == 2 and values.shape[0] == n and values.shape[1] > 1:
        # a curve per image (PixelFlipping, RegionPerturbation, Selectivity): its area, as Quantus's AUC
        values = np.trapezoid(values, dx=1, axis=1)
    values = values.reshape(-1)
    if values.size == 1 and n > 1:
        values = np.repeat(values, n)
    if values.size != n:
        raise QuantusMetricError(f"Quantus metric {name!r} returned {values.size} scores for {n} images")
    if not np.isfinite(values).all():
        raise QuantusMetricError(f"Quantus metric {name!r} returned non-finite scores {values.tolist()}")
    return values


def _baseline(baseline: Any, settings: Mapping[str, Any]) -> AttributionBaseline:
    """A baseline from a registered name, a class or an instance (see :func:`propgrad.plugins.parameters.build`)."""
    return build("baselines", baseline, settings, what="settings")


def _settings(baseline: AttributionBaseline) -> dict[str, Any]:
    """The constructor settings of a baseline instance (its declared parameters, or read back from its attributes)."""
    return settings_of(baseline)


def _batches(x_batch: Any, y_batch: Any, s_batch: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``x_batch``, ``y_batch`` and ``s_batch`` as Quantus takes them, checked here rather than inside Quantus.

    Raises:
        InvalidParameterError: ``x_batch`` not (N, 3, H, W) (channel-last included), ``y_batch``
            not N class indices, ``s_batch`` not one (1, H, W) mask per image.
    """
    x = _as_array(x_batch)
    if x.ndim != 4 or x.shape[1] != 3:
        hint = "; it looks channel-last: pass x_batch.transpose(0, 3, 1, 2)" if x.ndim == 4 and x.shape[3] == 3 else ""
        raise InvalidParameterError(f"x_batch must be channel-first RGB images (N, 3, H, W), got shape {x.shape}{hint}")
    n, size = x.shape[0], x.shape[2:]
    y = np.asarray(y_batch.detach().cpu() if isinstance(y_batch, torch.Tensor) else y_batch)
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
        raise InvalidParameterError(
            f"y_batch must be one class index per image of x_batch ({n} integers), got {y.dtype} of shape {y.shape}"
        )
    if s_batch is None:
        return x.astype(np.float32, copy=False), y.astype(np.int64), None
    s = _as_array(s_batch)
    if s.ndim == 3:
        s = s[:, None]
    if s.shape != (n, 1, *size):
        raise InvalidParameterError(
            f"s_batch must hold one mask (1, H, W) per image of x_batch, shape {(n, 1, *size)}, got {s.shape}"
        )
    return x.astype(np.float32, copy=False), y.astype(np.int64), s.astype(np.float32, copy=False)


def _as_array(inputs: Any) -> np.ndarray:
    if isinstance(inputs, torch.Tensor):
        return inputs.detach().cpu().numpy()
    array = np.asarray(inputs)
    if array.dtype == object:
        raise ParameterTypeError(f"inputs must be a numeric array, got {type(inputs).__name__}")
    return array


def _channel_first(array: np.ndarray, channel_first: bool | None) -> bool:
    if array.ndim != 4:
        raise InvalidParameterError(
            f"inputs must be a batch of RGB images (N, 3, H, W) or (N, H, W, 3), got shape {array.shape}"
        )
    if channel_first is None:
        if array.shape[1] == 3:
            return True
        if array.shape[3] == 3:
            return False
        raise InvalidParameterError(f"inputs must have 3 channels on axis 1 or 3, got shape {array.shape}")
    if array.shape[1 if channel_first else 3] != 3:
        raise InvalidParameterError(
            f"inputs have shape {array.shape}, not 3 channels on axis {1 if channel_first else 3}"
        )
    return bool(channel_first)


def _targets(targets: Any, n: int, device: torch.device) -> torch.Tensor:
    values = np.asarray(targets.detach().cpu() if isinstance(targets, torch.Tensor) else targets).reshape(-1)
    if values.size == 1:
        values = np.repeat(values, n)
    if values.size != n or not np.issubdtype(values.dtype, np.integer):
        raise InvalidParameterError(
            f"targets must be one class index per input ({n} integers), got {values.tolist()!r}"
        )
    return torch.as_tensor(values, dtype=torch.long, device=device)


def _model_device(model: Any) -> torch.device:
    from propgrad.core.forward import model_device

    return model_device(model, "cpu") or torch.device("cpu")
