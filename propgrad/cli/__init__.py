"""The ``propgrad`` command line: one module per sub-command under ``propgrad.cli``.

A user's mistake, a :class:`~propgrad.errors.PropgradError` (a bad option or parameter, an unknown
name, a missing file, a broken plugin ...), prints as one line, ``propgrad <command>: error: ...``,
and exits with 2; propgrad's warnings print as one line, ``propgrad: warning: ...``. Any other
exception is a bug and keeps its traceback, a plain ``ValueError`` included: one raised inside a
model's ``forward`` or inside torch is not the user's input. ``--debug`` shows tracebacks and
warnings in full.
"""

from __future__ import annotations

import argparse
import gc
import sys
import traceback
import warnings
from importlib import import_module
from typing import Callable, TextIO

from propgrad import __version__
from propgrad.errors import PropgradError, PropgradWarning

COMMANDS = ("benchmark", "demo", "explain", "plugins", "track", "validate")

#: Exceptions that describe what the user got wrong; printed as one line, exit code 2. Nothing else:
#: a plain ValueError or TypeError may come from a bug (in propgrad, torch or the user's model).
USER_ERRORS: tuple[type[BaseException], ...] = (PropgradError,)

DEBUG_HELP = "show full tracebacks of errors and warnings (to report a bug)"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="propgrad",
        description="Explain vision models by gradual interventions on semantic properties.",
    )
    parser.add_argument("--version", action="version", version=f"propgrad {__version__}")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        import_module(f"propgrad.cli.{name}").add_parser(sub)
    for command in sub.choices.values():  # `propgrad explain --debug ...` works too
        if "--debug" not in command._option_string_actions:
            command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    return parser


def one_line(text: str) -> str:
    """``text`` with its lines joined by spaces, so a message prints as a single line."""
    return " ".join(line.strip() for line in str(text).splitlines() if line.strip())


def error_message(command: str, exc: BaseException) -> str:
    """The one-line report of a user error: ``propgrad <command>: error: <message>``."""
    return f"propgrad {command}: error: {one_line(str(exc)) or type(exc).__name__}"


def one_line_warnings(fallback: Callable[..., None]) -> Callable[..., None]:
    """A ``warnings.showwarning`` that prints propgrad's warnings as one line and passes others to ``fallback``."""

    def show_warning(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        if not issubclass(category, PropgradWarning):
            fallback(message, category, filename, lineno, file, line)
            return
        print(f"propgrad: warning: {one_line(str(message))}", file=sys.stderr if file is None else file)

    return show_warning


def run_command(args: argparse.Namespace) -> int:
    """Run the parsed command, reporting user errors as one line (with the traceback under ``--debug``)."""
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("\ninterrupted; finished work is kept and a rerun continues from there", file=sys.stderr)
        return 130
    except USER_ERRORS as exc:
        if args.debug:
            traceback.print_exc()
        print(error_message(args.command, exc), file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code.

    Called without ``argv``, as the console script and ``python -m propgrad.cli`` call it, it is
    the process's command line, and Python's cyclic garbage collector stops re-scanning what
    stays alive to the end (:func:`gc.freeze`): the modules imported while the parser is built
    (torch's and propgrad's, a quarter of a million objects), and at the end everything the
    command leaves. Its full passes re-scanned them during the command and once more while the
    interpreter exits: a cold ``propgrad explain`` (``benchmarks/startup.py``'s) took 1.2 s less
    CPU with the freezes on a loaded two-core machine, its exit 0.2 s instead of 1.0 s. Objects are
    still freed when their last reference goes; only cycles that exist when a freeze happens are
    left to the process's end. Called with ``argv`` (from Python, e.g. a test) the collector is
    left alone.
    """
    from propgrad.core.allocator import tune_allocator
    from propgrad.plugins.entry_points import repair_entry_points

    command_line = argv is None
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    with warnings.catch_warnings():
        if not debug:
            warnings.showwarning = one_line_warnings(warnings.showwarning)
        repair_entry_points()  # before anything imports torch: a broken entry_points.txt would break its import
        args = build_parser().parse_args(argv)  # --help and --version end here, before any plugin is loaded
        tune_allocator()  # the model's activations reused, not faulted in anew (propgrad.core.allocator)
        if command_line:
            gc.freeze()  # the imported modules live to the end: no full pass re-scans them
        try:
            return run_command(args)
        finally:
            if command_line:
                gc.freeze()  # the process ends: no full pass at the interpreter's exit either


if __name__ == "__main__":
    sys.exit(main())
