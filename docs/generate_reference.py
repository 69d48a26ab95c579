"""Write the generated reference pages: ``docs/api.md`` from the docstrings, ``docs/cli.md`` from ``--help``.

    python docs/generate_reference.py          # rewrite both pages
    python docs/generate_reference.py --check  # exit 1 and name the stale pages, writing nothing

Run it after changing a public name, a docstring or a command-line option;
``tests/test_docs_reference.py`` fails while a committed page differs from what this writes.

The API reference documents the names in ``__all__`` of each module in ``API_MODULES`` (or, for a
module without one, the classes and functions it defines), in that order; a name already
documented under an earlier module gets a link instead of a second copy. Classes list the public
methods and properties they define themselves. Google-style sections (``Args:``, ``Returns:``
...) become lists, and reStructuredText markup (````x````, ``:class:`~a.B```) becomes Markdown.
"""

from __future__ import annotations

import argparse
import inspect
import os
import re
import sys
from collections.abc import Callable
from importlib import import_module
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent

#: Modules whose ``__all__`` is the public API, in the order the reference lists them.
API_MODULES = (
    "propgrad",
    "propgrad.explain.quantus",
    "propgrad.explain.zero_shot",
    "propgrad.track",
    "propgrad.track.checkpoints",
    "propgrad.testing",
    "propgrad.baselines",
    "propgrad.plugins",
    "propgrad.errors",
)

#: Width of the generated ``--help`` text, fixed so the page does not depend on the terminal.
HELP_COLUMNS = 100

_SECTION = re.compile(r"^(Args|Arguments|Attributes|Returns|Yields|Raises|Example|Examples|Note|Notes|Warns):\s*$")
_ITEM = re.compile(r"^([A-Za-z_*][\w.*, \[\]|()]*?)(?: \(([^)]*)\))?:\s+(.*)$")
_LIST_SECTIONS = {"Args", "Arguments", "Attributes", "Raises", "Warns"}
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def markdown_text(text: str) -> str:
    """reStructuredText inline markup as Markdown: ````x```` -> `` `x` ``, roles -> their target."""
    text = re.sub(r":(?:class|func|meth|attr|mod|data|exc|obj):`~?([^`]+)`", lambda m: f"`{m.group(1)}`", text)
    text = re.sub(r"`([^`]+)` <[^>]+>`_", r"\1", text)
    return text.replace("``", "`")


def render_docstring(doc: str | None) -> list[str]:
    """A Google-style docstring as Markdown lines."""
    if not doc:
        return ["*(no docstring)*", ""]
    out: list[str] = []
    section: str | None = None
    in_code = False
    for raw in inspect.cleandoc(doc).splitlines():
        heading = _SECTION.match(raw)
        if heading:
            if in_code:
                out.append("```")
                in_code = False
            section = heading.group(1)
            while out and not out[-1].strip():
                out.pop()
            out += ["", f"**{section}:**", ""]
            continue
        if section is None:
            out.append(markdown_text(raw))
            continue
        body = raw[4:] if raw.startswith("    ") else raw.lstrip()
        if section in ("Example", "Examples"):
            if not in_code and body.strip():
                out.append("```")
                in_code = True
            out.append(body)
            continue
        if not raw.strip():
            out.append("")
            continue
        item = _ITEM.match(body) if section in _LIST_SECTIONS and not body.startswith(" ") else None
        if item:
            name, kind, rest = item.groups()
            kind_text = f" ({markdown_text(kind)})" if kind else ""
            out.append(f"- `{name}`{kind_text}: {markdown_text(rest)}")
        elif section in _LIST_SECTIONS and out and out[-1].startswith("- "):
            out[-1] += " " + markdown_text(body.strip())
        else:
            out.append(markdown_text(body.strip()))
    if in_code:
        out.append("```")
    return [*out, ""]


def signature(obj: Callable[..., Any], name: str) -> str:
    """``name(params)`` on one line, or one parameter per line when long; memory addresses removed."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return f"{name}(...)"
    parameters = [
        p if p.annotation is p.empty else p.replace(annotation=_Written(p.annotation)) for p in sig.parameters.values()
    ]
    sig = sig.replace(parameters=parameters, return_annotation=_Written(sig.return_annotation))
    values = list(sig.parameters.values())
    if values and values[0].name in ("self", "cls"):
        values = values[1:]
    params = _with_separators(values)
    shown = sig.return_annotation.text
    returns = f" -> {shown}" if shown and not inspect.isclass(obj) else ""
    one_line = f"{name}({', '.join(params)}){returns}"
    if len(one_line) <= 100:
        return _ADDRESS.sub("", one_line)
    lines = [f"{name}(", *(f"    {p}," for p in params), f"){returns}"]
    return _ADDRESS.sub("", "\n".join(lines))


def _with_separators(parameters: list[inspect.Parameter]) -> list[str]:
    """Parameters as Python writes them, with ``/`` after positional-only and ``*`` before keyword-only ones."""
    out: list[str] = []
    kinds = [p.kind for p in parameters]
    for i, p in enumerate(parameters):
        if (
            p.kind is p.KEYWORD_ONLY
            and p.VAR_POSITIONAL not in kinds[:i]
            and (i == 0 or kinds[i - 1] is not p.KEYWORD_ONLY)
        ):
            out.append("*")
        out.append(str(p))
        if p.kind is p.POSITIONAL_ONLY and (i + 1 == len(parameters) or kinds[i + 1] is not p.POSITIONAL_ONLY):
            out.append("/")
    return out


class _Written:
    """An annotation shown as written in the source (``from __future__ import annotations`` keeps strings)."""

    def __init__(self, annotation: Any) -> None:
        if annotation is inspect.Parameter.empty:
            self.text = ""
        elif isinstance(annotation, str):
            self.text = annotation
        else:
            self.text = inspect.formatannotation(annotation)

    def __repr__(self) -> str:
        return self.text

    def __bool__(self) -> bool:
        return bool(self.text)


def anchor(qualified: str) -> str:
    """The anchor GitHub gives the heading ``qualified`` (a heading holding only that code span)."""
    return re.sub(r"[^\w\- ]", "", qualified.lower()).replace(" ", "-")


def own_members(cls: type) -> list[tuple[str, Any]]:
    """Public methods and properties that ``cls`` defines itself, in definition order."""
    members = []
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if inspect.isfunction(value) or isinstance(value, property):
            members.append((name, value))
    return members


def render_object(qualified: str, obj: Any) -> list[str]:
    """The Markdown of one public name."""
    short = qualified.rsplit(".", 1)[1]
    lines = [f"### `{qualified}`", ""]
    if inspect.isclass(obj):
        bases = [f"`{b.__module__}.{b.__qualname__}`" for b in obj.__bases__ if b is not object]
        sig = (
            signature(obj, short) if "__init__" in vars(obj) or "__new__" in vars(obj) or _is_dataclass(obj) else short
        )
        lines += ["```text", f"class {sig}", "```", ""]
        lines += [f"Bases: {', '.join(bases)}.", ""] if bases else []
        lines += render_docstring(obj.__doc__)
        for name, member in own_members(obj):
            lines.append(f"#### `{short}.{name}`")
            lines.append("")
            if isinstance(member, property):
                lines += ["*property*", "", *render_docstring(member.__doc__)]
            else:
                lines += ["```text", signature(member, name), "```", "", *render_docstring(member.__doc__)]
    elif inspect.isfunction(obj) or inspect.isbuiltin(obj):
        lines += ["```text", signature(obj, short), "```", "", *render_docstring(obj.__doc__)]
    elif callable(obj):  # an instance such as pluggy's HookimplMarker (its docstring is the library's)
        lines += [f"An instance of `{type(obj).__qualname__}` from `{type(obj).__module__.split('.')[0]}`.", ""]
    else:
        lines += ["```text", f"{short} = {_ADDRESS.sub('', repr(obj))}", "```", ""]
    return lines


def _is_dataclass(cls: type) -> bool:
    return hasattr(cls, "__dataclass_fields__")


def public_names(module: Any) -> list[str]:
    """``module.__all__``, or else the classes and functions it defines without a leading underscore."""
    if hasattr(module, "__all__"):
        return list(module.__all__)
    return [
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and value.__module__ == module.__name__
    ]


def render_api() -> str:
    """The text of ``docs/api.md``."""
    documented: dict[int, str] = {}
    body: list[str] = []
    contents: list[str] = []
    for module_name in API_MODULES:
        module = import_module(module_name)
        body += [f"## `{module_name}`", ""]
        contents.append(f"- [`{module_name}`](#{anchor(module_name)})")
        summary = inspect.cleandoc(module.__doc__ or "").split("\n\n")[0]
        body += [markdown_text(" ".join(summary.split())), ""]
        for name in public_names(module):
            obj = getattr(module, name)
            qualified = f"{module_name}.{name}"
            if name.startswith("__"):
                continue
            if id(obj) in documented and not isinstance(obj, (str, int, float, tuple, dict)):
                first = documented[id(obj)]
                body += [f"- `{qualified}`: the same object as [`{first}`](#{anchor(first)}).", ""]
                continue
            documented[id(obj)] = qualified
            body += render_object(qualified, obj)
    header = [
        "# API reference",
        "",
        "<!-- Generated by docs/generate_reference.py from the docstrings; do not edit by hand. -->",
        "",
        "The public names of propgrad, generated from their docstrings. Names not listed here are "
        "internal and may change; the guides are the [user guide](user-guide.md), "
        "[plugin authors](plugin-authors.md) and the [hook reference](hooks.md).",
        "",
        *contents,
        "",
    ]
    return "\n".join(header + body).rstrip() + "\n"


def _parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    from propgrad.cli import build_parser

    parser = build_parser()
    found = [("propgrad", parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found += [(f"propgrad {name}", sub) for name, sub in action.choices.items()]
    return found


def render_cli() -> str:
    """The text of ``docs/cli.md``: every command's ``--help`` at ``HELP_COLUMNS`` columns."""
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(HELP_COLUMNS)
    try:
        parsers = _parsers()
        lines = [
            "# Command-line reference",
            "",
            "<!-- Generated by docs/generate_reference.py from the argparse help; do not edit by hand. -->",
            "",
            "Every `propgrad` command's `--help`. Options that come from plugins (sources, baselines, "
            "suites) are listed by `propgrad plugins`.",
            "",
            *(f"- [`{name}`](#{anchor(name)})" for name, _ in parsers),
            "",
        ]
        for name, parser in parsers:
            lines += [f"## `{name}`", "", "```text", parser.format_help().rstrip(), "```", ""]
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old
    return "\n".join(lines).rstrip() + "\n"


#: Each generated page and the function that renders it.
PAGES: dict[str, Callable[[], str]] = {"api.md": render_api, "cli.md": render_cli}


def stale_pages() -> list[str]:
    """The generated pages whose committed text differs from what the code gives now."""
    return [name for name, render in PAGES.items() if _read(DOCS / name) != render()]


def _read(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.exists() else None


def main(argv: list[str] | None = None) -> int:
    """Rewrite the pages, or with ``--check`` report the stale ones; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a page is out of date; write nothing")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_pages()
        for name in stale:
            print(f"docs/{name} is out of date: run python docs/generate_reference.py", file=sys.stderr)
        return 1 if stale else 0
    for name, render in PAGES.items():
        (DOCS / name).write_text(render(), encoding="utf-8")
        print(f"wrote docs/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
