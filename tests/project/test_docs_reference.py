"""The generated reference pages (``docs/api.md``, ``docs/cli.md``) match the code.

When one of these fails, run ``python docs/generate_reference.py`` and commit the pages.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

import propgrad

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "docs" / "generate_reference.py"


def load_generator():
    spec = importlib.util.spec_from_file_location("generate_reference", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


generator = load_generator()


@pytest.mark.parametrize("page", sorted(generator.PAGES))
def test_committed_page_is_up_to_date(page):
    committed = (ROOT / "docs" / page).read_text(encoding="utf-8")
    assert committed == generator.PAGES[page](), f"docs/{page} is stale: run python docs/generate_reference.py"


def test_api_reference_documents_every_public_name():
    api = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    for name in propgrad._EXPORTS:
        assert f"### `propgrad.{name}`" in api, name
    for member in ("PropertyGradient.attribute", "Explanation.save", "InterventionSource.generate"):
        assert f"#### `{member}`" in api, member


def test_cli_reference_holds_every_command_and_option():
    from propgrad.cli import COMMANDS, build_parser

    cli = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for command in COMMANDS:
        assert f"## `propgrad {command}`" in cli, command
        for action in sub.choices[command]._actions:
            for option in action.option_strings:
                assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", cli), f"{command} {option}"


def test_check_mode_reports_a_stale_page(tmp_path, monkeypatch):
    """``--check`` exits 1 for a page that differs from the code, 0 once it is rewritten."""
    monkeypatch.setattr(generator, "DOCS", tmp_path)
    (tmp_path / "api.md").write_text("# API reference\n\nstale\n")
    (tmp_path / "cli.md").write_text(generator.render_cli())
    assert generator.stale_pages() == ["api.md"]
    assert generator.main(["--check"]) == 1
    assert generator.main([]) == 0
    assert generator.stale_pages() == []
    assert generator.main(["--check"]) == 0


def test_docstring_sections_become_markdown_lists():
    doc = """Do a thing with ``x``.

    Uses :class:`~propgrad.explain.explainer.PropertyGradient`.

    Args:
        x: The input,
            over two lines.
        y (int): A count.

    Returns:
        The result.

    Raises:
        ValueError: ``x`` is bad.
    """
    lines = generator.render_docstring(doc)
    assert lines[0] == "Do a thing with `x`."
    assert "Uses `propgrad.explain.explainer.PropertyGradient`." in lines
    assert "- `x`: The input, over two lines." in lines
    assert "- `y` (int): A count." in lines
    assert "**Returns:**" in lines and "The result." in lines
    assert "- `ValueError`: `x` is bad." in lines


def test_signature_marks_keyword_only_and_positional_only_parameters():
    def f(a: int, /, b: str = "b", *, c: float = 1.0) -> None:
        """Doc."""

    assert generator.signature(f, "f") == "f(a: int, /, b: str = 'b', *, c: float = 1.0) -> None"
