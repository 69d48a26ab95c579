"""Every hook in propgrad.hookspecs is documented in docs/hooks.md and exercised by a test."""

from __future__ import annotations

import ast
import inspect
import re
import sys
import types
from pathlib import Path

import pytest

from propgrad import hookspecs
from propgrad.testing import check_baseline, check_source, collect_registrations

ROOT = Path(__file__).resolve().parents[2]
HOOKS_DOC = ROOT / "docs" / "hooks.md"
SPEC_ATTR = f"{hookspecs.PROJECT_NAME}_spec"
HOOKS = sorted(name for name, obj in vars(hookspecs).items() if callable(obj) and hasattr(obj, SPEC_ATTR))


def sections() -> dict[str, str]:
    """Text of docs/hooks.md under each second-level heading, keyed by heading."""
    parts = re.split(r"^## +(.+?)\s*$", HOOKS_DOC.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return {parts[i].strip("` "): parts[i + 1] for i in range(1, len(parts), 2)}


def test_there_are_hooks():
    assert HOOKS == ["register_baselines", "register_sources", "register_suites"]


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented_with_its_signature(hook):
    doc = sections()
    assert hook in doc, f"docs/hooks.md needs a '## {hook}' section"
    params = ", ".join(inspect.signature(getattr(hookspecs, hook)).parameters)
    assert re.search(rf"def {hook}\({params}\b", doc[hook]), f"the {hook} section must show its signature"


def collect_test_functions() -> dict[str, ast.FunctionDef]:
    """Every module-level ``test_*`` function of the core's and the plugins' tests, keyed ``path::name``."""
    paths = sorted([*ROOT.glob("tests/**/test_*.py"), *ROOT.glob("plugins/*/tests/test_*.py")])
    found = {}
    for path in paths:
        if path.name == Path(__file__).name:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_"):
                found[f"{path.relative_to(ROOT)}::{node.name}"] = node
    return found


def named_in(node: ast.AST) -> str | None:
    """The identifier or text a node spells out: a name, attribute, keyword argument or string constant."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.keyword):
        return node.arg
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def uses(function: ast.FunctionDef, hook: str) -> bool:
    """True when the function's code (not its docstring) names ``hook``."""
    body = function.body[1:] if ast.get_docstring(function) is not None else function.body
    return any(hook in (named_in(node) or "") for statement in body for node in ast.walk(statement))


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_test(hook):
    """Like datasette: a test function named after the hook, whose code exercises that hook."""
    named = {key: fn for key, fn in collect_test_functions().items() if hook in fn.name}
    assert named, f"no test function has {hook!r} in its name (e.g. def test_{hook}_...) in tests/ or plugins/*/tests/"
    assert any(uses(fn, hook) for fn in named.values()), f"{', '.join(named)} never use {hook} in their code"


def test_hook_test_detection_ignores_docstrings_and_unrelated_names():
    tree = ast.parse(
        "def test_register_sources_doc():\n"
        '    """register_sources is only named here."""\n'
        "    assert True\n"
        "def test_register_sources_real(eps):\n"
        "    add(eps, 'x', plugin_module('x', register_sources=registering()))\n"
    )
    doc_only, real = tree.body
    assert not uses(doc_only, "register_sources") and uses(real, "register_sources")
    assert not uses(real, "register_baselines")


@pytest.mark.parametrize("hook", ["register_sources", "register_baselines"])
def test_documented_example_works(hook, monkeypatch):
    """The complete example of a hook section registers a class that passes propgrad.testing."""
    blocks = re.findall(r"```python\n(.*?)```", sections()[hook], flags=re.DOTALL)
    example = next(b for b in blocks if "@hookimpl" in b and "register(" in b)
    module = types.ModuleType(f"doc_example_{hook}")
    monkeypatch.setitem(sys.modules, module.__name__, module)  # as an imported plugin module is (dataclasses need it)
    exec(compile(example, f"docs/hooks.md#{hook}", "exec"), module.__dict__)
    found = collect_registrations(module)
    kind = hook.removeprefix("register_")
    (cls,) = found[kind]
    if kind == "sources":
        check_source(cls, first_is_original=True)
    else:
        check_baseline(cls)
