"""The base classes of what propgrad raises and warns about for a user's or a plugin's mistake.

An error derived from :class:`PropgradError` describes something the user can fix (an unknown
name, a broken plugin, a bad setting), so the command line prints it as one line,
``propgrad <command>: error: ...``, without a traceback (``propgrad --debug`` adds it). Any other
exception type escaping a command is a bug, and its traceback is shown. Warnings derived from
:class:`PropgradWarning` print as one line, ``propgrad: warning: ...``, in the command line.
"""

from __future__ import annotations

__all__ = ["PropgradError", "PropgradWarning"]


class PropgradError(Exception):
    """Base class of errors that describe a user's or a plugin's mistake, not a bug in propgrad."""


class PropgradWarning(UserWarning):
    """Base class of propgrad's warnings (a plugin that failed to load ...)."""
