"""The plugin manager and the registry of sources, baselines and suites.

Nothing happens at import time. The first lookup builds a pluggy ``PluginManager`` for the
project ``propgrad``, registers the built-in plugins (``DEFAULT_PLUGINS``, by module path) and
every ``propgrad`` entry point, each loaded on its own, then calls the ``register_*`` hooks of
each plugin separately. A plugin that fails to import, implements a hook that does not exist,
raises in a hook (``SystemExit`` included) or registers something invalid is recorded as a
:class:`PluginFailure` (with its distribution and version) and skipped as a whole; one
:class:`PropgradPluginWarning` names every failure and everything else keeps working. What plugins
print while loading goes to stderr, so stdout stays clean. Asking for a name nobody provides raises
:class:`UnknownNameError`, which lists the failures. A name registered by two third-party plugins
is ambiguous: asking for it raises :class:`DuplicateNameError` naming both, other names still
work. Built-in names always win: a third-party registration of one is refused and recorded as that
plugin's failure (naming both), and the built-in keeps working. With ``PROPGRAD_STRICT_PLUGINS=1``
any failure raises :class:`PluginLoadError` at load instead.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import traceback
import warnings
from dataclasses import dataclass, field
from importlib import import_module, metadata
from typing import Any, Callable

import pluggy

from propgrad import hookspecs
from propgrad.plugins.errors import (
    DuplicateNameError,
    PluginExitError,
    PluginFailure,
    PluginLoadError,
    PropgradPluginWarning,
    Registration,
    RegistrationError,
    UnknownNameError,
)
from propgrad.plugins.registry import KINDS, Registry, call_register_hooks, new_plugin_manager, register_plugin

__all__ = [
    "DEFAULT_PLUGINS",
    "ENTRY_POINT_GROUP",
    "STRICT_ENV",
    "KINDS",
    "PluginFailure",
    "PropgradPluginWarning",
    "PluginLoadError",
    "PluginExitError",
    "UnknownNameError",
    "DuplicateNameError",
    "RegistrationError",
    "get_plugin_manager",
    "reset_plugins",
    "strict_mode",
    "plugin_failures",
    "describe_plugins",
    "get_source",
    "list_sources",
    "get_baseline",
    "list_baselines",
    "get_suite",
    "list_suites",
]

DEFAULT_PLUGINS: tuple[str, ...] = (
    "propgrad.sources.alpha_patch",
    "propgrad.sources.gaussian_vignette",
    "propgrad.sources.frames",
    "propgrad.baselines.captum_methods",
    "propgrad.suites.fur",
    "propgrad.suites.patch",
)
ENTRY_POINT_GROUP = hookspecs.ENTRY_POINT_GROUP
STRICT_ENV = "PROPGRAD_STRICT_PLUGINS"


@dataclass
class PluginInfo:
    """One plugin the loader saw: where it came from, what it registered, what went wrong."""

    name: str
    distribution: str | None
    version: str | None
    builtin: bool
    registrations: list[Registration] = field(default_factory=list)
    failure: PluginFailure | None = None


@dataclass
class _State:
    pm: pluggy.PluginManager
    registry: Registry
    plugins: list[PluginInfo]


_STATE: _State | None = None
_LOCK = threading.RLock()
_LOADING = False


def strict_mode() -> bool:
    """True when ``PROPGRAD_STRICT_PLUGINS`` is set to 1/true/yes."""
    return os.environ.get(STRICT_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def _record(state: _State, info: PluginInfo, exc: BaseException) -> None:
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    info.failure = PluginFailure(info.name, info.distribution, info.version, exc, tb)
    state.registry.failures.append(info.failure)


def _exit_error(exc: SystemExit) -> PluginExitError:
    """The recorded failure of a plugin that called ``sys.exit()``; ``exc`` is its cause (and traceback)."""
    err = PluginExitError(
        f"called sys.exit({exc.code!r}) while loading, which would end every propgrad command; "
        "raise an exception instead (propgrad records it and keeps going)"
    )
    err.__cause__ = exc
    return err


def _add_plugin(state: _State, info: PluginInfo, loader: Callable[[], object]) -> None:
    """Load, register and collect one plugin; any error is recorded as its failure."""
    prior = next((p for p in state.plugins if p.name == info.name), None)
    state.plugins.append(info)
    try:
        if prior is not None:
            raise ValueError(
                f"plugin name {info.name!r} of {info.distribution} is already used by "
                f"{prior.distribution} {prior.version}; rename one entry point"
            )
        plugin = loader()
        register_plugin(state.pm, plugin, info.name)
        try:
            collected = call_register_hooks(state.pm, plugin)
        except BaseException:
            state.pm.unregister(plugin)
            raise
    except SystemExit as exc:  # a BaseException: `except Exception` would let it end the process
        _record(state, info, _exit_error(exc))
        return
    except Exception as exc:  # noqa: BLE001 - a broken plugin must never break the registry
        _record(state, info, exc)
        return
    clashes = []
    for kind, cls in collected:
        reg = Registration(kind, cls.name, cls, info.name, info.distribution, info.version, info.builtin)
        clash = state.registry.add(reg)
        if clash is None or not _refused(reg, clash):
            info.registrations.append(reg)
        if clash is not None:
            clashes.append(_clash_message(reg, clash))
    if clashes:
        _record(state, info, DuplicateNameError("; ".join(clashes)))


def _refused(reg: Registration, clash: Registration) -> bool:
    """True when ``reg`` was refused because ``clash`` is the built-in owner of the name."""
    return clash.builtin and not reg.builtin


def _clash_message(reg: Registration, clash: Registration) -> str:
    """Why ``reg`` clashes with the earlier ``clash``, and what happens to the name now."""
    label = f"{reg.kind[:-1]} {reg.name!r}"
    ours = f"{reg.cls.__module__}.{reg.cls.__qualname__}"
    if _refused(reg, clash):
        return (
            f"{label} is a built-in name (registered by {clash.origin()}); {ours} was not registered and "
            f"the built-in stays in use; rename {ours}.name"
        )
    return f"{label} is already registered by {clash.origin()}; asking for that name now raises an error naming both"


def _entry_points() -> list[metadata.EntryPoint]:
    """The ``propgrad`` entry points, deduplicated, sorted by distribution and name."""
    seen, unique = set(), []
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        key = (ep.name, ep.value, getattr(dist, "name", None))
        if key not in seen:
            seen.add(key)
            unique.append(ep)
    return sorted(unique, key=lambda ep: (str(getattr(getattr(ep, "dist", None), "name", "")), ep.name))


def _load() -> _State:
    """Load every plugin; what plugins print goes to stderr, so stdout (``propgrad plugins --json``) stays clean."""
    with contextlib.redirect_stdout(sys.stderr):
        return _load_all()


def _load_all() -> _State:
    from propgrad import __version__

    state = _State(new_plugin_manager(), Registry(tuple(KINDS)), [])
    for module in DEFAULT_PLUGINS:
        info = PluginInfo(module, "propgrad", __version__, builtin=True)
        _add_plugin(state, info, lambda module=module: import_module(module))
    try:
        entry_points = _entry_points()
    except Exception as exc:  # noqa: BLE001 - broken metadata of one package
        _record(state, PluginInfo("<entry points>", None, None, builtin=False), exc)
        entry_points = []
    for ep in entry_points:
        dist = getattr(ep, "dist", None)
        info = PluginInfo(ep.name, getattr(dist, "name", None), getattr(dist, "version", None), builtin=False)
        _add_plugin(state, info, ep.load)
    return state


def _state(strict: bool | None = None) -> _State:
    global _STATE, _LOADING
    with _LOCK:
        if _STATE is None:
            if _LOADING:
                raise RuntimeError("a plugin looked up sources/baselines/suites while plugins were loading")
            _LOADING = True
            try:
                _STATE = _load()
            finally:
                _LOADING = False
            failures = _STATE.registry.failures
            if failures and not strict_mode():
                listed = "; ".join(str(f) for f in failures)
                warnings.warn(
                    f"{len(failures)} propgrad plugin(s) failed to load and were skipped: {listed}. "
                    f"Run `propgrad plugins` for details; set {STRICT_ENV}=1 to make this an error.",
                    PropgradPluginWarning,
                    stacklevel=3,
                )
        state = _STATE
    if (strict_mode() if strict is None else strict) and state.registry.failures:
        failures = tuple(state.registry.failures)
        raise PluginLoadError(
            f"{len(failures)} propgrad plugin(s) failed to load ({STRICT_ENV} is set): "
            + "; ".join(str(f) for f in failures),
            failures,
        ) from failures[0].error
    return state


def get_plugin_manager() -> pluggy.PluginManager:
    """The shared plugin manager with every plugin loaded (built once, then cached).

    Raises:
        PluginLoadError: In strict mode, when any plugin failed.
    """
    return _state().pm


def reset_plugins() -> None:
    """Forget the loaded plugins, so the next lookup loads them again (for tests)."""
    global _STATE
    with _LOCK:
        _STATE = None


def plugin_failures() -> list[PluginFailure]:
    """Every plugin that failed to load, register or validate (never raises for them)."""
    return list(_state(strict=False).registry.failures)


def describe_plugins() -> list[dict[str, Any]]:
    """Every plugin with its distribution, version, registrations per hook and failure.

    Returns:
        One JSON-serialisable dict per plugin (built-ins first) with keys ``name``,
        ``distribution``, ``version``, ``builtin``, ``hooks`` (hook name -> list of
        ``{"name", "class", "description"}``) and ``failure`` (None or a dict).
    """
    out = []
    for info in _state(strict=False).plugins:
        hooks: dict[str, list[dict[str, str]]] = {}
        for reg in info.registrations:
            hooks.setdefault(KINDS[reg.kind][0], []).append(
                {
                    "name": reg.name,
                    "class": f"{reg.cls.__module__}.{reg.cls.__qualname__}",
                    "description": str(getattr(reg.cls, "description", "") or ""),
                }
            )
        out.append(
            {
                "name": info.name,
                "distribution": info.distribution,
                "version": info.version,
                "builtin": info.builtin,
                "hooks": hooks,
                "failure": info.failure.to_dict() if info.failure else None,
            }
        )
    return out


def get_source(name: str) -> type:
    """The intervention-source class registered as ``name`` (raises ``UnknownNameError``)."""
    return _state().registry.lookup("sources", name)


def list_sources() -> dict[str, type]:
    """Every registered intervention-source class by name, sorted by name."""
    return _state().registry.listing("sources")


def get_baseline(name: str) -> type:
    """The attribution-baseline class registered as ``name`` (raises ``UnknownNameError``)."""
    return _state().registry.lookup("baselines", name)


def list_baselines() -> dict[str, type]:
    """Every registered attribution-baseline class by name, sorted by name."""
    return _state().registry.listing("baselines")


def get_suite(name: str) -> type:
    """The benchmark-suite class registered as ``name`` (raises ``UnknownNameError``)."""
    return _state().registry.lookup("suites", name)


def list_suites() -> dict[str, type]:
    """Every registered benchmark-suite class by name, sorted by name."""
    return _state().registry.listing("suites")
