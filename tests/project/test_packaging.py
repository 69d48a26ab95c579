"""Packaging: type information for users, the torch range, the licence and declared dependencies.

- ``propgrad/__init__.py`` imports every lazily exported name under ``TYPE_CHECKING``, so mypy sees
  ``propgrad.PropertyGradient``; a three-line user script is type-checked against it.
- The core and every first-party plugin ask for a torch *range* (installable beside another
  torch); the README's set-up and ``.ci/run`` install the local CPU wheel ``torch==2.13.0`` first.
- Every third-party module imported by propgrad, by a plugin or by the core's tests is declared
  in the right ``pyproject.toml``.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from importlib import import_module
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

import propgrad

ROOT = Path(__file__).resolve().parents[2]
PLUGIN_DIRS = sorted(p.parent for p in (ROOT / "plugins").glob("*/pyproject.toml"))
#: The build the set-up installs (the local CPU wheel); every declared torch range must admit it.
SETUP_TORCH = "2.13.0"


def read_pyproject(folder: Path) -> dict:
    return tomllib.loads((folder / "pyproject.toml").read_text())


def requirements(folder: Path, *extras: str) -> list[Requirement]:
    """The requirements ``folder``'s pyproject declares: its dependencies plus those of ``extras``."""
    project = read_pyproject(folder)["project"]
    lines = list(project.get("dependencies", []))
    for extra in extras:
        lines += project.get("optional-dependencies", {}).get(extra, [])
    return [Requirement(line) for line in lines]


def feature_extras(folder: Path) -> tuple[str, ...]:
    """The optional-dependency extras other than ``test`` (``pip install 'propgrad[clip]'`` ...)."""
    return tuple(e for e in read_pyproject(folder)["project"].get("optional-dependencies", {}) if e != "test")


# --- type information -------------------------------------------------------------------------


def type_checking_imports(init: Path) -> dict[str, tuple[str, str | None]]:
    """``{name: (module, alias)}`` of the imports under ``if TYPE_CHECKING:`` in ``init``."""
    found: dict[str, tuple[str, str | None]] = {}
    for node in ast.parse(init.read_text()).body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for statement in node.body:
                assert isinstance(statement, ast.ImportFrom), f"line {statement.lineno}: only imports belong here"
                for alias in statement.names:
                    found[alias.name] = (str(statement.module), alias.asname)
    return found


def test_every_lazy_export_is_imported_for_type_checkers():
    imported = type_checking_imports(ROOT / "propgrad" / "__init__.py")
    exports = propgrad._EXPORTS
    missing = sorted(set(exports) - set(imported))
    extra = sorted(set(imported) - set(exports))
    assert not missing, f"add to the TYPE_CHECKING block of propgrad/__init__.py: {missing}"
    assert not extra, f"imported under TYPE_CHECKING but not in _EXPORTS: {extra}"
    for name, (module, alias) in imported.items():
        assert module == exports[name], f"{name}: TYPE_CHECKING imports it from {module}, _EXPORTS says {exports[name]}"
        assert alias == name, f"{name}: import it as 'from {module} import {name} as {name}' (an explicit re-export)"


def test_lazy_exports_resolve_to_the_objects_type_checkers_see():
    for name, module in propgrad._EXPORTS.items():
        assert getattr(propgrad, name) is getattr(import_module(module), name), name


USER_SCRIPT = """\
import propgrad

explainer = propgrad.PropertyGradient(lambda images: images)
reveal_type(explainer)
reveal_type(propgrad.permutation_test)
explainer.attribute(None, source="alpha_patch", n_permutations="many")
propgrad.PropertyGradiant
"""

# Third-party packages are skipped (their types become Any) so mypy checks propgrad's own
# annotations in seconds instead of analysing all of torch.
MYPY_CONFIG = """\
[mypy]
follow_imports = silent
cache_dir = {cache}

[mypy-torch.*,numpy.*,scipy.*,matplotlib.*,captum.*,skimage.*,PIL.*,pluggy.*,filelock.*,tqdm.*,sklearn.*,quantus.*]
follow_imports = skip
"""


@pytest.mark.slow  # mypy analyses propgrad's modules: seconds to tens of seconds
def test_mypy_sees_the_exported_types(tmp_path):
    """mypy finds propgrad through its py.typed marker and checks a user's script against it."""
    script = tmp_path / "user.py"
    script.write_text(USER_SCRIPT)
    (tmp_path / "mypy.ini").write_text(MYPY_CONFIG.format(cache=tmp_path / "cache"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # how an installed, non-editable propgrad is found
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", "mypy.ini", "--python-executable", sys.executable, "user.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = result.stdout + result.stderr
    assert "py.typed" not in out, out  # "missing library stubs or py.typed marker"
    assert 'user.py:4: note: Revealed type is "propgrad.explain.explainer.PropertyGradient"' in out, out
    assert re.search(
        r'user.py:5: note: Revealed type is "def \(outputs: .*propgrad\.stats\.permutation\.Permutation', out
    ), out
    assert re.search(r'user.py:6: error: Argument "n_permutations" to "attribute" .* "str"; expected "int"', out), out
    assert 'user.py:7: error: Module has no attribute "PropertyGradiant"' in out, out
    assert result.returncode == 1, out


def test_py_typed_is_package_data():
    assert (ROOT / "propgrad" / "py.typed").is_file()
    package_data = read_pyproject(ROOT)["tool"]["setuptools"]["package-data"]
    assert "py.typed" in package_data["propgrad"]


@pytest.mark.slow
def test_wheel_ships_py_typed_licence_and_the_torch_range(tmp_path):
    """Build the wheel from a copy of the sources (the checkout stays clean) and read what it holds."""
    src = tmp_path / "src"
    shutil.copytree(ROOT / "propgrad", src / "propgrad", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(src),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = tmp_path.glob("propgrad-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "propgrad/py.typed" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE") for n in names), names
    torch_lines = [line for line in metadata.splitlines() if re.match(r"Requires-Dist: torch\b", line)]
    assert len(torch_lines) == 1 and "==" not in torch_lines[0], torch_lines


# --- torch: a range in the metadata, the CPU wheel in the set-up -------------------------------


@pytest.mark.parametrize("folder", [ROOT, *PLUGIN_DIRS], ids=lambda p: p.name)
def test_torch_is_a_range_that_admits_the_cpu_wheel(folder):
    torch = [r for r in requirements(folder) if canonicalize_name(r.name) == "torch"]
    assert len(torch) == 1, f"{folder.name}/pyproject.toml should declare torch once, got {torch}"
    spec = torch[0].specifier
    assert not any(s.operator in ("==", "===") for s in spec), (
        f"{folder.name}/pyproject.toml pins {torch[0]}: declare a range (e.g. torch>=2.3) so it installs beside "
        "another torch; the set-up installs torch==2.13.0 first"
    )
    assert spec.contains(SETUP_TORCH), f"{torch[0]} does not admit the set-up's torch {SETUP_TORCH}"
    assert not spec.contains("2.2.0"), f"{torch[0]} admits torch 2.2, which predates NumPy 2 support"


def pip_install_commands(text: str) -> list[str]:
    """The ``pip install`` commands in shell text (continuation lines joined)."""
    joined = text.replace("\\\n", " ")
    return [m.group(0) for m in re.finditer(r"pip install[^\n&;|]*", joined)]


def installs_cpu_torch_with_the_project(command: str) -> bool:
    words = command.split()
    return f"torch=={SETUP_TORCH}" in words and ('".[test]"' in words or ".[test]" in words)


def test_readme_setup_installs_the_cpu_wheel_first():
    readme = (ROOT / "README.md").read_text()
    setup = readme.split("## Set-up", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    first = pip_install_commands(setup)[0]
    assert installs_cpu_torch_with_the_project(first), first
    assert first.split().index(f"torch=={SETUP_TORCH}") < first.split().index("-e"), first


def test_ci_installs_the_cpu_wheel_first():
    commands = pip_install_commands((ROOT / ".ci" / "run").read_text())
    project = [c for c in commands if ".[test]" in c]
    assert project and all(installs_cpu_torch_with_the_project(c) for c in project), commands


def test_pip_command_parser():
    assert installs_cpu_torch_with_the_project('pip install torch==2.13.0 -e ".[test]" -e plugins/a')
    assert not installs_cpu_torch_with_the_project('pip install -e ".[test]" -e plugins/a')
    assert pip_install_commands('pip install --quiet torch==2.13.0 \\\n    -e ".[test]" && propgrad') == [
        'pip install --quiet torch==2.13.0      -e ".[test]" '
    ]


# --- licence and changelog ---------------------------------------------------------------------


@pytest.mark.parametrize("folder", [ROOT, *PLUGIN_DIRS], ids=lambda p: p.name)
def test_mit_licence_matches_pyproject(folder):
    licence = folder / "LICENSE"
    assert licence.is_file(), f"{folder.name} has no LICENSE file"
    text = licence.read_text()
    assert text.startswith("MIT License") and "Permission is hereby granted, free of charge" in text
    declared = read_pyproject(folder)["project"]["license"]
    assert (declared.get("text") if isinstance(declared, dict) else declared) == "MIT"


def test_changelog_has_the_current_version():
    changelog = (ROOT / "CHANGELOG.md").read_text()
    version = read_pyproject(ROOT)["project"]["version"]
    assert version == propgrad.__version__
    assert re.search(rf"^## \[{re.escape(version)}\]", changelog, re.MULTILINE), f"CHANGELOG.md has no ## [{version}]"


# --- every imported third-party module is declared ----------------------------------------------


def imported_modules(folder: Path) -> dict[str, str]:
    """Top-level third-party modules imported anywhere under ``folder``: ``{module: 'file:line'}``."""
    found: dict[str, str] = {}
    for path in sorted(folder.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "__future__":
                    found.setdefault(top, f"{os.path.relpath(path, ROOT)}:{node.lineno}")
    return found


def undeclared(folder: Path, code: list[Path], extras: tuple[str, ...], also_allowed: set[str]) -> list[str]:
    """Imports under ``code`` whose distribution is not among ``folder``'s declared requirements."""
    declared = {canonicalize_name(r.name) for r in requirements(folder, *extras)} | also_allowed
    declared.add(canonicalize_name(read_pyproject(folder)["project"]["name"]))
    distributions = packages_distributions()
    problems = []
    for part in code:
        for module, where in imported_modules(part).items():
            if module == part.name or (part / module).exists() or (part / f"{module}.py").exists():
                continue  # the folder's own modules (tests importing tests.helpers)
            owners = {canonicalize_name(d) for d in distributions.get(module, [])}
            if not owners:
                problems.append(f"{module} (imported at {where}) is not installed, so it cannot be declared")
            elif not owners & declared:
                problems.append(f"{module} (imported at {where}) comes from {sorted(owners)}, not declared")
    return problems


def package_folders(folder: Path) -> list[Path]:
    """Where a distribution's code lives: ``src/`` or the top-level package folders."""
    if (folder / "src").is_dir():
        return [folder / "src"]
    return [p for p in folder.iterdir() if (p / "__init__.py").is_file() and p.name != "tests"]


FIRST_PARTY = {canonicalize_name(read_pyproject(p)["project"]["name"]) for p in PLUGIN_DIRS}


@pytest.mark.parametrize("folder", [ROOT, *PLUGIN_DIRS], ids=lambda p: p.name)
def test_imported_third_party_modules_are_declared(folder):
    """In the dependencies, or in an extra for an optional import (the ``test`` extra does not count)."""
    assert not undeclared(folder, package_folders(folder), feature_extras(folder), set())


def test_the_core_tests_imports_are_declared_in_the_test_extra():
    assert not undeclared(ROOT, [ROOT / "tests"], ("test", *feature_extras(ROOT)), FIRST_PARTY)


def test_the_import_scan_finds_an_undeclared_import(tmp_path):
    """The check above fails for a module that is imported but not declared (here: Pillow)."""
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "demo"\ndependencies = ["numpy"]\n')
    package = tmp_path / "demo"
    package.mkdir()
    (package / "__init__.py").write_text("import numpy\nimport json\n\ndef f():\n    from PIL import Image\n")
    problems = undeclared(tmp_path, [tmp_path], (), set())
    assert len(problems) == 1 and problems[0].startswith("PIL (imported at") and "pillow" in problems[0], problems


def test_declared_versions_are_parseable_and_not_exact_pins_of_shared_libraries():
    """A user's environment decides numpy, scipy ... : lower bounds only, as for torch."""
    for folder in [ROOT, *PLUGIN_DIRS]:
        for requirement in requirements(folder):
            for spec in requirement.specifier:
                Version(spec.version)  # a real version, not a typo
                assert spec.operator != "==", f"{folder.name}: {requirement} is an exact pin"
