"""Integrity of cell-store lines: a checksum per line and the fields and types each kind must have.

Every line of a cell store carries ``checksum``, a short hash of the line's canonical JSON
without that field, so an edited or damaged record is noticed on load instead of being reported.
:func:`check_record` then checks the fields of the known kinds (``header``, ``identity``,
``segment``, ``property``, ``baseline``); other kinds only need ``kind`` and ``key``. Extra
fields are allowed, so records can grow without breaking old stores.
"""

from __future__ import annotations

import hashlib
import json
import math
from types import UnionType
from typing import Any, Callable, Union, get_args, get_origin, get_type_hints

from propgrad.harness.cells import BaselineRecord, PropertyRecord

CHECKSUM_FIELD = "checksum"


def checksum(record: dict[str, Any]) -> str:
    """The short hash of ``record``'s canonical JSON (keys sorted, compact), without its checksum."""
    body = {k: v for k, v in record.items() if k != CHECKSUM_FIELD}
    blob = json.dumps(body, sort_keys=True, allow_nan=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return _is_int(x) or isinstance(x, float)


def _is_finite_number(x: Any) -> bool:
    return _is_number(x) and math.isfinite(x)


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda x: x is None or check(x)


def _is_str(x: Any) -> bool:
    return isinstance(x, str)


def _is_bool(x: Any) -> bool:
    return isinstance(x, bool)


def _is_number_list(x: Any) -> bool:
    return isinstance(x, list) and all(_is_number(v) for v in x)


def _is_match(x: Any) -> bool:
    return isinstance(x, list) and all(
        isinstance(p, list) and len(p) == 2 and _is_int(p[0]) and (_is_str(p[1]) or _is_int(p[1])) for p in x
    )


def _is_timing(x: Any) -> bool:
    return isinstance(x, dict) and all(_is_str(k) and _is_number(v) for k, v in x.items())


def _check_of(annotation: Any) -> tuple[Callable[[Any], bool], str]:
    """The check and its description for one field type of a cell record's TypedDict."""
    if get_origin(annotation) in (Union, UnionType) and type(None) in get_args(annotation):
        (inner,) = [a for a in get_args(annotation) if a is not type(None)]
        check, what = _NULLABLE.get(inner, _check_of(inner))
        return _optional(check), f"{what} or null"
    if get_origin(annotation) is list:
        return _is_number_list, "a list of numbers"
    return _SIMPLE[annotation]


def _fields_of(record_type: type) -> dict[str, tuple[Callable[[Any], bool], str]]:
    """Field checks of a cell record type, read from its annotations (``kind`` and ``key`` are checked apart)."""
    hints = get_type_hints(record_type)
    return {name: _check_of(tp) for name, tp in hints.items() if name not in ("kind", "key")}


_SIMPLE: dict[Any, tuple[Callable[[Any], bool], str]] = {
    int: (_is_int, "an integer"),
    float: (_is_number, "a number"),
    bool: (_is_bool, "true or false"),
    str: (_is_str, "a string"),
}
#: A nullable float is a finite number when present (a baseline's change score).
_NULLABLE: dict[Any, tuple[Callable[[Any], bool], str]] = {float: (_is_finite_number, "a finite number")}

#: kind -> {field: (check, what the field must be)}; the cell kinds' fields come from their TypedDicts.
FIELDS: dict[str, dict[str, tuple[Callable[[Any], bool], str]]] = {
    "header": {
        "format": (_is_int, "an integer"),
        "settings_hash": (_is_str, "a string"),
        "settings": (lambda x: isinstance(x, dict), "an object"),
    },
    "identity": {
        "identity": (lambda x: isinstance(x, dict), "an object"),
        "match": (_is_match, "a list of [position, value] pairs"),
    },
    "segment": {
        "cells_computed": (_is_int, "an integer"),
        "timing": (_is_timing, "an object of numbers"),
    },
    **{
        kind: _fields_of(record_type)
        for kind, record_type in (("property", PropertyRecord), ("baseline", BaselineRecord))
    },
}


def check_record(record: Any, *, first: bool = False) -> str | None:
    """What is wrong with one parsed store line, or None if nothing is.

    Args:
        record: The parsed JSON of the line.
        first: Whether it is the first line (the header, which has no ``key``).

    Returns:
        A short description such as ``"field 'score' must be a number, got str"``.
    """
    if not isinstance(record, dict):
        return f"a record must be a JSON object, got {type(record).__name__}"
    kind = record.get("kind")
    if not isinstance(kind, str):
        return "field 'kind' is missing or not a string"
    if first != (kind == "header"):
        return "the first line must be the header and only the first" if first else "a second header line"
    if not isinstance(record.get(CHECKSUM_FIELD), str):
        return f"field {CHECKSUM_FIELD!r} is missing"
    if record[CHECKSUM_FIELD] != checksum(record):
        return "checksum mismatch: the record was edited or damaged"
    if not first:
        key = record.get("key")
        if not isinstance(key, list) or not key or not all(_is_str(k) or _is_int(k) for k in key):
            return "field 'key' must be a non-empty list of strings and integers"
        if kind in ("property", "baseline", "identity", "segment") and key[0] != kind:
            return f"a {kind} record's key must start with {kind!r}, got {key[0]!r}"
    for name, (check, what) in FIELDS.get(kind, {}).items():
        if name not in record:
            return f"field {name!r} of a {kind} record is missing"
        if not check(record[name]):
            return f"field {name!r} of a {kind} record must be {what}, got {type(record[name]).__name__}"
    return None
