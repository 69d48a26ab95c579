"""``propgrad plugins`` and plugin loading in a fresh interpreter, as a user runs them.

Fake distributions are real ``*.dist-info`` folders (METADATA and entry_points.txt) next to their
module in a temporary folder on ``PYTHONPATH``, so ``importlib.metadata`` finds them exactly like
installed ones and nothing is installed into the environment.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import propgrad

HEAVY = ("captum", "matplotlib")


def fake_distribution(site: Path, module: str, code: str, *, dist: str = "propgrad-fake", version: str = "1.0") -> None:
    """Write ``module.py`` and a dist-info folder declaring it as the ``propgrad`` entry point ``module``."""
    (site / f"{module}.py").write_text(textwrap.dedent(code), encoding="utf-8")
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[propgrad]\n{module} = {module}\n", encoding="utf-8")


def run_python(code: str, *args: str, site: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (with ``site`` on PYTHONPATH); never in strict mode unless asked."""
    environ = {k: v for k, v in os.environ.items() if k not in ("PROPGRAD_STRICT_PLUGINS", "PYTHONWARNINGS")}
    if site is not None:
        environ["PYTHONPATH"] = os.pathsep.join([str(site), environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    environ.update({"OMP_NUM_THREADS": "1", **env})
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=environ, timeout=300, check=False
    )


CLI = "import sys; from propgrad.cli import main; sys.exit(main())"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    folder = tmp_path / "site"
    folder.mkdir()
    return folder


def heavy_modules_after(snippet: str) -> dict[str, object]:
    """Run ``snippet`` (which sets ``result``) in a fresh interpreter; returns it with the heavy modules it imported."""
    heavy = f"sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})"
    report = f"import json, sys; print(json.dumps({{'result': result, 'heavy': {heavy}}}))"
    out = run_python(f"{snippet}\n{report}")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])


def test_listing_names_imports_neither_captum_nor_matplotlib():
    found = heavy_modules_after(
        "import propgrad\nresult = sorted(propgrad.list_sources()) + sorted(propgrad.list_baselines())"
    )
    assert {"alpha_patch", "integrated_gradients"} <= set(found["result"])  # the built-ins were really loaded
    assert found["heavy"] == [], "listing the names imported Captum/matplotlib"


def test_plugins_command_imports_neither_captum_nor_matplotlib():
    snippet = (
        "import contextlib, io\nfrom propgrad.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as listing:\n    code = main(['plugins', '--json'])\n"
        "result = [code, 'occlusion' in listing.getvalue()]"
    )
    found = heavy_modules_after(snippet)
    assert found == {"result": [0, True], "heavy": []}


def test_dir_lists_the_public_names_without_importing_them():
    assert set(propgrad.__all__) <= set(dir(propgrad))
    assert {"PropertyGradient", "get_source", "permutation_test", "__version__", "hookimpl"} <= set(dir(propgrad))
    out = run_python("import sys, propgrad; d = dir(propgrad); print('list_sources' in d, 'torch' in sys.modules)")
    assert out.stdout.split() == ["True", "False"], out.stderr


def test_plugins_json_stays_valid_when_a_plugin_prints_and_another_exits(site):
    fake_distribution(site, "chatty_plugin", 'print("chatty_plugin says hello")\n', dist="propgrad-chatty")
    fake_distribution(site, "quitting_plugin", "import sys\nsys.exit('bye')\n", dist="propgrad-quit", version="0.2")
    out = run_python(CLI, "plugins", "--json", site=site)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)  # nothing but the JSON document on stdout
    failures = {f["plugin"]: f for f in data["failures"]}
    assert failures["quitting_plugin"]["distribution"] == "propgrad-quit"
    assert "sys.exit('bye')" in failures["quitting_plugin"]["error"]
    assert "implements no propgrad hook" in failures["chatty_plugin"]["error"]
    assert "chatty_plugin says hello" in out.stderr
    assert any(p["name"] == "propgrad.sources.alpha_patch" and p["failure"] is None for p in data["plugins"])


@pytest.mark.slow  # waits on subprocesses and timeouts: in the full suite, not the quick loop
def test_broken_plugin_warning_and_strict_error_are_one_line_in_the_cli(site, tmp_path):
    fake_distribution(site, "broken_plugin", "import no_such_gpu_library\n", dist="propgrad-broken", version="0.3")
    argv = ("benchmark", "--suite", "no_such_suite", "--out", str(tmp_path / "out"))
    out = run_python(CLI, *argv, site=site)
    assert out.returncode == 2
    lines = out.stderr.splitlines()
    (line,) = lines  # the answer, with a pointer to the failure (no warning before it)
    assert line.startswith("propgrad benchmark: error: unknown suite 'no_such_suite'")
    assert "plugin 'broken_plugin' (propgrad-broken 0.3)" in line and "ModuleNotFoundError" not in line
    assert line.endswith("; run `propgrad plugins` for why.")

    strict = run_python(CLI, *argv, site=site, PROPGRAD_STRICT_PLUGINS="1")
    assert strict.returncode == 2
    (line,) = strict.stderr.splitlines()  # one line, no traceback
    assert re.match(
        r"propgrad benchmark: error: \d+ propgrad plugin\(s\) failed to load \(PROPGRAD_STRICT_PLUGINS", line
    )
    assert (
        "plugin 'broken_plugin' (propgrad-broken 0.3): ModuleNotFoundError: No module named 'no_such_gpu_library'"
        in line
    )

    debug = run_python(CLI, "--debug", *argv, site=site, PROPGRAD_STRICT_PLUGINS="1")
    assert debug.returncode == 2
    assert "Traceback (most recent call last):" in debug.stderr and "import no_such_gpu_library" in debug.stderr


@pytest.mark.slow  # waits on subprocesses and timeouts: in the full suite, not the quick loop
def test_an_entry_point_line_without_equals_is_named_and_skipped(site):
    """importlib.metadata cannot parse such a file; torch's import read it and the process crashed (exit -11)."""
    fake_distribution(site, "next_plugin", "import no_such_module_either\n", dist="propgrad-next", version="1.1")
    info = site / "propgrad_bad-2.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: propgrad-bad\nVersion: 2.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text("[propgrad]\nimport torch\n", encoding="utf-8")
    listing = run_python(CLI, "plugins", site=site)
    assert listing.returncode == 0, (listing.returncode, listing.stderr[-2000:])
    assert "import torch  [propgrad-bad 2.0]" in listing.stdout
    assert re.search(r"line 2 of \S+entry_points.txt in group \[propgrad\], 'import torch', has no '='", listing.stdout)
    assert "next_plugin  [propgrad-next 1.1]" in listing.stdout  # the next distribution is still loaded
    assert "propgrad.sources.alpha_patch" in listing.stdout and "Pair.__new__" not in listing.stdout + listing.stderr

    explain = run_python(CLI, "explain", "--permutations", "10", "--size", "16", "--no-progress", site=site)
    assert explain.returncode == 0, explain.stderr[-2000:]
    assert "alpha_patch" in explain.stdout and "Pair.__new__" not in explain.stderr
    assert "propgrad-bad 2.0: line 2" in explain.stderr  # the warning names the distribution and the line


def test_an_entry_point_line_without_equals_in_another_group_does_not_break_torch(site):
    info = site / "other_tool-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: other-tool\nVersion: 0.1\n", encoding="utf-8")
    (info / "entry_points.txt").write_text("[console_scripts]\nother-tool\n", encoding="utf-8")
    out = run_python(CLI, "plugins", "--json", site=site)
    assert out.returncode == 0, (out.returncode, out.stderr[-2000:])
    data = json.loads(out.stdout)
    assert not any(f["distribution"] == "other-tool" for f in data["failures"])  # not a propgrad plugin
    assert any(p["name"] == "propgrad.sources.alpha_patch" and p["failure"] is None for p in data["plugins"])
    assert "propgrad: warning: cannot read the entry points" in out.stderr
    assert "other-tool 0.1: line 2" in out.stderr and "[console_scripts]" in out.stderr


@pytest.mark.slow  # waits on subprocesses and timeouts: in the full suite, not the quick loop
def test_help_does_not_load_plugins_even_one_that_hangs(site):
    fake_distribution(site, "hanging_plugin", "import time\ntime.sleep(60)\n", dist="propgrad-hang")
    environ = {**os.environ, "PYTHONPATH": str(site)}
    for argv in (["--help"], ["explain", "--help"], ["benchmark", "--help"], ["plugins", "--help"], ["--version"]):
        out = subprocess.run(  # raises TimeoutExpired if the plugin was imported
            [sys.executable, "-c", CLI, *argv], capture_output=True, text=True, timeout=20, env=environ, check=False
        )
        assert out.returncode == 0 and out.stdout, (argv, out.stderr)


@pytest.mark.slow  # waits on subprocesses and timeouts: in the full suite, not the quick loop
def test_a_slow_plugin_is_named_while_it_loads(site):
    fake_distribution(site, "slow_plugin", "import time\ntime.sleep(3)\n", dist="propgrad-slow", version="0.4")
    out = run_python(CLI, "plugins", site=site)
    assert out.returncode == 0, out.stderr
    assert "propgrad: still loading plugin 'slow_plugin' (propgrad-slow 0.4) after 2 s" in out.stderr
    assert "uninstall propgrad-slow" in out.stderr
    assert re.search(r"plugin 'slow_plugin' \(propgrad-slow 0.4\) took [3-9]\.\d s to load", out.stderr)


def test_an_unknown_source_is_answered_first_with_a_one_line_pointer_to_failures(site):
    for name in ("broken_one", "broken_two"):
        fake_distribution(site, name, f"import no_such_gpu_library_{name}\n", dist=f"propgrad-{name}", version="0.3")
    out = run_python(CLI, "explain", "--source", "nosuch", "--no-progress", site=site)
    assert out.returncode == 2
    (line,) = out.stderr.splitlines()  # no warning listing the failures before the answer
    assert line.startswith("propgrad explain: error: unknown source 'nosuch'. Available sources: alpha_patch")
    assert "plugin 'broken_one' (propgrad-broken_one 0.3), plugin 'broken_two'" in line
    assert line.endswith("run `propgrad plugins` for why.") and "ModuleNotFoundError" not in line
