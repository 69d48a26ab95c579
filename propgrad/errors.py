"""The base classes of what propgrad raises and warns about for a user's or a plugin's mistake.

An error derived from :class:`PropgradError` describes something the user can fix (an unknown
name, a broken plugin, a bad setting, a model whose outputs cannot be used), so the command line
prints it as one line, ``propgrad <command>: error: ...``, without a traceback (``propgrad --debug``
adds it). Any other exception type escaping a command is a bug, and its traceback is shown: a
plain ``ValueError`` raised inside torch or inside a model's ``forward`` is not mistaken for the
user's input. Warnings derived from :class:`PropgradWarning` print as one line,
``propgrad: warning: ...``, in the command line.

The hierarchy::

    PropgradError                                   (Exception)
    +-- InvalidParameterError                       (also ValueError and TypeError)
    |   +-- ParameterTypeError                      a value of the wrong type
    +-- ModelOutputError                            (also ValueError) unusable model outputs
    +-- InputFileError                              (also FileNotFoundError) a named file is missing
    +-- propgrad.plugins.PluginError and its subclasses

:class:`InvalidParameterError` is both a ``ValueError`` and a ``TypeError`` (as scikit-learn's
``InvalidParameterError``), so code written against the plain built-in types keeps catching it.
"""

from __future__ import annotations

__all__ = [
    "InputFileError",
    "InvalidParameterError",
    "ModelOutputError",
    "ParameterTypeError",
    "PropgradError",
    "PropgradWarning",
]


class PropgradError(Exception):
    """Base class of errors that describe a user's or a plugin's mistake, not a bug in propgrad."""


class InvalidParameterError(PropgradError, ValueError, TypeError):
    """A parameter, option or input value that propgrad refuses; the message names it and what was expected.

    Both a ``ValueError`` and a ``TypeError``, so ``except ValueError`` and ``except TypeError``
    written before this class existed still catch it.
    """


class ParameterTypeError(InvalidParameterError):
    """A parameter of the wrong type (``seed=1.5``, ``alpha="0.05"``); an :class:`InvalidParameterError`."""


class ModelOutputError(PropgradError, ValueError):
    """A model's outputs cannot be used (NaN or Inf, a wrong shape, a count that does not fit the labels)."""


class InputFileError(PropgradError, FileNotFoundError):
    """A file or folder the user named does not exist (also a ``FileNotFoundError``)."""


class PropgradWarning(UserWarning):
    """Base class of propgrad's warnings (a plugin that failed to load ...)."""
