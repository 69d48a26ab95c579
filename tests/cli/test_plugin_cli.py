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


def test_broken_plugin_warning_and_strict_error_are_one_line_in_the_cli(site, tmp_path):
    fake_distribution(site, "broken_plugin", "import no_such_gpu_library\n", dist="propgrad-broken", version="0.3")
    argv = ("benchmark", "--suite", "no_such_suite", "--out", str(tmp_path / "out"))
    out = run_python(CLI, *argv, site=site)
    assert out.returncode == 2
    lines = out.stderr.splitlines()
    assert len(lines) == 2, out.stderr
    assert re.match(r"propgrad: warning: \d+ propgrad plugin\(s\) failed to load", lines[0]), lines[0]
    assert "plugin 'broken_plugin' (propgrad-broken 0.3): ModuleNotFoundError" in lines[0]
    assert lines[1].startswith("propgrad benchmark: error: unknown suite 'no_such_suite'")

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
