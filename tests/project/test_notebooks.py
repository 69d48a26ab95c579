"""The notebooks in ``docs/`` run from top to bottom in a real kernel and are stored without outputs.

Every ``docs/*.ipynb`` is executed by ``nbclient`` in an ``ipykernel`` kernel of this interpreter
(a kernel spec installed into a temporary folder that ``JUPYTER_PATH`` puts first, so no other
installed ``python3`` kernel is used; its connection files and IPython profile go there too),
offline: no cell may raise, and every cell tagged ``html-view`` must display propgrad's HTML view
(``text/html`` in a ``<div class="propgrad-view">``, with no script); the quick start shows a
verdict card. Every notebook git knows of (tracked, or new and not ignored) is stored with its
outputs stripped: no outputs, no execution counts.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

nbformat = pytest.importorskip("nbformat", reason="the notebook extra: pip install propgrad[notebook]")
nbclient = pytest.importorskip("nbclient", reason="the notebook extra: pip install propgrad[notebook]")
pytest.importorskip("ipykernel", reason="the notebook extra: pip install propgrad[notebook]")

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
NOTEBOOKS = sorted(DOCS.glob("*.ipynb"))
KERNEL = "propgrad-tests"
VIEW = '<div class="propgrad-view">'
TIMEOUT = 600
"""Seconds a cell may take (the quick start's take a few)."""


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A kernel spec of this interpreter, in a folder of its own put first on ``JUPYTER_PATH``."""
    from ipykernel.kernelspec import install

    prefix = tmp_path_factory.mktemp("kernel")
    install(kernel_name=KERNEL, prefix=str(prefix), display_name="propgrad tests")
    mp = pytest.MonkeyPatch()
    mp.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
    mp.setenv("JUPYTER_RUNTIME_DIR", str(prefix / "runtime"))  # connection files, and the kernel's
    mp.setenv("IPYTHONDIR", str(prefix / "ipython"))  # profile, stay out of the home folder
    yield KERNEL
    mp.undo()


def _html_outputs(cell: Any) -> list[str]:
    return [
        "".join(output["data"]["text/html"])
        for output in cell.get("outputs", [])
        if output.get("output_type") in ("display_data", "execute_result") and "text/html" in output.get("data", {})
    ]


def _notebooks_git_knows() -> list[Path]:
    """Tracked notebooks and new ones git would add (not ignored); every ``docs`` notebook outside a checkout."""
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        return NOTEBOOKS
    listed = subprocess.run(
        [git, "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", "*.ipynb"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return sorted({ROOT / name for name in listed.split("\0") if name and (ROOT / name).exists()})


def test_the_quick_start_notebook_exists() -> None:
    assert DOCS / "quickstart.ipynb" in NOTEBOOKS


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_a_notebook_runs_in_a_real_kernel_and_shows_its_html_views(path: Path, kernel: str) -> None:
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook, kernel_name=kernel, timeout=TIMEOUT, resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()  # raises CellExecutionError, naming the cell, when a cell raises
    errors = [o for cell in notebook.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
    tagged = [cell for cell in notebook.cells if "html-view" in cell.get("metadata", {}).get("tags", [])]
    assert tagged, f"{path.name} has no cell tagged html-view"
    for cell in tagged:
        views = [markup for markup in _html_outputs(cell) if markup.startswith(VIEW)]
        assert views, f"no propgrad HTML view from:\n{cell.source}"
        assert all("<script" not in markup for markup in views)
    if path.name == "quickstart.ipynb":
        shown = [markup for cell in tagged for markup in _html_outputs(cell)]
        assert any('<div class="card verdict">' in markup for markup in shown)
        assert any("data:image/png;base64," in markup for markup in shown)


def test_the_kernel_runs_this_interpreter(kernel: str) -> None:
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec(kernel)
    assert Path(spec.argv[0]).resolve() == Path(sys.executable).resolve()


@pytest.mark.parametrize("path", _notebooks_git_knows(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_a_notebook_in_git_is_stored_without_outputs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    kept = [
        k
        for k, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)
    ]
    assert kept == [], f"{path.name}: cells {kept} keep outputs; clear them (Clear Outputs of All Cells) and save"
