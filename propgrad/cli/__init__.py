"""The ``propgrad`` command line: one module per sub-command under ``propgrad.cli``."""

from __future__ import annotations

import argparse
import sys
from importlib import import_module

from propgrad import __version__

COMMANDS = ("benchmark", "explain", "plugins")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="propgrad",
        description="Explain vision models by gradual interventions on semantic properties.",
    )
    parser.add_argument("--version", action="version", version=f"propgrad {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        import_module(f"propgrad.cli.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("\ninterrupted; finished work is kept and a rerun continues from there", file=sys.stderr)
        return 130
    except (ValueError, TypeError, FileNotFoundError, LookupError) as exc:
        print(f"propgrad {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
