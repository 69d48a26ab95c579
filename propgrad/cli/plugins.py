"""``propgrad plugins``: list installed plugins, what they register, and load failures."""

from __future__ import annotations

import argparse
import json
import warnings
from typing import Any

from propgrad.plugins import KINDS, STRICT_ENV, describe_plugins, strict_mode


def add_parser(subparsers: Any) -> None:
    """Add the ``plugins`` sub-command to the CLI's sub-parsers."""
    parser = subparsers.add_parser(
        "plugins",
        help="list installed plugins and what they register",
        description=(
            "List every plugin (built-in and installed through the 'propgrad' entry point group) "
            "with its distribution, version and the sources, baselines and suites it registers, "
            "with each parameter's type, default, bounds and help (set them with --param name=value), "
            "followed by plugins that failed to load. Exits with 1 only in strict mode "
            f"({STRICT_ENV}=1) when a plugin failed."
        ),
    )
    parser.add_argument("--json", action="store_true", help="print the listing as JSON")
    parser.set_defaults(run=run)


def format_plugins(plugins: list[dict[str, Any]]) -> str:
    """The human-readable listing of :func:`propgrad.plugins.describe_plugins` output."""
    labels = {hook: kind for kind, (hook, _, _) in KINDS.items()}
    lines: list[str] = []
    for plugin in plugins:
        if plugin["failure"] is not None and not plugin["hooks"]:
            continue
        origin = "built-in" if plugin["builtin"] else "entry point"
        lines.append(f"{plugin['name']}  [{plugin['distribution']} {plugin['version']}, {origin}]")
        if not plugin["hooks"]:
            lines.append("  (registers nothing)")
        for hook, entries in plugin["hooks"].items():
            lines.append(f"  {labels.get(hook, hook)}:")
            width = max(len(entry["name"]) for entry in entries)
            for entry in entries:
                lines.append(f"    {entry['name']:<{width}}  {entry['description']}".rstrip())
                lines.extend(format_parameters(entry.get("parameters") or [], indent=" " * (6 + width)))
    failed = [p for p in plugins if p["failure"] is not None]
    if failed:
        lines.append("")
        lines.append(f"Load failures ({len(failed)}):")
        for plugin in failed:
            failure = plugin["failure"]
            lines.append(f"  {failure['plugin']}  [{failure['distribution']} {failure['version']}]")
            lines.append(f"    {failure['error']}")
    if not plugins:
        lines.append("no plugins found")
    return "\n".join(lines)


def format_parameters(parameters: list[dict[str, Any]], *, indent: str) -> list[str]:
    """One line per parameter: ``name: type = default, bounds; help`` (as ``--param name=value`` sets it)."""
    lines = []
    for record in parameters:
        text = f"{record['name']}: {record['type']}"
        text += " (required)" if record["required"] else f" = {record['default']!r}"
        if record.get("bounds"):
            text += f", in {record['bounds']}"
        if record.get("choices"):
            text += ", one of " + ", ".join(repr(c) for c in record["choices"])
        if record.get("help"):
            text += f"; {record['help']}"
        lines.append(indent + text)
    return lines


def run(args: argparse.Namespace) -> int:
    """Print the plugin listing; returns 1 in strict mode when a plugin failed, else 0."""
    with warnings.catch_warnings():  # the failures are printed below; no need to warn as well
        warnings.simplefilter("ignore")
        plugins = describe_plugins()
    if getattr(args, "json", False):
        failures = [p["failure"] for p in plugins if p["failure"] is not None]
        print(json.dumps({"plugins": plugins, "failures": failures}, indent=2))
    else:
        print(format_plugins(plugins))
    has_failures = any(p["failure"] is not None for p in plugins)
    return 1 if has_failures and strict_mode() else 0
