"""Resolving the arguments of :meth:`propgrad.PropertyGradient.attribute`: inputs, source, targets,
extra model arguments, the choice of test and the seeds of realisations. Each raises a clear error
naming the argument, what was expected and what was received.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, Sequence

import numpy as np
import torch

from propgrad.core.validation import check_choice, check_int, check_seed
from propgrad.sources.base import InterventionSource

Target = int | Sequence[int] | torch.Tensor | None


def check_test_choice(test: Any) -> str:
    if isinstance(test, str) and test == "placebo":
        raise ValueError(
            'test="placebo" is not a choice: the placebo test is reported beside the permutation test, never '
            'instead of it; use test="both"'
        )
    return check_choice(test, "test", ("permutation", "both"))


def realisation_seeds(realisations: Any, seed: int) -> tuple[int, ...] | None:
    """None, or the seeds of R realisations: ``seed, seed + 1, ...`` for a number R, else the given list."""
    if realisations is None:
        return None
    if isinstance(realisations, (int, np.integer)) and not isinstance(realisations, (bool, np.bool_)):
        r = check_int(realisations, "realisations", hint="the number of realisations R, or a list of seeds")
        if seed + r - 1 > 2**63 - 1:
            raise ValueError(f"realisations={r} from seed={seed} runs past the largest seed 2**63 - 1")
        return tuple(seed + k for k in range(r))
    if isinstance(realisations, (str, bytes)) or not isinstance(realisations, (Sequence, np.ndarray, torch.Tensor)):
        raise TypeError(f"realisations must be None, a number R or a list of seeds, got {type(realisations).__name__}")
    seeds = tuple(check_seed(s, "realisations seed") for s in list(realisations))
    if not seeds:
        raise ValueError("realisations must hold at least one seed")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"realisations holds a seed twice: {list(seeds)}; repeated seeds repeat the same draw")
    return seeds


def resolve_batch_size(batch_size: int, internal_batch_size: int | None) -> int:
    """``batch_size``, or Captum's ``internal_batch_size`` spelling of it; both given must agree."""
    batch_size = check_int(batch_size, "batch_size")
    if internal_batch_size is None:
        return batch_size
    internal = check_int(internal_batch_size, "internal_batch_size", hint="Captum's name for batch_size")
    if batch_size != 32 and internal != batch_size:  # 32: batch_size's default, i.e. not given
        raise ValueError(
            f"batch_size={batch_size} and internal_batch_size={internal} disagree; they are one setting "
            "(internal_batch_size is Captum's name for it): pass one of them"
        )
    return internal


def null_margin(test: Any) -> torch.Tensor:
    """Observed statistic minus the ``1 - alpha`` quantile of its permutation null, per column.

    Positive when the statistic lies beyond the test's critical value, by how much (in the
    statistic's units); NaN where the null distribution was not kept.
    """
    statistic = test.statistic.double()
    if test.null_distribution is None:
        return torch.full_like(statistic, float("nan"))
    critical = torch.quantile(test.null_distribution.double(), 1 - test.alpha, dim=0)
    return statistic - critical


def as_batch(inputs: Any) -> Any:
    if isinstance(inputs, torch.Tensor) and inputs.dim() == 3:
        return inputs[None]
    if isinstance(inputs, torch.Tensor):
        raise ValueError(f"inputs must have shape (3, H, W) or (B, 3, H, W), got {tuple(inputs.shape)}")
    return inputs


def resolve_source(source: str | InterventionSource, params: dict[str, Any] | None) -> InterventionSource:
    if params is not None and not isinstance(params, Mapping):
        raise TypeError(
            f"source_params must be a dict of the source's parameters, e.g. {{'steps': 11}}, got "
            f"{type(params).__name__} {_short(params)}"
        )
    bad_keys = [key for key in (params or {}) if not isinstance(key, str)]
    if bad_keys:
        raise TypeError(f"source_params keys must be parameter names (strings), got {bad_keys[0]!r}")
    if isinstance(source, InterventionSource):
        if params:
            raise ValueError("source_params can only be used with a source name, not a source instance")
        return source
    if isinstance(source, str):
        from propgrad.plugins import get_source

        return _construct(get_source(source), source, params or {})
    if isinstance(source, type) and issubclass(source, InterventionSource):
        return _construct(source, source.__name__, params or {})
    raise TypeError(f"source must be a source name or an InterventionSource, got {type(source).__name__}")


def _construct(cls: type[InterventionSource], name: str, params: Mapping[str, Any]) -> InterventionSource:
    """``cls(**params)``, refusing a parameter the source does not take by name, with the ones it does."""
    try:
        accepted = inspect.signature(cls).parameters
    except (TypeError, ValueError):  # no signature to read: let the constructor decide
        return cls(**params)
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    unknown = [key for key in params if key not in accepted]
    if unknown and not takes_any:
        names = ", ".join(k for k, p in accepted.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL) or "none"
        raise TypeError(f"source {name!r} has no parameter {unknown[0]!r}; its parameters: {names}")
    return cls(**params)


def resolve_targets(target: Target, n: int) -> list[int | None]:
    if target is None:
        return [None] * n
    if isinstance(target, (torch.Tensor, np.ndarray)):
        if isinstance(target, torch.Tensor):
            integer = target.dtype in _INTEGER_DTYPES
        else:
            integer = bool(np.issubdtype(target.dtype, np.integer))
        if not integer:
            raise TypeError(
                f"target must hold integer column indices, got {_short(target)} of dtype {target.dtype}; "
                "bools and floats are not column indices (use .long() for a tensor of whole numbers)"
            )
        target = target.tolist()
    if _is_index(target):
        return [int(target)] * n
    if isinstance(target, (str, bytes)) or not isinstance(target, Sequence):
        raise TypeError(
            f"target must be an int, None, or {n} ints (one per input), got {target!r} ({type(target).__name__}); "
            "bools and floats are not column indices"
        )
    targets = list(target)
    bad = [t for t in targets if not _is_index(t)]
    if bad:
        raise TypeError(
            f"target must hold integer column indices, got {bad[0]!r} ({type(bad[0]).__name__}); "
            "bools and floats are not column indices"
        )
    if len(targets) != n:
        raise ValueError(f"target must be an int, None, or {n} ints (one per input), got {len(targets)} values")
    return [int(t) for t in targets]


_INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def _is_index(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


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
