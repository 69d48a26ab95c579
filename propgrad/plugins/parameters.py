"""Declared parameters of sources, baselines and suites, and the one place that reads them.

A plugin class declares its parameters once, as a frozen dataclass deriving from
:class:`Parameters`, set as the class attribute ``Params``; each field has a type (its annotation),
a default, help text and, for numbers, bounds written as an interval (:func:`parameter`)::

    @dataclass(frozen=True)
    class HueShiftParams(Parameters):
        max_degrees: float = parameter(360.0, "largest rotation in degrees", bounds="(0, 360]")
        steps: int = parameter(16, "images in the sequence", bounds=f"[2, {MAX_STEPS}]")

    class HueShiftSource(InterventionSource):
        Params = HueShiftParams

Constructing the class checks every value against its declaration (an
:class:`~propgrad.errors.InvalidParameterError` naming the parameter, its type and bounds), and
the instance keeps them as ``self.params`` (also readable as ``self.steps``). This module reads
the declaration for everything else: ``propgrad explain --param name=value`` (:func:`parse_cli_params`),
building a plugin from a name, class or instance (:func:`build`), the defaults in a run's identity
(:func:`defaults`), a baseline's settings handed back to Quantus (:func:`settings_of`) and the
``propgrad plugins`` listing (:func:`describe`).

A class without a declaration (plain constructor keyword arguments, as plugins were written before)
keeps working: its constructor's signature is read here, once per class (:func:`parameter_specs`),
and nowhere else.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import json
import os
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from propgrad.core.validation import MAX_STEPS, Bounds, check_bool, check_choice, check_int, check_number
from propgrad.errors import InvalidParameterError, ParameterTypeError

__all__ = [
    "Configurable",
    "Interval",
    "ParameterSpec",
    "Parameters",
    "as_numbers",
    "as_size",
    "build",
    "defaults",
    "describe",
    "parameter",
    "parameter_specs",
    "parse_cli_params",
    "settings_of",
    "steps_parameter",
]

MISSING: Any = dataclasses.MISSING


class _Required:
    """The default of a parameter that has none."""

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()
_META_KEY = "propgrad"
_INTERVAL = re.compile(r"^\s*([\[(])\s*([^,\s]+)\s*,\s*([^,\s]+)\s*([\])])\s*$")


@dataclasses.dataclass(frozen=True)
class Interval:
    """Bounds of a number as written in a declaration: ``[lo, hi]``, ``(lo, hi]``, ``[lo, inf)`` ...

    Attributes:
        text: The interval as declared (shown by ``propgrad plugins``).
        bounds: What it allows (:class:`propgrad.core.validation.Bounds`; an infinite end is None).
    """

    text: str
    bounds: Bounds

    @classmethod
    def parse(cls, text: str) -> Interval:
        """Read ``"[2, 10000]"``, ``"(0, 1]"``, ``"(0, inf)"`` or ``"[-inf, 255]"``.

        Raises:
            ValueError: For anything else (a plugin author's mistake, reported at class definition).
        """
        match = _INTERVAL.match(text) if isinstance(text, str) else None
        if match is None:
            raise InvalidParameterError(
                f"bounds must be an interval such as '[0, 1]', '(0, inf)' or '[2, 100)', got {text!r}"
            )
        left, lo, hi, right = match.groups()
        low, high = _end(lo, text), _end(hi, text)
        return cls(text.strip(), Bounds(low, high, left == "[" and low is not None, right == "]" and high is not None))

    def check(self, value: Any, name: str, *, integer: bool, strings: bool = False, hint: str = "") -> Any:
        """``value`` checked against the interval as an integer or a finite number (``strings``: also as text)."""
        b = self.bounds
        if integer:
            lo = None if b.minimum is None else int(np.floor(b.minimum)) + (0 if b.min_inclusive else 1)
            hi = None if b.maximum is None else int(np.ceil(b.maximum)) - (0 if b.max_inclusive else 1)
            return check_int(value, name, minimum=lo, maximum=hi, strings=strings, hint=hint)
        return check_number(value, name, b, strings=strings, hint=hint)


_UNBOUNDED = Interval("", Bounds())


def _end(text: str, interval: str) -> float | None:
    if text.lstrip("+-").lower() in ("inf", "infinity"):
        return None
    try:
        return float(text)
    except ValueError:
        raise InvalidParameterError(f"bounds {interval!r}: {text!r} is not a number or inf") from None


@dataclasses.dataclass(frozen=True)
class ParameterSpec:
    """One parameter as the command line, the registry and the listing see it.

    Attributes:
        name: The keyword argument's name.
        annotation: Its type (resolved), or ``Any`` when unknown.
        default: Its default, or :data:`REQUIRED`.
        help: One line of help text.
        bounds: Allowed numbers (for ints, floats and their tuples and lists), or None.
        choices: Allowed values, or None (``Literal[...]`` annotations set them).
        parse: ``parse(value, name) -> value``, a custom check for what the type cannot say; it
            receives text as typed on a command line too.
        hint: Appended to error messages (why there is a bound ...).
        declared: False for a parameter read from a constructor's signature.
    """

    name: str
    annotation: Any = Any
    default: Any = REQUIRED
    help: str = ""
    bounds: Interval | None = None
    choices: tuple[Any, ...] | None = None
    parse: Callable[[Any, str], Any] | None = None
    hint: str = ""
    declared: bool = True

    @property
    def required(self) -> bool:
        """True when the parameter has no default."""
        return self.default is REQUIRED

    def type_text(self) -> str:
        """The type as a reader writes it: ``int``, ``float | None``, ``tuple[int, int]``."""
        return _type_text(self.annotation)

    def describe(self) -> dict[str, Any]:
        """A JSON-serialisable record: name, type, default, bounds, choices and help."""
        return {
            "name": self.name,
            "type": self.type_text(),
            "default": None if self.required else _jsonable(self.default),
            "required": self.required,
            "bounds": None if self.bounds is None else self.bounds.text,
            "choices": None if self.choices is None else [_jsonable(c) for c in self.choices],
            "help": self.help,
        }


def parameter(
    default: Any = MISSING,
    help: str = "",  # noqa: A002 - the word argparse and click use
    *,
    bounds: str | None = None,
    choices: Sequence[Any] | None = None,
    parse: Callable[[Any, str], Any] | None = None,
    hint: str = "",
    factory: Callable[[], Any] | None = None,
) -> Any:
    """Declare one field of a :class:`Parameters` dataclass.

    Args:
        default: The default value (omit for a required parameter).
        help: One line saying what the parameter does, shown by ``propgrad plugins``.
        bounds: Allowed numbers as an interval, ``"[2, 10000]"``, ``"(0, 1]"``, ``"(0, inf)"``;
            for a tuple or list of numbers it bounds every element.
        choices: The allowed values (or annotate the field with ``Literal[...]``).
        parse: ``parse(value, name) -> value`` for what the type cannot say (a 3-vector given as
            ``"x"``, a mask file); it must raise an error naming ``name``. It also receives text as
            typed on a command line.
        hint: Appended to error messages, e.g. why there is a maximum.
        factory: Builds a mutable default (a list) instead of ``default``.

    Returns:
        A ``dataclasses.field`` carrying the declaration.
    """
    meta = {
        "help": help,
        "bounds": None if bounds is None else Interval.parse(bounds),
        "choices": None if choices is None else tuple(choices),
        "parse": parse,
        "hint": hint,
    }
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata={_META_KEY: meta})
    return dataclasses.field(default=default, metadata={_META_KEY: meta})


def steps_parameter(default: int, help: str) -> Any:  # noqa: A002 - as in parameter()
    """Declare a number of steps: an integer from 2 to :data:`~propgrad.core.validation.MAX_STEPS`."""
    return parameter(
        default,
        help,
        bounds=f"[2, {MAX_STEPS}]",
        hint=f"more than {MAX_STEPS} steps would not fit the permutation test or memory "
        "(propgrad.core.validation.MAX_STEPS)",
    )


@dataclasses.dataclass(frozen=True)
class Parameters:
    """Base of a plugin's declared parameters: a frozen dataclass whose fields use :func:`parameter`.

    Creating an instance checks every field against its declaration and stores the checked value
    (``steps=np.int64(8)`` becomes ``8``); then :meth:`check` runs, for rules that tie fields together.

    Attributes:
        lenient: Class-level switch: also accept numbers, flags and vectors written as text
            (``"0.5"``, ``"true"``, ``"1,0,1"``) and whole floats for integers (``8.0``) from Python,
            as typed in a config file. The command line's ``--param`` always parses text.
    """

    lenient: ClassVar[bool] = False

    def __post_init__(self) -> None:
        for spec in parameter_specs(type(self)):
            value = getattr(self, spec.name)
            object.__setattr__(self, spec.name, check_value(spec, value, text=type(self).lenient))
        self.check()

    def check(self) -> None:
        """Check rules that tie several fields together; raise an error naming them. Default: none."""

    def replace_value(self, name: str, value: Any) -> None:
        """Store a normalised ``value`` for field ``name`` (for :meth:`check`; instances are frozen)."""
        object.__setattr__(self, name, value)

    def as_dict(self) -> dict[str, Any]:
        """The fields and their (checked) values, shallow: tensors stay tensors."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


class Configurable:
    """Mixin of the plugin base classes: ``__init__(*args, **params)`` builds the declared ``Params``.

    Positional arguments fill the declared fields in their order (``Source("sphere")``), as a
    dataclass does.
    A subclass that sets ``Params`` (a :class:`Parameters` dataclass) need not write ``__init__``;
    one that computes more from its parameters calls ``super().__init__(**params)`` first. A subclass
    that writes its own ``__init__`` without calling it (plain keyword arguments) works as before.
    """

    Params: ClassVar[type[Parameters] | None] = None
    params: Parameters

    def __init__(self, *args: Any, **params: Any) -> None:
        declared = type(self).Params
        if declared is None:
            if args or params:
                raise InvalidParameterError(f"{_label(type(self))} takes no parameters, got {sorted(params) or args}")
            return
        names = [f.name for f in dataclasses.fields(declared)]
        unknown = [key for key in params if key not in names]
        if unknown:
            raise _unknown(type(self), unknown[0], "parameter")
        if len(args) > len(names):
            raise InvalidParameterError(f"{_label(type(self))} takes at most {len(names)} parameters, got {len(args)}")
        twice = [name for name in names[: len(args)] if name in params]
        if twice:
            raise InvalidParameterError(f"{_label(type(self))} got {twice[0]!r} both by position and by name")
        self.params = declared(*args, **params)

    def __getattr__(self, name: str) -> Any:
        """A declared parameter read as an attribute (``source.steps`` is ``source.params.steps``)."""
        params = self.__dict__.get("params")
        if params is not None and not name.startswith("__") and name in _field_names(type(params)):
            return getattr(params, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


@functools.cache
def _field_names(params: type) -> frozenset[str]:
    """The field names of a ``Params`` dataclass, read once per class (a source reads its parameters per image)."""
    return frozenset(f.name for f in dataclasses.fields(params))


# reading a class's parameters --------------------------------------------------------------------


def declared_parameters(cls: type) -> type[Parameters] | None:
    """The class's ``Params`` declaration, or None for a plain-kwargs class."""
    declared = getattr(cls, "Params", None)
    return declared if isinstance(declared, type) and issubclass(declared, Parameters) else None


@functools.cache
def parameter_specs(cls: type) -> tuple[ParameterSpec, ...]:
    """The parameters of a plugin class (or of a :class:`Parameters` dataclass), read once per class.

    A declared ``Params`` dataclass gives types, defaults, bounds and help; otherwise the
    constructor's signature gives names, annotations and defaults (the one place propgrad reads a
    signature). ``*args``/``**kwargs`` are not parameters.
    """
    declared = cls if isinstance(cls, type) and issubclass(cls, Parameters) else declared_parameters(cls)
    if declared is not None:
        hints = _type_hints(declared)
        specs = []
        for f in dataclasses.fields(declared):
            meta = dict(f.metadata.get(_META_KEY, {}))
            annotation = hints.get(f.name, Any)
            choices = meta.get("choices") or _literal_choices(annotation)
            if f.default_factory is not MISSING:
                default = f.default_factory()
            else:
                default = REQUIRED if f.default is MISSING else f.default
            specs.append(
                ParameterSpec(
                    name=f.name,
                    annotation=annotation,
                    default=default,
                    help=meta.get("help", ""),
                    bounds=meta.get("bounds"),
                    choices=choices,
                    parse=meta.get("parse"),
                    hint=meta.get("hint", ""),
                )
            )
        return tuple(specs)
    return _signature_specs(cls)


@functools.cache
def _signature(cls: type) -> inspect.Signature | None:
    """The constructor's signature of an undeclared class, read here and nowhere else (None: none to read)."""
    try:
        return inspect.signature(cls)
    except (TypeError, ValueError):  # a C extension type: no known parameters
        return None


def _signature_specs(cls: type) -> tuple[ParameterSpec, ...]:
    signature = _signature(cls)
    if signature is None:
        return ()
    hints = _type_hints(cls.__init__)
    return tuple(
        ParameterSpec(
            name=p.name,
            annotation=hints.get(p.name, Any),
            default=REQUIRED if p.default is inspect.Parameter.empty else p.default,
            declared=False,
        )
        for p in signature.parameters.values()
        if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    )


@functools.cache
def takes_any_keyword(cls: type) -> bool:
    """True when an undeclared class's constructor takes ``**kwargs`` (every name is accepted)."""
    if declared_parameters(cls) is not None:
        return False
    signature = _signature(cls)
    return signature is None or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())


def accepts(cls: type, name: str) -> bool:
    """Whether ``cls(**{name: ...})`` names a parameter the class takes."""
    return takes_any_keyword(cls) or any(spec.name == name for spec in parameter_specs(cls))


def defaults(cls: type) -> dict[str, Any]:
    """Every parameter's default, JSON-serialisable (``repr`` for what JSON cannot hold), for a run's identity."""
    out = {}
    for spec in parameter_specs(cls):
        if not spec.required:
            try:
                out[spec.name] = json.loads(json.dumps(spec.default))
            except (TypeError, ValueError):
                out[spec.name] = repr(spec.default)
    return out


def settings_of(instance: Any) -> dict[str, Any]:
    """The parameters an instance was built with, to build another like it with some changed.

    A declared class gives ``instance.params``; an undeclared one its constructor's parameters read
    back from the attributes of the same name (those it does not keep are left out).
    """
    params = getattr(instance, "__dict__", {}).get("params")
    if isinstance(params, Parameters):
        return params.as_dict()
    names = [spec.name for spec in parameter_specs(type(instance))]
    return {name: getattr(instance, name) for name in names if hasattr(instance, name)}


def describe(cls: type) -> list[dict[str, Any]]:
    """Every parameter of a class as JSON-serialisable records (see :meth:`ParameterSpec.describe`)."""
    return [spec.describe() for spec in parameter_specs(cls)]


# checking values ---------------------------------------------------------------------------------


def check_value(spec: ParameterSpec, value: Any, *, text: bool = False) -> Any:
    """``value`` checked against ``spec`` and normalised (numpy scalars to Python numbers ...).

    Args:
        spec: The declaration.
        value: The value given.
        text: Also accept text for numbers, flags, tuples and lists (``"0.5"``, ``"yes"``, ``"1,0,1"``)
            and whole floats for integers.

    Raises:
        InvalidParameterError: Naming the parameter, what was expected and what was given.
    """
    if spec.parse is not None:
        return spec.parse(value, spec.name)
    return _check_typed(spec.annotation, value, spec, spec.name, text)


def _check_typed(annotation: Any, value: Any, spec: ParameterSpec, name: str, text: bool) -> Any:
    options = _union_members(annotation)
    optional = type(None) in options
    members = [m for m in options if m is not type(None)]
    if value is None and optional:
        return None
    if text and optional and isinstance(value, str) and value.strip() == "None":
        return None
    if len(members) != 1 or members[0] is Any:
        return _check_untyped(value, spec, name)
    kind = members[0]
    origin = typing.get_origin(kind)
    if kind is bool:
        return check_bool(value, name, strings=text, hint=_or_none(optional, spec.hint))
    if kind is int or kind is float:
        return _check_number(kind, value, spec, name, text, optional)
    if kind is str or origin is typing.Literal:
        return _check_text(value, spec, name, optional)
    if kind is Path:
        if not isinstance(value, (str, os.PathLike)):
            raise ParameterTypeError(f"{name} must be a path (str or Path){' or None' * optional}, got {_shown(value)}")
        return Path(value).expanduser()
    if origin in (tuple, list) or origin in (Sequence, typing.Sequence):
        return _check_sequence(kind, value, spec, name, text, optional)
    if isinstance(kind, type) and kind is not object and not isinstance(value, kind):
        expected = f"a {kind.__module__}.{kind.__qualname__}" if kind.__module__ != "builtins" else kind.__name__
        raise ParameterTypeError(f"{name} must be {expected}{' or None' * optional}, got {_shown(value)}")
    return value


def _check_untyped(value: Any, spec: ParameterSpec, name: str) -> Any:
    if spec.choices is not None:
        return check_choice(value, name, spec.choices)
    return value


def _check_number(kind: type, value: Any, spec: ParameterSpec, name: str, text: bool, optional: bool) -> Any:
    integer = kind is int
    if text and integer:
        value = _whole(value)
    if spec.choices is not None:
        return check_choice(value, name, spec.choices)
    bounds = spec.bounds or _UNBOUNDED
    return bounds.check(value, name, integer=integer, strings=text, hint=_or_none(optional, spec.hint))


def _whole(value: Any) -> Any:
    """A whole number written as text or as a float (``"8"``, ``"8.0"``, ``8.0``) as an int; anything else unchanged."""
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return value
        return int(number) if number.is_integer() else value
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    return value


def _check_text(value: Any, spec: ParameterSpec, name: str, optional: bool) -> str:
    if spec.choices is not None:
        if isinstance(value, str):
            value = value.strip()
        return check_choice(value, name, spec.choices)
    if not isinstance(value, str) or not value.strip():
        raise ParameterTypeError(f"{name} must be a non-empty string{' or None' * optional}, got {_shown(value)}")
    return value


def _check_sequence(kind: Any, value: Any, spec: ParameterSpec, name: str, text: bool, optional: bool) -> Any:
    args = typing.get_args(kind)
    fixed = typing.get_origin(kind) is tuple and bool(args) and args[-1] is not Ellipsis
    element = args[0] if args else Any
    expected = _type_text(kind) + (" or None" if optional else "")
    if text and isinstance(value, str):
        value = [part.strip() for part in value.strip().strip("()[]").replace(";", ",").split(",") if part.strip()]
    if isinstance(value, (torch.Tensor, np.ndarray)):
        value = value.tolist() if value.ndim else [value.item()]
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple, range)):
        raise ParameterTypeError(f"{name} must be {expected}, got {_shown(value)}")
    if fixed and len(value) != len(args):
        raise InvalidParameterError(f"{name} must be {expected} ({len(args)} values), got {len(value)}: {value!r}")
    elements = [_check_typed(args[i] if fixed else element, v, spec, f"{name}[{i}]", text) for i, v in enumerate(value)]
    return tuple(elements) if typing.get_origin(kind) is tuple else elements


# parsers plugins share ---------------------------------------------------------------------------


def as_numbers(
    value: Any, name: str, *, length: int | None = None, expected: str = "a list of numbers", bounds: str | None = None
) -> list[float]:
    """Finite numbers from a list, tuple, array, tensor or comma-separated text (``"1,0,1"``).

    Args:
        value: What was given.
        name: The parameter's name for messages (elements are ``name[i]``).
        length: The number of values required, if fixed.
        expected: What the parameter is, for the message (``"a 3-vector"``).
        bounds: An interval every number must lie in (as in :func:`parameter`).

    Raises:
        InvalidParameterError: For something else, a non-number element or the wrong length.
    """
    if isinstance(value, str):
        value = [part.strip() for part in value.strip().strip("()[]").replace(";", ",").split(",") if part.strip()]
    if isinstance(value, (torch.Tensor, np.ndarray)):
        value = value.tolist() if value.ndim else [value.item()]
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple, range)):
        raise ParameterTypeError(f"{name} must be {expected}, got {_shown(value)}")
    if length is not None and len(value) != length:
        raise InvalidParameterError(f"{name} must be {expected}, got {len(value)} components: {list(value)!r}")
    interval = _UNBOUNDED if bounds is None else Interval.parse(bounds)
    return [interval.check(v, f"{name}[{i}]", integer=False, strings=True) for i, v in enumerate(value)]


def as_size(value: Any, name: str, *, maximum: int | None = None, multiple: int = 1) -> int | tuple[int, int] | None:
    """None, one side (an int) or (height, width), from ints, a pair, or text (``"64"``, ``"64x48"``, ``"64,48"``).

    Args:
        value: What was given.
        name: The parameter's name for messages.
        maximum: The largest side, if any.
        multiple: Every side must be a multiple of it (8 for a VAE).

    Raises:
        InvalidParameterError: Naming the parameter, for anything else.
    """
    if value is None:
        return None
    if isinstance(value, str):
        parts = [p for p in value.lower().replace("x", ",").split(",") if p.strip()]
        value = parts[0] if len(parts) == 1 else parts
    sides = list(value) if isinstance(value, (list, tuple)) else [value]
    bound = f"[{multiple}, {maximum if maximum is not None else 'inf'}]"
    expected = f"None, an integer or (height, width) of integers in {bound}" + (
        f", multiples of {multiple}" if multiple > 1 else ""
    )
    if len(sides) not in (1, 2):
        raise InvalidParameterError(f"{name} must be {expected}, got {value!r}")
    checked = []
    for label, side in zip(("height", "width") if len(sides) == 2 else ("side",), sides):
        side = _whole(side)
        if not isinstance(side, (int, np.integer)) or isinstance(side, bool):
            raise ParameterTypeError(f"{name} must be {expected}, got {value!r} ({type(side).__name__} {label})")
        if not (multiple <= side and (maximum is None or side <= maximum)) or side % multiple:
            raise InvalidParameterError(f"{name} must be {expected}, got {label} {int(side)}")
        checked.append(int(side))
    return checked[0] if len(checked) == 1 else (checked[0], checked[1])


# the command line ------------------------------------------------------------------------------


def parse_cli_params(cls: type | str, pairs: Sequence[str], *, kind: str = "sources") -> dict[str, Any]:
    """Turn ``--param name=value`` pairs into the class's keyword arguments.

    A declared parameter's text is read by its type (``steps=8``, ``scale=0.5``, ``resize=yes``,
    ``axis=1,0,1``, ``periodic=None``) and checked against its declaration here, so a bad value is
    one line naming the parameter, its type and bounds. For an undeclared class (or a parameter with
    its own ``parse``) the text is a Python literal where it reads as one (numbers, lists, None)
    and stays text otherwise, as the constructor then checks.

    Args:
        cls: The plugin class, or its registered name.
        pairs: The ``name=value`` strings, in order (a later one wins).
        kind: ``"sources"``, ``"baselines"`` or ``"suites"``, to look a name up.

    Returns:
        The keyword arguments.

    Raises:
        InvalidParameterError: A pair without ``=``, a name the class does not take (listing the
            ones it does), or a value its declaration refuses.
    """
    cls = _resolve_class(kind, cls) if isinstance(cls, str) else cls
    specs = {spec.name: spec for spec in parameter_specs(cls)}
    params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise InvalidParameterError(f"--param {pair!r}: expected KEY=VALUE with KEY a parameter name")
        spec = specs.get(name)
        if spec is None and not takes_any_keyword(cls):
            raise _unknown(cls, name, "parameter", option="--param ")
        if spec is None or spec.parse is not None or not spec.declared:
            params[name] = _literal(raw)
            continue
        try:
            params[name] = check_value(spec, raw, text=True)
        except (ValueError, TypeError) as exc:
            raise InvalidParameterError(f"--param {pair}: {exc}") from exc
    return params


def _literal(raw: str) -> Any:
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return raw


# building from a name, class or instance --------------------------------------------------------


def build(kind: str, obj: Any, params: Mapping[str, Any] | None = None, *, what: str = "parameters") -> Any:
    """A plugin instance from a registered name, a class or an instance (the one resolution rule).

    Args:
        kind: ``"sources"``, ``"baselines"`` or ``"suites"``.
        obj: A registered name, a subclass of the kind's base class, or an instance of one.
        params: Keyword arguments for a name or class; must be empty for an instance.
        what: What the caller calls them in messages (``"source_params"``; ``"settings"`` also
            names each one a setting rather than a parameter).

    Returns:
        The instance.

    Raises:
        InvalidParameterError: ``params`` not a mapping with string keys, parameters with an
            instance, a name the class does not take (listing the ones it does), or a value its
            declaration refuses.
        UnknownNameError: No plugin registered the name.
    """
    from propgrad.plugins.registry import base_class

    singular = kind[:-1]
    if params is not None and not isinstance(params, Mapping):
        raise InvalidParameterError(
            f"{what} must be a dict of the {singular}'s parameters, e.g. {{'steps': 11}}, got "
            f"{type(params).__name__} {_shown(params)}"
        )
    bad_keys = [key for key in (params or {}) if not isinstance(key, str)]
    if bad_keys:
        raise InvalidParameterError(f"{what} keys must be parameter names (strings), got {bad_keys[0]!r}")
    base = base_class(kind)
    if isinstance(obj, base):
        if params:
            raise InvalidParameterError(
                f"{what} {sorted(params)} are for a {singular} given by name or class, not a {singular} instance"
            )
        return obj
    cls = _resolve_class(kind, obj) if isinstance(obj, str) else obj
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ParameterTypeError(
            f"{singular} must be a registered name, a {base.__name__} subclass or instance, got {_shown(obj)}"
        )
    params = dict(params or {})
    unknown = [key for key in params if not accepts(cls, key)]
    if unknown:
        raise _unknown(cls, unknown[0], "setting" if what == "settings" else "parameter")
    return cls(**params)


def _resolve_class(kind: str, name: str) -> type:
    from propgrad import plugins

    return {"sources": plugins.get_source, "baselines": plugins.get_baseline, "suites": plugins.get_suite}[kind](name)


# helpers ----------------------------------------------------------------------------------------


def _label(cls: type) -> str:
    name = getattr(cls, "name", "") or cls.__name__
    kind = next((k for k in ("source", "baseline", "suite") if any(k in b.__name__.lower() for b in cls.__mro__)), "")
    return f"{kind} {name!r}".strip()


def _unknown(cls: type, name: str, word: str, *, option: str = "") -> InvalidParameterError:
    names = ", ".join(spec.name for spec in parameter_specs(cls)) or "none"
    return InvalidParameterError(f"{option}{_label(cls)} has no {word} {name!r}; its {word}s: {names}")


def _type_hints(obj: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(obj)
    except Exception:  # noqa: BLE001 - an annotation that does not resolve: treat the parameter as Any
        return {}


def _union_members(annotation: Any) -> tuple[Any, ...]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)


def _literal_choices(annotation: Any) -> tuple[Any, ...] | None:
    for member in _union_members(annotation):
        if typing.get_origin(member) is typing.Literal:
            return typing.get_args(member)
    return None


def _type_text(annotation: Any) -> str:
    if annotation is Any:
        return "any"
    if annotation is type(None):
        return "None"
    members = _union_members(annotation)
    if len(members) > 1:
        return " | ".join(_type_text(m) for m in members)
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(annotation))
    if origin is not None:
        args = ", ".join("..." if a is Ellipsis else _type_text(a) for a in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if isinstance(annotation, type):
        return annotation.__name__ if annotation.__module__ == "builtins" else annotation.__qualname__
    return str(annotation).replace("typing.", "")


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return repr(value)


def _shown(value: Any) -> str:
    text = repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def _or_none(optional: bool, hint: str) -> str:
    """The hint of an error message: the declared one, else "or None" for an optional parameter."""
    return hint or ("or None" if optional else "")
