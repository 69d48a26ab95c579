"""What can go wrong with plugins: the error classes and the records of failed and registered plugins.

:mod:`propgrad.plugins.registry` raises and stores these; :mod:`propgrad.plugins` re-exports them for users.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from propgrad.errors import PropgradError, PropgradWarning


class PropgradPluginWarning(PropgradWarning):
    """Warned (once per load) when one or more plugins failed to load."""


class PluginError(PropgradError):
    """Base class of plugin errors; ``failures`` holds the related :class:`PluginFailure` records."""

    def __init__(self, message: str, failures: tuple[PluginFailure, ...] = ()) -> None:
        super().__init__(message)
        self.failures = tuple(failures)

    def __str__(self) -> str:  # LookupError subclasses would otherwise repr() a single argument
        return str(self.args[0])


class BrokenEntryPointError(PluginError):
    """A line of a distribution's ``entry_points.txt`` in the ``propgrad`` group is not ``name = value``."""


class RegistrationError(PluginError, TypeError):
    """A plugin registered something that is not a valid class for its hook."""


class PluginExitError(PluginError, RuntimeError):
    """A plugin raised ``SystemExit`` (called ``sys.exit()``) while it was imported or its hooks ran."""


class PluginLoadError(PluginError, RuntimeError):
    """Raised in strict mode (``PROPGRAD_STRICT_PLUGINS=1``) when any plugin failed to load."""


class UnknownNameError(PluginError, LookupError):
    """No plugin registered the requested name (the message suggests close matches)."""


class DuplicateNameError(PluginError, LookupError):
    """Two or more plugins registered the same name; the message names all of them."""


@dataclass(frozen=True)
class PluginFailure:
    """One plugin that failed to load, to register, or to pass validation.

    Attributes:
        plugin: Entry-point name, or module path of a built-in plugin.
        distribution: Name of the distribution that ships the plugin (None if unknown).
        version: Version of that distribution (None if unknown).
        error: The exception that was raised.
        traceback: The formatted traceback of ``error``.
    """

    plugin: str
    distribution: str | None
    version: str | None
    error: BaseException
    traceback: str

    @property
    def message(self) -> str:
        """``"ErrorType: message"`` of the error."""
        return f"{type(self.error).__name__}: {self.error}"

    def origin(self) -> str:
        """``"plugin (distribution version)"`` for messages."""
        return describe_origin(self.plugin, self.distribution, self.version)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (used by ``propgrad plugins --json``)."""
        return {
            "plugin": self.plugin,
            "distribution": self.distribution,
            "version": self.version,
            "error": self.message,
            "traceback": self.traceback,
        }

    def __str__(self) -> str:
        return f"{self.origin()}: {self.message}"


@dataclass(frozen=True)
class Registration:
    """One class registered by one plugin under one hook (``builtin``: by one of propgrad's own plugins)."""

    kind: str
    name: str
    cls: type
    plugin: str
    distribution: str | None
    version: str | None
    builtin: bool = False

    def origin(self) -> str:
        """``"plugin (distribution version)"`` for messages."""
        return describe_origin(self.plugin, self.distribution, self.version)


def describe_origin(plugin: str, distribution: str | None, version: str | None) -> str:
    """Human-readable origin of a plugin: ``"hue_shift (propgrad-hue-shift 0.1.0)"``."""
    if distribution is None:
        return f"plugin {plugin!r}"
    return f"plugin {plugin!r} ({distribution} {version or '?'})"
