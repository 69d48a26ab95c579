"""Every hook in propgrad.hookspecs is documented in docs/hooks.md and exercised by a test."""

from __future__ import annotations

import inspect
import re
import types
from pathlib import Path

import pytest

from propgrad import hookspecs
from propgrad.testing import check_baseline, check_source, collect_registrations

ROOT = Path(__file__).resolve().parents[1]
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


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_test(hook):
    others = [p for p in (ROOT / "tests").glob("test_*.py") if p.name != Path(__file__).name]
    assert any(hook in p.read_text(encoding="utf-8") for p in others), f"no test mentions {hook}"


@pytest.mark.parametrize("hook", ["register_sources", "register_baselines"])
def test_documented_example_works(hook):
    """The complete example of a hook section registers a class that passes propgrad.testing."""
    blocks = re.findall(r"```python\n(.*?)```", sections()[hook], flags=re.DOTALL)
    example = next(b for b in blocks if "@hookimpl" in b and "register(" in b)
    module = types.ModuleType(f"doc_example_{hook}")
    exec(compile(example, f"docs/hooks.md#{hook}", "exec"), module.__dict__)
    found = collect_registrations(module)
    kind = hook.removeprefix("register_")
    (cls,) = found[kind]
    if kind == "sources":
        check_source(cls, first_is_original=True)
    else:
        check_baseline(cls)
