"""The package layout of docs/layout.md: a module's layer is its folder, imports point down the layers only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "propgrad"

#: Layers from the top down, each a folder; a module may import its own layer and the ones listed after it.
LAYERS = ("cli", "track", "harness", "suites", "explain", "baselines", "sources", "plugins", "stats", "core")
#: Folders that are peers of a layer rather than a layer of their own: ``propgrad demo``'s page uses the
#: command line's model and image loading, and the command line starts it.
SAME_LAYER = {"demo": "cli"}
#: The few modules left at the package's top, with the layer each belongs to: the facade and the
#: plugin author's kit use the API layer; the error classes and hook markers are for everyone.
TOP_LEVEL = {
    "__init__": "explain",
    "testing": "explain",
    "example_model": "explain",
    "errors": "core",
    "hookspecs": "core",
}
#: At most this many modules at the package's top.
MAX_TOP_LEVEL = 8
#: The mathematics stays pure: no plugins, models or I/O.
STATS_MAY_IMPORT = ("propgrad.stats", "propgrad.core.validation", "propgrad.errors")


def layer_of(module: str) -> str:
    """The layer of a dotted module name inside propgrad: its folder, or :data:`TOP_LEVEL`'s entry."""
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in SAME_LAYER:
        return SAME_LAYER[parts[1]]
    if len(parts) > 1 and parts[1] in LAYERS:
        return parts[1]
    return TOP_LEVEL["__init__" if parts == ["propgrad"] else parts[1]]


def imports_of(path: Path) -> list[tuple[str, int]]:
    """Every ``propgrad...`` module imported by a file, with its line (module level and lazy)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] if node.module != "propgrad" else [_submodule(a.name) for a in node.names]
            found += [(name, node.lineno) for name in names if name.startswith("propgrad")]
        elif isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.startswith("propgrad")]
    return [(name, line) for name, line in found if name.split(".")[0] == "propgrad"]


def _submodule(name: str) -> str:
    """``from propgrad import name``: the module ``propgrad.name``, or ``propgrad`` for an attribute."""
    is_module = (PACKAGE / f"{name}.py").exists() or (PACKAGE / name / "__init__.py").exists()
    return f"propgrad.{name}" if is_module else "propgrad"


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _type_checking_lines(path: Path) -> set[int]:
    """Lines of the imports under a module-level ``if TYPE_CHECKING:`` (never run)."""
    lines: set[int] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            lines |= {statement.lineno for statement in node.body}
    return lines


def _violations(path: Path) -> list[str]:
    relative = path.relative_to(PACKAGE.parent).as_posix()
    own = layer_of(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
    # The package's facade names every layer's public names lazily; its TYPE_CHECKING imports
    # give them their types for type checkers and are never run.
    facade_types = _type_checking_lines(path) if path == PACKAGE / "__init__.py" else set()
    bad = []
    for name, line in imports_of(path):
        if line in facade_types:
            continue
        target = layer_of(name)
        if own == "stats" and not name.startswith(STATS_MAY_IMPORT):
            bad.append(f"{relative}:{line} imports {name} (stats may import only {STATS_MAY_IMPORT})")
        elif name in ("propgrad.hookspecs", "propgrad"):
            continue  # the hook markers and __version__ are for everyone
        elif LAYERS.index(target) < LAYERS.index(own):
            bad.append(f"{relative}:{line} ({own}) imports {name} ({target}), a layer above it")
    return bad


@pytest.mark.parametrize("path", _modules(), ids=lambda p: p.relative_to(PACKAGE.parent).as_posix())
def test_imports_point_down_the_layers(path: Path) -> None:
    assert _violations(path) == []


@pytest.mark.parametrize(
    ("folder", "code", "message"),
    [
        ("stats", "from propgrad.core.forward import run_model\n", "stats may import only"),
        ("sources", "def f():\n    from propgrad.harness import cells\n", "a layer above it"),
    ],
)
def test_the_checker_sees_an_upward_import(folder: str, code: str, message: str) -> None:
    fake = PACKAGE / folder / "_layout_probe.py"
    fake.write_text(code, encoding="utf-8")
    try:
        found = _violations(fake)
    finally:
        fake.unlink()
    assert len(found) == 1 and message in found[0]


def test_layout_page_names_every_folder() -> None:
    page = (PACKAGE.parent / "docs" / "layout.md").read_text(encoding="utf-8")
    folders = sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists())
    assert [f for f in folders if f"propgrad/{f}/" not in page] == []


def test_top_level_holds_only_the_listed_modules() -> None:
    top = sorted(p.stem for p in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL
    assert top == sorted(TOP_LEVEL)


def test_every_folder_is_a_layer() -> None:
    folders = sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists())
    assert [f for f in folders if f not in LAYERS and f not in SAME_LAYER] == []


def test_layout_page_names_every_module_in_its_folder_row() -> None:
    """docs/layout.md matches the tree: each folder's row names every module of that folder."""
    page = (PACKAGE.parent / "docs" / "layout.md").read_text(encoding="utf-8")
    rows = {line.split("`")[1]: line for line in page.splitlines() if line.startswith("| `propgrad/")}
    rows["top level"] = next(line for line in page.splitlines() if line.startswith("| top level"))
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if path.name == "__init__.py" and len(relative.parts) > 1:
            continue
        row = rows["top level"] if len(relative.parts) == 1 else rows.get(f"propgrad/{relative.parts[0]}/", "")
        if f"`{path.name}`" not in row and f"{path.name}`" not in row:
            missing.append(relative.as_posix())
    assert missing == []
