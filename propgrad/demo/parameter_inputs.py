"""The inputs of a source's parameters, built from its declaration, and their values read back.

Every registered source's parameters (:func:`propgrad.plugins.parameters.parameter_specs`) become
one :class:`ParameterInput` each: a checkbox for a flag, a number field for a number (its
inclusive bounds as the field's limits), a menu for a choice, and a text field for the rest
(tuples, lists, names, files), whose text is read as ``propgrad explain --param name=text`` reads
it (:func:`propgrad.plugins.parameters.parse_cli_params`), so one reader checks both doors. An
empty field keeps the parameter's default.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any, Literal, Mapping

from propgrad.plugins.parameters import REQUIRED, ParameterSpec, parameter_specs, parse_cli_params

Kind = Literal["checkbox", "number", "menu", "text"]
DEFAULT_CHOICE = "None"
"""The menu entry of an optional flag's default, None (read back as None by the parameter's parser)."""


@dataclass(frozen=True)
class ParameterInput:
    """One input of the page, as the declaration describes it.

    Attributes:
        name: The parameter's name.
        kind: ``checkbox``, ``number``, ``menu`` or ``text``.
        label: What the page shows above the input (name and type).
        info: The declaration's help text, bounds and default.
        value: The input's initial value (the default; None or "" for none).
        choices: A menu's entries (text).
        minimum: A number's smallest value, when the declaration's lower bound is inclusive.
        maximum: A number's largest value, when the upper bound is inclusive.
        integer: A whole number.
    """

    name: str
    kind: Kind
    label: str
    info: str
    value: Any
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    integer: bool = False


def _members(annotation: Any) -> tuple[list[Any], bool]:
    """The union's members other than None, and whether None is one of them."""
    options = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, type(int | None)) else ()
    options = options or (annotation,)
    return [m for m in options if m is not type(None)], type(None) in options


def _text(value: Any) -> str:
    """A default as the text field shows it: numbers, names and tuples of them; "" for anything else."""
    if value is None or value is REQUIRED:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    if isinstance(value, (tuple, list)) and all(isinstance(v, (int, float, str)) for v in value):
        return ",".join(str(v) for v in value)
    return ""


def parameter_input(spec: ParameterSpec) -> ParameterInput:
    """The input of one declared (or signature-read) parameter."""
    members, optional = _members(spec.annotation)
    kind = members[0] if len(members) == 1 else Any
    info = spec.help or "(no help declared)"
    if spec.bounds is not None:
        info += f"; allowed: {spec.bounds.text}"
    info += "; required" if spec.required else f"; default: {_text(spec.default) or spec.default!r}"
    label = f"{spec.name} ({spec.type_text()})"
    if spec.choices is not None:
        choices = tuple(str(c) for c in spec.choices) + ((DEFAULT_CHOICE,) if optional else ())
        value = None if spec.required else DEFAULT_CHOICE if spec.default is None else str(spec.default)
        return ParameterInput(spec.name, "menu", label, info, value, choices)
    if kind is bool and spec.parse is None and spec.declared:
        if optional:
            value = DEFAULT_CHOICE if spec.default is None else _text(spec.default)
            return ParameterInput(spec.name, "menu", label, info, value, ("true", "false", DEFAULT_CHOICE))
        return ParameterInput(spec.name, "checkbox", label, info, bool(spec.default))
    if kind in (int, float) and spec.parse is None and spec.declared:
        low = high = None
        if spec.bounds is not None:
            b = spec.bounds.bounds
            low = b.minimum if b.min_inclusive else None
            high = b.maximum if b.max_inclusive else None
        value = None if spec.required or spec.default is None else spec.default
        return ParameterInput(spec.name, "number", label, info, value, minimum=low, maximum=high, integer=kind is int)
    return ParameterInput(spec.name, "text", label, info, _text(spec.default))


def source_inputs(source: str) -> tuple[ParameterInput, ...]:
    """The inputs of every parameter of the registered source ``source``, in declaration order."""
    from propgrad.plugins import get_source

    return tuple(parameter_input(spec) for spec in parameter_specs(get_source(source)))


def source_params(source: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """The source's keyword arguments from the inputs' values (an empty one keeps the default).

    Every value is written as ``name=text`` and read by the source's declaration, exactly as
    ``propgrad explain --param name=text`` is (:func:`~propgrad.plugins.parameters.parse_cli_params`).

    Raises:
        InvalidParameterError: a name the source does not take, or a value its declaration refuses
            (one line naming the parameter, its type and bounds).
    """
    pairs = []
    for name, value in values.items():
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, float) and value.is_integer():
            value = int(value)
        pairs.append(f"{name}={value}")
    return parse_cli_params(source, pairs)
