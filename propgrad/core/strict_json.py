"""Strict JSON: no NaN, Infinity or "inf" strings, but null with the reason recorded beside the data.

Python's ``json`` writes ``NaN`` and ``Infinity`` by default, which are not JSON: strict parsers
(JavaScript's ``JSON.parse``, ``jq``, most other languages) refuse the file. propgrad writes every
JSON file through :func:`dumps_strict`: each non-finite number becomes ``null`` and, when the data is
an object, its top-level ``null_reasons`` maps the JSON pointer (RFC 6901) of every such value to
why it is null (``"NaN"``, ``"+inf"`` or ``"-inf"`` in the computed data).
"""

from __future__ import annotations

import json
import math
from typing import Any

from propgrad.errors import InvalidParameterError

NULL_REASONS = "null_reasons"
"""Top-level key of a JSON object that lists the values written as null instead of NaN or ±inf."""


def _pointer_part(key: Any) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")


def _reason(value: float) -> str:
    if math.isnan(value):
        return "NaN (undefined in the computed data, e.g. an AUC over images of one class only)"
    return "+inf in the computed data" if value > 0 else "-inf in the computed data"


def strict_data(data: Any) -> tuple[Any, dict[str, str]]:
    """``data`` with every non-finite float (and "inf"/"-inf"/"nan" string) replaced by None.

    Returns:
        ``(clean, reasons)``: the cleaned copy (dicts, lists and tuples are copied; tuples become
        lists) and a mapping from the JSON pointer of each replaced value to its reason.
    """
    reasons: dict[str, str] = {}

    def walk(x: Any, path: str) -> Any:
        if isinstance(x, bool) or x is None or isinstance(x, int):
            return x
        if isinstance(x, float):
            if math.isfinite(x):
                return x
            reasons[path] = _reason(x)
            return None
        if isinstance(x, str):
            if x in ("inf", "-inf", "+inf", "nan", "NaN", "Infinity", "-Infinity"):
                reasons[path] = _reason(float(x.replace("Infinity", "inf")))
                return None
            return x
        if isinstance(x, dict):
            return {k: walk(v, f"{path}/{_pointer_part(k)}") for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [walk(v, f"{path}/{i}") for i, v in enumerate(x)]
        if hasattr(x, "item") and callable(x.item) and getattr(x, "ndim", 1) == 0:  # numpy / torch scalars
            return walk(x.item(), path)
        return x

    return walk(data, ""), reasons


def strict_with_reasons(data: Any) -> Any:
    """:func:`strict_data`, with the reasons stored under ``null_reasons`` when ``data`` is a dict.

    Reasons already in ``data`` (from an earlier pass) are kept.
    """
    clean, reasons = strict_data(data)
    if isinstance(clean, dict) and (reasons or NULL_REASONS in clean):
        clean[NULL_REASONS] = {**dict(clean.get(NULL_REASONS) or {}), **reasons}
    return clean


def dumps_strict(data: Any, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`strict_with_reasons` (``data``) with ``allow_nan=False``.

    Raises:
        TypeError: Something in ``data`` that JSON cannot hold (the error names its type).
    """
    return json.dumps(strict_with_reasons(data), allow_nan=False, **kwargs)


def loads_strict(text: str) -> Any:
    """Parse JSON, refusing ``NaN``, ``Infinity`` and ``-Infinity`` literals (ValueError)."""

    def refuse(name: str) -> Any:
        raise InvalidParameterError(f"not strict JSON: the literal {name} is not allowed")

    return json.loads(text, parse_constant=refuse)
