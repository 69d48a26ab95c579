"""The plugin manager and the registry of sources, baselines and suites.

Nothing happens at import time. The first lookup builds a pluggy ``PluginManager`` for the project
``propgrad``, registers the built-in plugins (``DEFAULT_PLUGINS``, by module path) and every
``propgrad`` entry point, each loaded on its own, then calls the ``register_*`` hooks of each
plugin separately. A plugin that fails to import, implements a hook that does not exist, raises in
a hook (``SystemExit`` included) or registers something invalid is recorded as a
:class:`PluginFailure` (with its distribution and version) and skipped as a whole, and so is a line
of a distribution's ``entry_points.txt`` that is not ``name = value`` (:mod:`.entry_points` reads
each distribution on its own, so one broken file neither hides the others nor breaks torch's
import). One :class:`PropgradPluginWarning` names every failure, at the first lookup or listing
that works, and everything else keeps working. A plugin still loading after
:data:`SLOW_PLUGIN_SECONDS` is named on stderr. What plugins print while loading goes to stderr, so
stdout stays clean. Asking for a name nobody provides raises :class:`UnknownNameError`, which ends
with a one-line pointer to the failures (and no warning comes before it). A name registered by two
third-party plugins is ambiguous: asking for it raises :class:`DuplicateNameError` naming both,
other names still work. Built-in names always win: a third-party registration of one is refused and
recorded as that plugin's failure (naming both), and the built-in keeps working. With
``PROPGRAD_STRICT_PLUGINS=1`` any failure raises :class:`PluginLoadError` at load instead.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
import traceback
import warnings
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any, Callable, Iterator

import pluggy

from propgrad import hookspecs
from propgrad.plugins.entry_points import FoundEntryPoint, read_entry_points, repair_entry_points
from propgrad.plugins.errors import (
    BrokenEntryPointError,
    DuplicateNameError,
    PluginError,
    PluginExitError,
    PluginFailure,
    PluginLoadError,
    PropgradPluginWarning,
    Registration,
    RegistrationError,
    UnknownNameError,
    describe_origin,
)
from propgrad.plugins.registry import KINDS, Registry, call_register_hooks, new_plugin_manager, register_plugin

__all__ = [
    "DEFAULT_PLUGINS",
    "ENTRY_POINT_GROUP",
    "STRICT_ENV",
    "KINDS",
    "BrokenEntryPointError",
    "PluginError",
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
#: A plugin still loading after this many seconds is named on stderr (an import that hangs blocks the command).
SLOW_PLUGIN_SECONDS = 2.0


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
    warned: bool = False  # the failures were reported (a warning, or an UnknownNameError that names them)


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


@contextlib.contextmanager
def _named_if_slow(info: PluginInfo) -> Iterator[None]:
    """Say on stderr which plugin is loading when that takes over :data:`SLOW_PLUGIN_SECONDS` (it may hang)."""
    stream, started = sys.stderr, time.monotonic()
    origin = describe_origin(info.name, info.distribution, info.version)
    uninstall = f"uninstall {info.distribution} to skip it" if not info.builtin and info.distribution else ""

    def say() -> None:
        hint = f"; if it hangs, stop with Ctrl-C and {uninstall}" if uninstall else ""
        print(f"propgrad: still loading {origin} after {SLOW_PLUGIN_SECONDS:g} s{hint}", file=stream, flush=True)

    timer = threading.Timer(SLOW_PLUGIN_SECONDS, say)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        if time.monotonic() - started > SLOW_PLUGIN_SECONDS:
            print(f"propgrad: {origin} took {time.monotonic() - started:.1f} s to load", file=stream, flush=True)


def _add_plugin(state: _State, info: PluginInfo, loader: Callable[[], object]) -> None:
    """Load, register and collect one plugin; any error is recorded as its failure."""
    with _named_if_slow(info):
        _load_plugin(state, info, loader)


def _load_plugin(state: _State, info: PluginInfo, loader: Callable[[], object]) -> None:
    prior = next((p for p in state.plugins if p.name == info.name), None)
    state.plugins.append(info)
    try:
        if prior is not None:
            raise PluginError(
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


def _entry_points(state: _State) -> list[FoundEntryPoint]:
    """The ``propgrad`` entry points, deduplicated, sorted by distribution and name.

    A line of the group that is not ``name = value`` is recorded as a failure naming its
    distribution and the line, and skipped; the distribution's other entry points still load.
    """
    found, broken = read_entry_points(ENTRY_POINT_GROUP)
    for line in broken:
        info = PluginInfo(line.line, line.distribution, line.version, builtin=False)
        state.plugins.append(info)
        _record(state, info, BrokenEntryPointError(str(line)))
    seen, unique = set(), []
    for item in found:
        key = (item.entry_point.name, item.entry_point.value, item.distribution)
        if key not in seen:
            seen.add(key)
            unique.append(item)
    return sorted(unique, key=lambda item: (str(item.distribution or ""), item.entry_point.name))


def _load() -> _State:
    """Load every plugin; what plugins print goes to stderr, so stdout (``propgrad plugins --json``) stays clean."""
    with contextlib.redirect_stdout(sys.stderr):
        return _load_all()


def _load_all() -> _State:
    from propgrad import __version__

    state = _State(new_plugin_manager(), Registry(tuple(KINDS)), [])
    try:
        repair_entry_points()  # before torch is imported: a broken entry_points.txt anywhere would break it
    except Exception as exc:  # noqa: BLE001 - unreadable metadata
        _record(state, PluginInfo("<entry points>", None, None, builtin=False), exc)
    for module in DEFAULT_PLUGINS:
        info = PluginInfo(module, "propgrad", __version__, builtin=True)
        _add_plugin(state, info, lambda module=module: import_module(module))
    try:
        entry_points = _entry_points(state)
    except Exception as exc:  # noqa: BLE001 - unreadable metadata
        _record(state, PluginInfo("<entry points>", None, None, builtin=False), exc)
        entry_points = []
    for item in entry_points:
        info = PluginInfo(item.entry_point.name, item.distribution, item.version, builtin=False)
        _add_plugin(state, info, item.entry_point.load)
    return state


def _warn_failures(state: _State) -> None:
    """Warn once per load about the plugins that failed (not in strict mode, which raises instead)."""
    failures = state.registry.failures
    if state.warned or not failures or strict_mode():
        return
    state.warned = True
    listed = "; ".join(str(f) for f in failures)
    warnings.warn(
        f"{len(failures)} propgrad plugin(s) failed to load and were skipped: {listed}. "
        f"Run `propgrad plugins` for details; set {STRICT_ENV}=1 to make this an error.",
        PropgradPluginWarning,
        stacklevel=4,  # the caller of the public function (get_source, list_sources ...)
    )


def _state(strict: bool | None = None, *, warn: bool = True) -> _State:
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
        state = _STATE
    if (strict_mode() if strict is None else strict) and state.registry.failures:
        failures = tuple(state.registry.failures)
        raise PluginLoadError(
            f"{len(failures)} propgrad plugin(s) failed to load ({STRICT_ENV} is set): "
            + "; ".join(str(f) for f in failures),
            failures,
        ) from failures[0].error
    if warn:
        _warn_failures(state)
    return state


def _lookup(kind: str, name: str) -> type:
    """The class registered as ``name``; the failures are warned about only after a lookup that works.

    An unknown name raises :class:`UnknownNameError` first, whose message ends with a one-line
    pointer to the failures, so the answer is not buried under them.
    """
    state = _state(warn=False)
    try:
        cls = state.registry.lookup(kind, name)
    except UnknownNameError:
        state.warned = True
        raise
    _warn_failures(state)
    return cls


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
    return list(_state(strict=False, warn=False).registry.failures)


def describe_plugins() -> list[dict[str, Any]]:
    """Every plugin with its distribution, version, registrations per hook and failure.

    Returns:
        One JSON-serialisable dict per plugin (built-ins first) with keys ``name``,
        ``distribution``, ``version``, ``builtin``, ``hooks`` (hook name -> list of
        ``{"name", "class", "description", "parameters"}``, the parameters as
        :func:`propgrad.plugins.parameters.describe` gives them) and ``failure`` (None or a dict).
    """
    from propgrad.plugins.parameters import describe

    out = []
    for info in _state(strict=False, warn=False).plugins:
        hooks: dict[str, list[dict[str, Any]]] = {}
        for reg in info.registrations:
            hooks.setdefault(KINDS[reg.kind][0], []).append(
                {
                    "name": reg.name,
                    "class": f"{reg.cls.__module__}.{reg.cls.__qualname__}",
                    "description": str(getattr(reg.cls, "description", "") or ""),
                    "parameters": describe(reg.cls),
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
    return _lookup("sources", name)


def list_sources() -> dict[str, type]:
    """Every registered intervention-source class by name, sorted by name."""
    return _state().registry.listing("sources")


def get_baseline(name: str) -> type:
    """The attribution-baseline class registered as ``name`` (raises ``UnknownNameError``)."""
    return _lookup("baselines", name)


def list_baselines() -> dict[str, type]:
    """Every registered attribution-baseline class by name, sorted by name."""
    return _state().registry.listing("baselines")


def get_suite(name: str) -> type:
    """The benchmark-suite class registered as ``name`` (raises ``UnknownNameError``)."""
    return _lookup("suites", name)


def list_suites() -> dict[str, type]:
    """Every registered benchmark-suite class by name, sorted by name."""
    return _state().registry.listing("suites")
