"""Validating one plugin and recording what plugins register: classes, failures, conflicts.

The error classes and records live in :mod:`propgrad.plugins.errors`. Nothing here holds global
state: :mod:`propgrad.plugins` owns the shared, lazily loaded plugin manager and fills a
:class:`Registry` with :func:`register_plugin` and :func:`call_register_hooks`;
``propgrad.testing`` uses the same two functions on a fresh plugin manager so that plugin
authors see exactly the errors propgrad would report.
"""

from __future__ import annotations

import difflib
import inspect
import re
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any

import pluggy

from propgrad import hookspecs
from propgrad.errors import InvalidParameterError, ParameterTypeError
from propgrad.plugins.errors import DuplicateNameError, PluginFailure, Registration, RegistrationError, UnknownNameError

#: kind -> (hook name, module of the base class, base class name)
KINDS: dict[str, tuple[str, str, str]] = {
    "sources": ("register_sources", "propgrad.sources.base", "InterventionSource"),
    "baselines": ("register_baselines", "propgrad.baselines.base", "AttributionBaseline"),
    "suites": ("register_suites", "propgrad.suites.base", "BenchmarkSuite"),
}

#: Registered names: a letter first, then letters, digits or underscores ("alpha_patch").
NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def validate_class(obj: Any, base: type, hook: str) -> type:
    """Check one object passed to a ``register`` callback.

    Args:
        obj: What the plugin registered.
        base: The base class the hook expects (``InterventionSource`` ...).
        hook: Name of the hook, for messages.

    Returns:
        ``obj``, a concrete subclass of ``base`` with a valid ``name``.

    Raises:
        RegistrationError: ``obj`` is not a class, not a subclass of ``base``, abstract, or its
            ``name`` class attribute is missing, empty or not identifier-like.
    """
    expected = f"{base.__module__}.{base.__qualname__}"
    if not isinstance(obj, type):
        raise RegistrationError(
            f"{hook} must register classes (subclasses of {expected}), got {type(obj).__name__} "
            f"{obj!r}; pass the class itself, not an instance"
        )
    label = f"{obj.__module__}.{obj.__qualname__}"
    if not issubclass(obj, base):
        raise RegistrationError(f"{hook} registered {label}, which is not a subclass of {expected}")
    if inspect.isabstract(obj):
        missing = ", ".join(sorted(getattr(obj, "__abstractmethods__", ())))
        raise RegistrationError(f"{hook} registered {label}, which is abstract (implement: {missing})")
    name = obj.__dict__.get("name", getattr(obj, "name", None))
    if not isinstance(name, str) or not name:
        raise RegistrationError(
            f"{hook} registered {label} without a name: set the class attribute `name` to a "
            f"non-empty string such as 'my_source', got {name!r}"
        )
    if not NAME_PATTERN.fullmatch(name):
        raise RegistrationError(
            f"{hook} registered {label} with invalid name {name!r}: expected a letter followed by "
            "letters, digits or underscores (e.g. 'hue_shift')"
        )
    return obj


@dataclass
class Registry:
    """Registered classes per kind ("sources", "baselines", "suites"), plus what went wrong.

    A name registered by two third-party plugins is *ambiguous*: it is removed from ``entries``
    and kept in ``conflicts`` so that asking for it raises :class:`DuplicateNameError` naming
    every plugin, while every other name keeps working. Built-in names are never taken over: a
    third-party registration of a built-in name is refused and the built-in keeps working.
    """

    kinds: tuple[str, ...]
    entries: dict[str, dict[str, Registration]] = field(default_factory=dict)
    conflicts: dict[str, dict[str, list[Registration]]] = field(default_factory=dict)
    failures: list[PluginFailure] = field(default_factory=list)

    def __post_init__(self) -> None:
        for kind in self.kinds:
            self.entries.setdefault(kind, {})
            self.conflicts.setdefault(kind, {})

    def add(self, reg: Registration) -> Registration | None:
        """Add one registration; returns the registration it clashes with, if any.

        When the clash is a built-in registration (and ``reg`` is not one), ``reg`` is refused:
        the built-in keeps the name. Otherwise both become ambiguous.
        """
        owner = self.entries[reg.kind].get(reg.name)
        if owner is not None and owner.builtin and not reg.builtin:
            return owner
        if reg.name in self.conflicts[reg.kind]:
            clash = self.conflicts[reg.kind][reg.name][0]
            self.conflicts[reg.kind][reg.name].append(reg)
            return clash
        clash = self.entries[reg.kind].pop(reg.name, None)
        if clash is None:
            self.entries[reg.kind][reg.name] = reg
            return None
        self.conflicts[reg.kind][reg.name] = [clash, reg]
        return clash

    def lookup(self, kind: str, name: str) -> type:
        """The class registered as ``name``.

        Raises:
            DuplicateNameError: Several plugins registered ``name``.
            UnknownNameError: Nobody registered ``name``; suggests close matches, lists the
                available names and every plugin that failed to load.
        """
        singular = kind[:-1]
        if not isinstance(name, str):
            raise ParameterTypeError(f"{singular} name must be a str, got {type(name).__name__} {name!r}")
        if name in self.entries[kind]:
            return self.entries[kind][name].cls
        if name in self.conflicts[kind]:
            regs = self.conflicts[kind][name]
            owners = "; ".join(f"{r.origin()} as {r.cls.__module__}.{r.cls.__qualname__}" for r in regs)
            raise DuplicateNameError(
                f"{singular} {name!r} is ambiguous: it is registered by {len(regs)} plugins: {owners}. "
                "Uninstall one of them, or ask its author to rename it",
                tuple(f for f in self.failures if f.plugin in {r.plugin for r in regs}),
            )
        available = sorted(self.entries[kind])
        message = f"unknown {singular} {name!r}."
        close = difflib.get_close_matches(name, available, n=3, cutoff=0.6)
        if close:
            message += " Did you mean " + " or ".join(repr(c) for c in close) + "?"
        message += f" Available {kind}: {', '.join(available) if available else '(none)'}."
        missing = tuple(f for f in self.failures if not isinstance(f.error, DuplicateNameError))
        if missing:
            listed = ", ".join(f.origin() for f in missing)  # names only: `propgrad plugins` tells why
            message += (
                f" {len(missing)} plugin(s) failed to load and may have provided it: {listed};"
                " run `propgrad plugins` for why."
            )
        raise UnknownNameError(message, missing)

    def listing(self, kind: str) -> dict[str, type]:
        """Unambiguous registered classes of one kind, sorted by name."""
        return {name: self.entries[kind][name].cls for name in sorted(self.entries[kind])}


def base_class(kind: str) -> type:
    """The base class registered classes of ``kind`` must subclass."""
    _, module, attr = KINDS[kind]
    return getattr(import_module(module), attr)


def new_plugin_manager() -> pluggy.PluginManager:
    """An empty plugin manager that knows propgrad's hook specifications."""
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    return pm


def register_plugin(pm: pluggy.PluginManager, plugin: object, name: str) -> None:
    """Register one plugin and validate its hooks; on error the plugin is unregistered again.

    Raises:
        ValueError: The name is taken, or the plugin implements no hook at all.
        pluggy.PluginValidationError: A hook is misspelled or has arguments its spec lacks.
    """
    if pm.get_plugin(name) is not None:
        raise InvalidParameterError(f"a plugin named {name!r} is already registered")
    pm.register(plugin, name=name)
    try:
        pm.check_pending()
        if not pm.get_hookcallers(plugin):
            hooks = ", ".join(KINDS[k][0] for k in KINDS)
            raise InvalidParameterError(f"implements no propgrad hook; decorate {hooks} with @propgrad.hookimpl")
    except pluggy.PluginValidationError as exc:
        unknown = [h.name for h in pm.get_hookcallers(plugin) or () if not h.has_spec()]
        pm.unregister(plugin)
        known = [hook for hook, _, _ in KINDS.values()]
        hints = []
        for hook in unknown:
            close = difflib.get_close_matches(hook, known, n=1)
            hints.append(f"{hook!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        detail = f"unknown hook {', '.join(hints)}" if hints else str(exc)
        raise pluggy.PluginValidationError(plugin, f"{detail}; propgrad hooks are {', '.join(known)}") from exc
    except Exception:
        pm.unregister(plugin)
        raise


def call_register_hooks(pm: pluggy.PluginManager, plugin: object) -> list[tuple[str, type]]:
    """Call every ``register_*`` hook of one plugin and validate what it registers.

    Returns:
        ``(kind, class)`` pairs in registration order.

    Raises:
        RegistrationError: Something registered is not a valid class for its hook.
        Exception: Whatever the plugin's hook raised.
    """
    collected: list[tuple[str, type]] = []
    errors: list[RegistrationError] = []  # kept even if the plugin catches what register raises
    for kind, (hook_name, _, _) in KINDS.items():
        base = base_class(kind)

        def register(cls: Any, _kind: str = kind, _base: type = base, _hook: str = hook_name) -> None:
            try:
                collected.append((_kind, validate_class(cls, _base, _hook)))
            except RegistrationError as exc:
                errors.append(exc)
                raise

        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            if impl.plugin is not plugin:
                continue
            if impl.hookwrapper or impl.wrapper:
                raise RegistrationError(f"{hook_name} cannot be implemented as a (hook)wrapper")
            impl.function(*[{"register": register}[arg] for arg in impl.argnames])
            if errors:
                raise errors[0]
    seen: dict[tuple[str, str], type] = {}
    for kind, cls in collected:
        other = seen.setdefault((kind, cls.name), cls)
        if other is not cls or collected.count((kind, cls)) > 1:
            raise RegistrationError(
                f"registers {kind[:-1]} {cls.name!r} twice ({other.__qualname__}, {cls.__qualname__})"
            )
    return collected
