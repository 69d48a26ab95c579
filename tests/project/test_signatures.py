"""No internal function takes more than 8 parameters: settings travel inside as objects (issue 18).

Arguments that travel together go into a small frozen dataclass (or an existing settings object),
never into ``**kwargs``. Only the doors users type keyword arguments into (Captum's feel) may take
more, up to :data:`DOOR_LIMIT`; each is listed in :data:`PUBLIC_DOORS` with its reason. A plugin
source's constructor that mirrors its declared parameters would be listed there too (none is
over the limit today: sources take ``*args, **params`` and declare them in a ``Params`` class).

Parameters are counted as a reader counts them: every named parameter (positional-only,
positional, keyword-only), ``*args`` and ``**kwargs`` one each; the first parameter of a method
(``self``/``cls``) is not counted. Nested functions and lambdas count as functions of their own.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAX_PARAMETERS = 8
DOOR_LIMIT = 12
"""The most a public door may take (issue 18: ``attribute`` has at most 12 parameters)."""

#: ``path::qualified name`` -> why this door may take more than :data:`MAX_PARAMETERS`.
PUBLIC_DOORS = {
    "propgrad/explain/explainer.py::PropertyGradient.attribute": (
        "the user's door, Captum's attribute(inputs, target, ...) with the test's settings as keywords"
    ),
    "propgrad/stats/permutation.py::permutation_test": (
        "public statistics door: the test's settings typed as keywords, checked once into TestSettings"
    ),
    "propgrad/stats/settings.py::test_settings": (
        "the constructor users call with keywords to get the frozen TestSettings the inside carries"
    ),
    "propgrad/harness/settings.py::preset": (
        "the benchmark's door: quick/full preset plus the overrides a user types, into BenchmarkSettings"
    ),
    "propgrad/track/tracking.py::PropertyTracker.track": (
        "the user's door beside attribute: attribute's image, source, target and test keywords plus ready "
        "sequences and where each finished checkpoint is kept"
    ),
    "propgrad/harness/pipeline.py::run_benchmark": (
        "the benchmark's Python entry point: settings and folder, the suites and baselines a caller may "
        "pass ready, how it reports, and where its units run (any concurrent.futures.Executor, a device)"
    ),
    "propgrad/explain/quantus.py::evaluate": (
        "adapter mirroring quantus.evaluate's keywords (metric, model, x_batch, y_batch, s_batch, ...)"
    ),
}


def source_folders(root: Path = ROOT) -> list[Path]:
    """``propgrad/`` and the package folder of every first-party plugin (``src/`` or the package itself)."""
    folders = [root / "propgrad"]
    for plugin in sorted((root / "plugins").iterdir()):
        if (plugin / "src").is_dir():
            folders.append(plugin / "src")
        elif plugin.is_dir():
            folders += sorted(p.parent for p in plugin.glob("*/__init__.py") if p.parent.name != "tests")
    return folders


def count_parameters(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda, method: bool) -> int:
    """Parameters of a function as the rule counts them (``*args``/``**kwargs`` one each; no ``self``/``cls``)."""
    args = node.args
    count = len(args.posonlyargs) + len(args.args) + len(args.kwonlyargs)
    count += (args.vararg is not None) + (args.kwarg is not None)
    is_static = method and any(
        isinstance(d, ast.Name) and d.id == "staticmethod" for d in getattr(node, "decorator_list", [])
    )
    if method and not is_static and (args.posonlyargs or args.args):
        count -= 1
    return count


def signatures(path: Path, root: Path = ROOT) -> dict[str, tuple[int, int]]:
    """``path::qualified name`` -> (parameters, line) of every function and lambda in a file."""
    relative = path.relative_to(root).as_posix()
    found: dict[str, tuple[int, int]] = {}

    def visit(node: ast.AST, prefix: str, in_class: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.", True)
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                name = child.name if not isinstance(child, ast.Lambda) else f"<lambda line {child.lineno}>"
                found[f"{relative}::{prefix}{name}"] = (count_parameters(child, in_class), child.lineno)
                visit(child, f"{prefix}{name}.", False)
            else:
                visit(child, prefix, in_class)

    visit(ast.parse(path.read_text(encoding="utf-8")), "", False)
    return found


def oversized(root: Path = ROOT) -> dict[str, str]:
    """``path::name`` -> ``path:line: name takes N parameters`` for every function over the limit."""
    out = {}
    for folder in source_folders(root):
        for path in sorted(folder.rglob("*.py")):
            for key, (count, line) in signatures(path, root).items():
                if count > MAX_PARAMETERS:
                    file, name = key.split("::")
                    out[key] = f"{file}:{line}: {name} takes {count} parameters"
    return out


def test_no_internal_function_takes_more_than_eight_parameters() -> None:
    unexpected = [message for key, message in oversized().items() if key not in PUBLIC_DOORS]
    assert not unexpected, (
        f"over {MAX_PARAMETERS} parameters (group arguments that travel together into a frozen dataclass or "
        "a settings object; a public door goes into PUBLIC_DOORS with its reason):\n" + "\n".join(unexpected)
    )


def test_every_public_door_is_still_a_door_within_its_limit() -> None:
    found = oversized()
    stale = [key for key in PUBLIC_DOORS if key not in found]
    assert not stale, f"no longer over {MAX_PARAMETERS} parameters (or renamed): remove from PUBLIC_DOORS: {stale}"
    too_wide = [found[key] for key in PUBLIC_DOORS if int(found[key].split(" takes ")[1].split()[0]) > DOOR_LIMIT]
    assert not too_wide, f"public doors take at most {DOOR_LIMIT} parameters:\n" + "\n".join(too_wide)


def test_the_scan_covers_the_core_and_every_plugin_package() -> None:
    names = {folder.relative_to(ROOT).as_posix() for folder in source_folders()}
    plugins = {p.name for p in (ROOT / "plugins").iterdir() if p.is_dir()}
    assert "propgrad" in names
    assert {name.split("/")[1] for name in names if name.startswith("plugins/")} == plugins


@pytest.mark.parametrize(
    ("code", "name", "count"),
    [
        ("def f(a, b, *, c=1): pass\n", "f", 3),
        ("def f(a, /, b, *args, c, **kwargs): pass\n", "f", 5),
        ("class C:\n    def m(self, a, b): pass\n", "C.m", 2),
        ("class C:\n    @classmethod\n    def m(cls, a): pass\n", "C.m", 1),
        ("class C:\n    @staticmethod\n    def m(a, b): pass\n", "C.m", 2),
        ("def outer(a):\n    def inner(a, b, c): pass\n", "outer.inner", 3),
        ("class C:\n    class D:\n        def m(self, *a, **k): pass\n", "C.D.m", 2),
    ],
)
def test_parameters_are_counted_as_a_reader_counts_them(tmp_path: Path, code: str, name: str, count: int) -> None:
    path = tmp_path / "module.py"
    path.write_text(code, encoding="utf-8")
    assert signatures(path, tmp_path)[f"module.py::{name}"][0] == count


def test_a_nine_parameter_function_is_reported(tmp_path: Path) -> None:
    package = tmp_path / "propgrad"
    package.mkdir()
    (tmp_path / "plugins").mkdir()
    (package / "wide.py").write_text("def wide(a, b, c, d, e, f, g, h, *rest):\n    pass\n", encoding="utf-8")
    (package / "narrow.py").write_text("def narrow(a, b, c, d, e, f, g, **kw):\n    pass\n", encoding="utf-8")
    assert oversized(tmp_path) == {"propgrad/wide.py::wide": "propgrad/wide.py:1: wide takes 9 parameters"}
