"""``propgrad benchmark`` end to end with fake plugins: SIGTERM, resuming after a new plugin, --threads.

The fake plugins are modules written to a temporary folder and loaded as built-in plugins
(``propgrad.plugins.DEFAULT_PLUGINS``), in this process or in a subprocess, so the command runs
exactly as a user's would, on a suite that takes a fraction of a second.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from propgrad.harness.pipeline import STORE_NAME
from propgrad.harness.store import CellStore, read_header

PLUGIN = textwrap.dedent(
    """
    import os
    import time

    import torch
    from torch import nn

    import propgrad
    from propgrad.baselines.base import AttributionBaseline
    from propgrad.sources.base import InterventionSequence
    from propgrad.suites.base import BenchmarkSuite

    GREYS = [0.9, 0.7, 0.6, 0.4, 0.3, 0.1]


    class Brightness(nn.Module):
        def __init__(self, cut):
            super().__init__()
            self.cut = cut
            self.scale = nn.Parameter(torch.tensor(10.0))

        def forward(self, x):
            z = self.scale * (x.mean(dim=(1, 2, 3)) - self.cut)
            return torch.stack([z, -z], dim=1)


    class GreySuite(BenchmarkSuite):
        name = "cli_grey"
        class_names = ("bright", "dark")
        interventions = ("darken",)

        def settings(self):
            return {"greys": GREYS}

        def models(self):
            return {"cut50": Brightness(0.5).eval(), "cut35": Brightness(0.35).eval()}

        def test_set(self):
            g = torch.tensor(GREYS)
            return g[:, None, None, None].expand(-1, 3, 4, 4).clone(), (g < 0.5).long()

        def intervene(self, intervention, index):
            images = self.test_set()[0][index][None] * torch.linspace(1.0, 0.4, 6)[:, None, None, None]
            return InterventionSequence(images, torch.arange(6, dtype=torch.float32), "darkness", "step")

        def accuracy_table(self):
            return {"cut50": {"test": 1.0}, "cut35": {"test": 1.0}}

        def images_per_class(self):
            return 3


    class SlowMap(AttributionBaseline):
        name = "slow_map"

        def attribute(self, model, images, target):
            if os.environ.get("FAKE_SLOW"):
                time.sleep(0.4)
            return images.clone()


    @propgrad.hookimpl
    def register_suites(register):
        register(GreySuite)


    @propgrad.hookimpl
    def register_baselines(register):
        register(SlowMap)
    """
)

NEW_PLUGIN = textwrap.dedent(
    """
    import propgrad
    from propgrad.baselines.base import AttributionBaseline


    class NewMap(AttributionBaseline):
        name = "new_map"

        def attribute(self, model, images, target):
            return images * 2


    @propgrad.hookimpl
    def register_baselines(register):
        register(NewMap)
    """
)

RUNNER = textwrap.dedent(
    """
    import sys

    sys.path.insert(0, sys.argv[1])
    import propgrad.plugins

    propgrad.plugins.DEFAULT_PLUGINS = ("fake_cli_plugin",)
    from propgrad.cli import main

    sys.exit(main(sys.argv[2:]))
    """
)

ARGS = ["benchmark", "--suite", "cli_grey", "--permutations", "50", "--no-progress", "--threads", "1"]


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "fake_cli_plugin.py").write_text(PLUGIN)
    (folder / "fake_cli_plugin_new.py").write_text(NEW_PLUGIN)
    (folder / "run_cli.py").write_text(RUNNER)
    return folder


@pytest.fixture
def plugins(plugin_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """Load the fake plugins in this process; returns a function that sets the installed ones."""
    import propgrad.plugins

    monkeypatch.syspath_prepend(str(plugin_dir))

    def install(*modules: str) -> None:
        monkeypatch.setattr(propgrad.plugins, "DEFAULT_PLUGINS", modules)
        propgrad.plugins.reset_plugins()

    install("fake_cli_plugin")
    yield install
    propgrad.plugins.reset_plugins()


def cells_in(path: Path) -> CellStore:
    header = read_header(path)
    assert header is not None
    return CellStore(path, header["settings"])


@pytest.mark.slow  # waits on subprocesses and timeouts: in the full suite, not the quick loop
def test_sigterm_stops_the_run_like_ctrl_c_and_keeps_finished_cells(plugin_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    command = [sys.executable, str(plugin_dir / "run_cli.py"), str(plugin_dir), *ARGS, "--out", str(out)]
    env = {**os.environ, "FAKE_SLOW": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    store = out / STORE_NAME
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if store.exists() and '"kind": "baseline"' in store.read_text():
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted; finished work is kept and a rerun continues from there" in stderr
    assert "Traceback" not in stderr
    kept = cells_in(store)
    n_kept = len(kept)
    assert kept.records("baseline") and n_kept < 24  # some baseline cells, not all of them
    assert kept.segments() and kept.segments()[-1]["interrupted"] is True  # the session's timing is kept
    rerun = subprocess.run(command, env={**env, "FAKE_SLOW": ""}, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert f"resuming: {n_kept} finished cells found" in rerun.stdout
    results = json.loads((out / "results.json").read_text())
    assert results["resume"]["cells_computed"] == 24 - n_kept
    assert results["timing"]["sessions"] == 2 and results["versions"]["torch_threads"] == 1


def test_sigterm_handler_is_restored() -> None:
    from propgrad.cli.benchmark import Terminated, sigterm_interrupts

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), sigterm_interrupts():
        assert signal.getsignal(signal.SIGTERM) is not before
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    assert signal.getsignal(signal.SIGTERM) is before
    assert issubclass(Terminated, KeyboardInterrupt)


@pytest.mark.slow  # waits on subprocesses and timeouts: in the full suite, not the quick loop
def test_a_new_baseline_plugin_does_not_block_resuming(
    plugins, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from propgrad.cli import main

    out = ["--out", str(tmp_path / "out")]
    assert main([*ARGS, *out]) == 0
    capsys.readouterr()
    plugins("fake_cli_plugin", "fake_cli_plugin_new")  # a new baseline plugin is installed
    assert main([*ARGS, *out]) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "with the baselines it was started with: slow_map; not added: new_map" in printed
    assert "resuming: 24 finished cells" in printed
    assert main([*ARGS, *out, "--baselines", "slow_map", "new_map"]) == 2  # explicit: the settings differ
    assert "baselines" in capsys.readouterr().err
    assert main([*ARGS, *out, "--baselines", "slow_map", "new_map", "--fresh"]) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["settings"]["baselines"] == ["slow_map", "new_map"]


def test_threads_option_sets_and_restores_torch_threads(plugins, tmp_path: Path) -> None:
    import torch

    from propgrad.cli import main

    before = torch.get_num_threads()
    assert main([*ARGS[:-1], "2", "--out", str(tmp_path / "out")]) == 0
    assert json.loads((tmp_path / "out" / "results.json").read_text())["versions"]["torch_threads"] == 2
    assert torch.get_num_threads() == before
    assert main([*ARGS[:-1], "0", "--out", str(tmp_path / "out")]) == 2
