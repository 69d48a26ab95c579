"""Every fenced code block of the README and ``docs/*.md`` runs (one test per block).

- ``python`` blocks of one page run in order in one fresh interpreter, in a temporary folder,
  sharing one namespace, as a reader works through the page top to bottom (a later block may
  use what an earlier one defined). Each block passes or fails on its own; a block that fails
  after an earlier one failed says so.
- ``bash`` blocks run with ``bash -e`` in a temporary folder with the venv's ``propgrad`` and
  ``python`` first on ``PATH`` and a private ``PROPGRAD_CACHE_DIR``.
- ``toml`` and ``json`` blocks must parse.
- A block right after an HTML comment ``<!-- not-run: reason -->`` is skipped with that reason
  (the set-up commands, runs that train models for minutes, a reader's own files). Keep them
  few; the skip reasons show in pytest's summary.

Pages are collected when the tests are collected, so a new page under ``docs/`` is covered
without touching this file.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
RUN_LANGUAGES = {"python": "python", "py": "python", "bash": "bash", "sh": "bash", "shell": "bash"}
PARSE_LANGUAGES = {"toml", "json"}
NOT_RUN = re.compile(r"^\s*<!--\s*not-run:\s*(?P<reason>.+?)\s*-->\s*$")
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)[^`]*$")
BLOCK_TIMEOUT = 600  # seconds for one page's python session or one bash block


@dataclass(frozen=True)
class Block:
    """One fenced block: where it is, its language and text, and the reason it is not run (if any)."""

    page: Path
    line: int  # 1-based line of the opening fence
    language: str
    code: str
    not_run: str | None

    @property
    def label(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def parse_blocks(page: Path) -> list[Block]:
    """The fenced code blocks of a Markdown page."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        language = opening["info"].lower()
        previous = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = NOT_RUN.match(previous)
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not re.match(rf"^\s*{re.escape(fence[0])}{{{len(fence)},}}\s*$", lines[j]):
            body.append(lines[j][indent:] if lines[j][:indent].strip() == "" else lines[j])
            j += 1
        blocks.append(Block(page, i + 1, language, "\n".join(body) + "\n", marker["reason"] if marker else None))
        i = j + 1
    return blocks


ALL_BLOCKS = [
    b for page in PAGES for b in parse_blocks(page) if b.language in RUN_LANGUAGES or b.language in PARSE_LANGUAGES
]


def environment(tmp: Path) -> dict[str, str]:
    """The environment of a docs run: the venv first on PATH, non-interactive plots, a private cache."""
    bin_dir = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "MPLBACKEND": "Agg",
        "PROPGRAD_CACHE_DIR": str(tmp / "cache"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
        "PYTHONPATH": "",
    }


SESSION = """\
import json, sys, time, traceback
blocks = json.load(open(sys.argv[1], encoding="utf-8"))
namespace = {"__name__": "__main__"}
results = []
for block in blocks:
    start = time.perf_counter()
    try:
        exec(compile(block["code"], block["label"], "exec"), namespace)
        results.append({"ok": True})
    except BaseException:
        results.append({"ok": False, "error": traceback.format_exc()})
    results[-1]["seconds"] = time.perf_counter() - start
    with open(sys.argv[2], "w", encoding="utf-8") as out:
        json.dump(results, out)
"""


@cache
def python_session(page: Path, tmp: Path) -> tuple[list[dict], str]:
    """Run the page's python blocks in one interpreter; per-block results and the session's stderr."""
    blocks = [b for b in ALL_BLOCKS if b.page == page and RUN_LANGUAGES.get(b.language) == "python" and not b.not_run]
    work = tmp / re.sub(r"\W", "_", str(page.relative_to(ROOT)))
    work.mkdir(parents=True)
    (work / "blocks.json").write_text(json.dumps([{"label": b.label, "code": b.code} for b in blocks]))
    (work / "session.py").write_text(SESSION)
    try:
        done = subprocess.run(
            [sys.executable, "session.py", "blocks.json", "results.json"],
            cwd=work,
            env=environment(work),
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT,
        )
        stderr = done.stderr
    except subprocess.TimeoutExpired as exc:
        stderr = f"the page's python blocks did not finish within {BLOCK_TIMEOUT} s\n{exc.stderr or ''}"
    results = json.loads((work / "results.json").read_text()) if (work / "results.json").exists() else []
    return [{"label": b.label, **r} for b, r in zip(blocks, results)], stderr


@pytest.fixture(scope="module")
def session_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("docs-code")


@pytest.mark.slow  # the blocks import torch, Captum and matplotlib and run explanations: > 10 s in all
@pytest.mark.parametrize("block", ALL_BLOCKS, ids=lambda b: f"{b.label}-{b.language}")
def test_code_block_runs(block: Block, session_dir: Path, tmp_path: Path):
    if block.not_run:
        pytest.skip(f"{block.label} not run: {block.not_run}")
    if block.language == "toml":
        tomllib.loads(block.code)
    elif block.language == "json":
        json.loads(block.code)
    elif RUN_LANGUAGES[block.language] == "bash":
        run_bash(block, tmp_path)
    else:
        check_python(block, session_dir)


def run_bash(block: Block, tmp_path: Path) -> None:
    done = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", block.code],
        cwd=tmp_path,
        env=environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT,
    )
    assert done.returncode == 0, (
        f"{block.label}: the bash block exited {done.returncode}\n{block.code}\nstdout:\n{done.stdout[-3000:]}\n"
        f"stderr:\n{done.stderr[-3000:]}"
    )


def check_python(block: Block, session_dir: Path) -> None:
    results, stderr = python_session(block.page, session_dir)
    mine = next((r for r in results if r["label"] == block.label), None)
    assert mine is not None, f"{block.label}: the page's python session stopped before this block\n{stderr[-3000:]}"
    if not mine["ok"]:
        earlier = [r["label"] for r in results[: results.index(mine)] if not r["ok"]]
        note = f" (earlier blocks of the page failed too: {', '.join(earlier)})" if earlier else ""
        pytest.fail(f"{block.label}: the python block raised{note}\n{block.code}\n{mine['error']}", pytrace=False)


# --- the parser itself, on a page whose blocks are known --------------------------------------------


@pytest.mark.parametrize("fence", ["```", "~~~~"])
def test_parse_blocks_finds_languages_markers_and_lines(tmp_path, fence):
    page = tmp_path / "page.md"
    page.write_text(
        f"# Title\n\n{fence}python\nx = 1\n{fence}\n\n<!-- not-run: trains for minutes -->\n\n"
        f"{fence}bash\npropgrad benchmark\n{fence}\n\n- item\n\n  {fence}toml\n  [a]\n  b = 1\n  {fence}\n"
        f"{fence}\nplain\n{fence}\n"
    )
    blocks = parse_blocks(page)
    assert [(b.line, b.language, b.not_run) for b in blocks] == [
        (3, "python", None),
        (9, "bash", "trains for minutes"),
        (15, "toml", None),
        (19, "", None),
    ]
    assert blocks[0].code == "x = 1\n" and blocks[2].code == "[a]\nb = 1\n"


def test_every_page_is_collected():
    collected = {b.page for b in ALL_BLOCKS}
    assert ROOT / "README.md" in collected
    assert ROOT / "docs" / "user-guide.md" in collected
