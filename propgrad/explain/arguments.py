"""Resolving the arguments of :meth:`propgrad.PropertyGradient.attribute`: the test's settings,
inputs, source, targets, extra model arguments and the seeds of realisations, and the guard that
names where a keyword of the earlier signature went. Each raises a clear error naming the argument,
what was expected and what was received.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping
from dataclasses import fields, replace
from typing import Any, Callable, Sequence, TypeVar

import numpy as np
import torch

from propgrad.core.forward import RunSettings
from propgrad.core.validation import check_int, check_seed
from propgrad.errors import InvalidParameterError
from propgrad.explain.scoring import is_column_index
from propgrad.sources.base import InterventionSource
from propgrad.stats.placebo_test import auto_stop
from propgrad.stats.settings import AUTO, TestSettings, test_settings

Target = int | Sequence[int] | torch.Tensor | None
F = TypeVar("F", bound=Callable[..., Any])

_TEST_OPTION = "settings=propgrad.stats.settings.test_settings({name}=...)"
_CONSTRUCTOR = "PropertyGradient(model, {name}=...): the explainer's run settings are set once"
MOVED_KEYWORDS: dict[str, str] = {
    **{  # attribute takes these itself; attribute_realisations takes the whole test in settings
        name: _TEST_OPTION.format(name=name)
        for name in ("n_permutations", "alpha", "seed", "n_placebos", "min_effect", "correction")
    },
    "statistic": _TEST_OPTION.format(name="statistic"),
    "per": _TEST_OPTION.format(name="per"),
    "sequential": _TEST_OPTION.format(name="sequential"),
    "placebo": _TEST_OPTION.format(name="placebo"),
    "test": 'n_placebos=M (e.g. 199): test="both" runs the placebo test beside the permutation test, and '
    "M > 0 placebos now say so (0, the default, runs the permutation test alone)",
    "batch_size": _CONSTRUCTOR.format(name="batch_size"),
    "internal_batch_size": _CONSTRUCTOR.format(name="batch_size") + " (Captum's internal_batch_size)",
    "show_progress": _CONSTRUCTOR.format(name="show_progress"),
    "realisations": "PropertyGradient.attribute_realisations(inputs, source, realisations, ...), which returns "
    "Realisations",
    "confidence_level": "PropertyGradient.attribute_realisations(..., confidence_level=...)",
    "return_convergence_delta": "the explanation's convergence_delta property (explanation.convergence_delta), "
    "one per explanation",
}
"""Keywords :meth:`propgrad.PropertyGradient.attribute` took before issue 18 (or takes, where its sibling
:meth:`~propgrad.PropertyGradient.attribute_realisations` does not), and where each went. A method is
only refused the keywords it does not take itself."""


def refuse_moved_keywords(method: F) -> F:
    """Wrap a method so that a keyword of the earlier ``attribute`` signature fails saying where it went.

    A keyword the method takes itself is passed on untouched; one listed in :data:`MOVED_KEYWORDS`
    raises :class:`~propgrad.errors.InvalidParameterError` naming its new place; anything else
    reaches the method, whose own ``TypeError`` names it.
    """
    own = set(inspect.signature(method).parameters)

    @functools.wraps(method)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        moved = [key for key in kwargs if key in MOVED_KEYWORDS and key not in own]
        if moved:
            name = method.__qualname__
            raise InvalidParameterError(
                "; ".join(f"{name}() no longer takes {key}=: use {MOVED_KEYWORDS[key]}" for key in moved)
            )
        return method(*args, **kwargs)

    return guarded  # type: ignore[return-value]


def resolve_test_settings(
    settings: TestSettings | None,
    *,
    n_permutations: Any,
    alpha: Any,
    seed: Any,
    n_placebos: Any,
    min_effect: Any,
    correction: Any,
) -> TestSettings:
    """The door's one check of the test: ``settings`` with the keywords of ``attribute`` merged in.

    A keyword left at its default takes the value of ``settings``; a keyword given with another
    value wins, and contradicting a value ``settings`` set away from its default is an error (the
    test would otherwise silently use one of two values). Every field is then checked once, by
    :func:`propgrad.stats.settings.test_settings`.

    Raises:
        InvalidParameterError: ``settings`` is not a :class:`TestSettings`, a keyword contradicts it,
            or any setting is bad (see :func:`propgrad.stats.settings.test_settings`).
    """
    if settings is not None and not isinstance(settings, TestSettings):
        raise InvalidParameterError(
            "settings must be a TestSettings from propgrad.stats.settings.test_settings(...) or None, got "
            f"{type(settings).__name__}"
        )
    keywords = {
        "n_permutations": n_permutations,
        "alpha": alpha,
        "seed": seed,
        "n_placebos": n_placebos,
        "min_effect": min_effect,
        "correction": correction,
    }
    base = settings if settings is not None else TestSettings()
    defaults = {f.name: f.default for f in fields(TestSettings)}
    merged = {f.name: getattr(base, f.name) for f in fields(TestSettings)}
    for name, value in keywords.items():
        if not _differs(value, defaults[name]):
            continue
        given = merged[name]
        if settings is not None and _differs(given, defaults[name]) and _differs(given, value):
            raise InvalidParameterError(
                f"{name}={_short(value)} contradicts settings.{name}={given!r}; give it once (as the keyword or in "
                "settings)"
            )
        merged[name] = value
    if settings is None or settings.placebo_stop == auto_stop(settings.alpha, settings.n_placebos):
        merged["placebo_stop"] = AUTO  # follows the final alpha and M
    return test_settings(**merged)


def _differs(value: Any, default: Any) -> bool:
    """Whether a keyword's value is not its default (anything that cannot be compared counts as given)."""
    if value is None or default is None:
        return value is not default
    try:
        return bool(value != default)
    except (TypeError, ValueError, RuntimeError):  # an array of several values, a tensor of several
        return True


def realisation_seeds(realisations: Any, seed: int) -> tuple[int, ...]:
    """The seeds of R realisations: ``seed, seed + 1, ...`` for a number R, else the given list of seeds.

    Raises:
        InvalidParameterError: neither a positive number nor a non-empty list of distinct seeds, or
            ``seed + R - 1`` past the largest seed.
    """
    if isinstance(realisations, (int, np.integer)) and not isinstance(realisations, (bool, np.bool_)):
        r = check_int(realisations, "realisations", hint="the number of realisations R, or a list of seeds")
        if seed + r - 1 > 2**63 - 1:
            raise InvalidParameterError(f"realisations={r} from seed={seed} runs past the largest seed 2**63 - 1")
        return tuple(seed + k for k in range(r))
    if isinstance(realisations, (str, bytes)) or not isinstance(realisations, (Sequence, np.ndarray, torch.Tensor)):
        raise InvalidParameterError(
            f"realisations must be a number R or a list of seeds, got {type(realisations).__name__}"
        )
    seeds = tuple(check_seed(s, "realisations seed") for s in list(realisations))
    if not seeds:
        raise InvalidParameterError("realisations must hold at least one seed")
    if len(set(seeds)) != len(seeds):
        raise InvalidParameterError(
            f"realisations holds a seed twice: {list(seeds)}; repeated seeds repeat the same draw"
        )
    return seeds


def as_batch(inputs: Any) -> Any:
    if isinstance(inputs, torch.Tensor) and inputs.dim() == 3:
        return inputs[None]
    if isinstance(inputs, torch.Tensor):
        raise InvalidParameterError(f"inputs must have shape (3, H, W) or (B, 3, H, W), got {tuple(inputs.shape)}")
    return inputs


def resolve_source(source: str | InterventionSource, params: Mapping[str, Any] | None) -> InterventionSource:
    """The source to intervene with: a registered name or class built with ``params``, or an instance.

    One builder for every plugin kind (:func:`propgrad.plugins.parameters.build`) checks ``params``
    (a mapping with string keys, each a parameter the source declares or takes, none with an
    instance) and names what was wrong.
    """
    from propgrad.plugins.parameters import build

    return build("sources", source, params, what="source_params")


def resolve_targets(target: Target, n: int) -> list[int | None]:
    if target is None:
        return [None] * n
    if isinstance(target, (torch.Tensor, np.ndarray)):
        if isinstance(target, torch.Tensor):
            integer = target.dtype in _INTEGER_DTYPES
        else:
            integer = bool(np.issubdtype(target.dtype, np.integer))
        if not integer:
            raise InvalidParameterError(
                f"target must hold integer column indices, got {_short(target)} of dtype {target.dtype}; "
                "bools and floats are not column indices (use .long() for a tensor of whole numbers)"
            )
        target = target.tolist()
    if is_column_index(target):
        return [int(target)] * n
    if isinstance(target, (str, bytes)) or not isinstance(target, Sequence):
        raise InvalidParameterError(
            f"target must be an int, None, or {n} ints (one per input), got {target!r} ({type(target).__name__}); "
            "bools and floats are not column indices"
        )
    targets = list(target)
    bad = [t for t in targets if not is_column_index(t)]
    if bad:
        raise InvalidParameterError(
            f"target must hold integer column indices, got {bad[0]!r} ({type(bad[0]).__name__}); "
            "bools and floats are not column indices"
        )
    if len(targets) != n:
        raise InvalidParameterError(
            f"target must be an int, None, or {n} ints (one per input), got {len(targets)} values"
        )
    return [int(t) for t in targets]


_INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def _short(value: Any) -> str:
    """``repr`` of a value, cut to 60 characters for an error message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def is_per_image(arg: Any, n_images: int) -> bool:
    """Captum's rule: a tensor extra argument with one row per input image is expanded per image."""
    return isinstance(arg, torch.Tensor) and arg.dim() >= 1 and arg.shape[0] == n_images


def as_tuple(args: Any) -> tuple[Any, ...]:
    if args is None:
        return ()
    return tuple(args) if isinstance(args, tuple) else (args,)


def with_forward_args(run: RunSettings, additional_forward_args: Any, n_images: int) -> RunSettings:
    """``run`` with one call's extra forward arguments (Captum's ``additional_forward_args``: a value or a
    tuple), each flagged per image when it is a tensor with one row per input image (:func:`is_per_image`)."""
    extra = as_tuple(additional_forward_args)
    return replace(run, additional_forward_args=extra, per_image_args=tuple(is_per_image(a, n_images) for a in extra))
