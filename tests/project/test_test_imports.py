"""No test module imports another test module: what tests share lives in helper modules.

A test module that imports another runs the other's module-level code and drags its fixtures and
tests along (collected twice under two names in some import modes), and a change to one test file
breaks another. Shared fakes live in ``tests/fakes.py``, shared fixtures in ``tests/conftest.py``,
other helpers in modules whose name does not start with ``test_`` (``tests/browser.py`` ...).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEST_FOLDERS = [ROOT / "tests", *sorted((ROOT / "plugins").glob("*/tests"))]


def _is_test_module(dotted: str) -> bool:
    """Whether an imported name is (inside) a test module: ``tests.<...>.test_x``, a relative
    ``.test_x`` or a top-level ``test_x``; ``propgrad....test_settings`` (a function) is not."""
    parts = dotted.lstrip(".").split(".")
    local = dotted.startswith(".") or parts[0] == "tests" or parts[0].startswith("test_")
    return local and any(part.startswith("test_") for part in parts)


def imports_of_test_modules(path: Path, root: Path = ROOT) -> list[str]:
    """``file:line: imports module`` for every import statement in ``path`` that names a ``test_*`` module.

    Args:
        path: A Python file.
        root: The folder the reported file name is relative to.
    """
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            prefix = module if module.endswith(".") else f"{module}."
            targets = [module, *(prefix + alias.name for alias in node.names)]
        else:
            continue
        named = [name for name in targets if _is_test_module(name)]
        if named:
            found.append((node.lineno, f"{path.relative_to(root)}:{node.lineno}: imports {named[0]}"))
    return [line for _, line in sorted(found)]


def test_no_test_module_imports_another_test_module() -> None:
    problems = [
        line
        for folder in TEST_FOLDERS
        for path in sorted(folder.rglob("*.py"))
        for line in imports_of_test_modules(path)
    ]
    assert not problems, "move what the tests share to tests/fakes.py or a helper module:\n" + "\n".join(problems)


def test_the_scan_finds_every_form_of_such_an_import(tmp_path: Path) -> None:
    path = tmp_path / "probe.py"
    path.write_text(
        "import tests.harness.test_harness\n"
        "from tests.harness.test_harness import DarkeningSuite\n"
        "from tests.harness import test_harness\n"
        "from .test_sources import Brighten\n"
        "from . import test_sources\n"
        "from tests.fakes import DarkeningSuite\n"  # a helper module: fine
        "import testing_tools, os\n"  # not a test_ module: fine
        "from propgrad.stats.settings import test_settings\n",  # a function of the package: fine
        encoding="utf-8",
    )
    assert imports_of_test_modules(path, root=tmp_path) == [
        "probe.py:1: imports tests.harness.test_harness",
        "probe.py:2: imports tests.harness.test_harness",
        "probe.py:3: imports tests.harness.test_harness",
        "probe.py:4: imports .test_sources",
        "probe.py:5: imports .test_sources",
    ]
