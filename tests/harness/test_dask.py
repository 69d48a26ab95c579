"""The benchmark grid on an executor (Dask distributed): the same records as the in-process run, faults handled.

Worker processes import what they run by module path, so the suites and baselines here are those of
``tests.fakes``, and a slow baseline lives in a module written to a folder put on ``sys.path``
before the cluster starts (a module added after is missing on the workers: the missing-plugin test).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import pytest

import propgrad.harness.runner as runner_module
from propgrad.harness import run_benchmark
from propgrad.harness.executors import UnitsFailedError, WorkerMismatchError
from propgrad.harness.pipeline import STORE_NAME
from propgrad.harness.store import META_KINDS
from tests.fakes import DarkeningSuite, ImageMap, darkening_settings

distributed = pytest.importorskip("distributed")

SLOW_MODULE = '''
import time
from tests.fakes import ImageMap


class SlowMap(ImageMap):
    """ImageMap that takes a while per call, so a run lasts long enough to be disturbed."""

    name = "slow_map"

    def attribute(self, model, images, target):
        time.sleep({sleep})
        return super().attribute(model, images, target)


def other_version():
    """Make this process report another propgrad version (run on a worker)."""
    import importlib.metadata as md

    real = md.version
    md.version = lambda name: "9.9.9" if name == "propgrad" else real(name)
    return True
'''


def settings(**overrides: Any) -> Any:
    """The fakes' small settings (permutation tests seeded per suite and intervention)."""
    return darkening_settings(**overrides)


def run(out: Path, executor: Any = None, baseline: Any = None, **kwargs: Any) -> dict[str, Any]:
    base = baseline if baseline is not None else ImageMap()
    return run_benchmark(
        settings(baselines=(getattr(base, "name", "image_map"),)),
        out,
        suites={"darkening": DarkeningSuite()},
        baselines={getattr(base, "name", "image_map"): base},
        plots=False,
        executor=executor,
        **kwargs,
    )


def cells(out: Path) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in (out / STORE_NAME).read_text().splitlines()[1:]]
    return [r for r in lines if r["kind"] not in META_KINDS]


@pytest.fixture()
def small_blocks() -> Iterator[None]:
    """Blocks of 2 images on the driver (which plans the units): six units per run instead of one."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runner_module, "ATTRIBUTION_BLOCK", 2)
        yield


@pytest.fixture(scope="module")
def slow_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A module with a slow baseline, importable here and by worker processes started after this."""
    folder = tmp_path_factory.mktemp("slowmod")
    name = f"slowmaps_{uuid.uuid4().hex[:8]}"
    (folder / f"{name}.py").write_text(SLOW_MODULE.replace("{sleep}", "0.15"))
    sys.path.insert(0, str(folder))
    yield name
    sys.path.remove(str(folder))


def test_local_run_imports_no_dask(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from propgrad.cli import build_parser
        from propgrad.cli.benchmark import chosen_executor, executor_options
        from propgrad.harness import run_benchmark
        from tests.fakes import DarkeningSuite, ImageMap, darkening_settings
        args = build_parser().parse_args(["benchmark", "--suite", "fur"])
        with chosen_executor(executor_options(args), None) as executor:
            assert executor is None
            run_benchmark(darkening_settings(), Path({str(tmp_path)!r}), suites={{"darkening": DarkeningSuite()}},
                          baselines={{"image_map": ImageMap()}}, plots=False, executor=executor)
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("dask", "distributed")))
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / STORE_NAME).exists()


def test_dask_in_process_cluster_and_any_executor_give_the_local_records(tmp_path: Path, small_blocks: None) -> None:
    local = run(tmp_path / "local")
    with distributed.LocalCluster(processes=False, n_workers=2, threads_per_worker=1, dashboard_address=":0") as c:
        with distributed.Client(c) as client:
            lines: list[str] = []
            dask = run(tmp_path / "dask", client.get_executor(pure=False), echo=lines.append)
    assert any("dashboard" in line and "2 workers checked" in line for line in lines)
    with ThreadPoolExecutor(3) as pool:  # any concurrent.futures executor: the suite travels with each unit
        threads = run(tmp_path / "threads", pool, device="cpu")  # device-agnostic: the models moved to the CPU
    assert len(local["records"]) == 2 * 2 * 12  # a property and a baseline cell per (model, image)
    assert dask["records"] == local["records"] == threads["records"]
    assert dask["resume"]["cells_computed"] == local["resume"]["cells_computed"]
    # the driver stored every unit's cells once
    keys = [json.dumps(r["key"]) for r in cells(tmp_path / "dask")]
    assert len(keys) == len(set(keys)) == 48


@pytest.mark.slow
@pytest.mark.parametrize("n_workers", [1, 2, 4])
def test_worker_processes_give_the_local_records(tmp_path: Path, small_blocks: None, n_workers: int) -> None:
    local = run(tmp_path / "local")
    with (
        distributed.LocalCluster(
            processes=True, n_workers=n_workers, threads_per_worker=1, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        dask = run(tmp_path / "dask", client.get_executor(pure=False))
    assert dask["records"] == local["records"]
    assert not any("worker" in json.dumps(r) for r in dask["records"])


def test_failing_unit_is_reported_and_the_rest_of_the_grid_is_stored(tmp_path: Path, small_blocks: None) -> None:
    class Broken(DarkeningSuite):
        failing = True

        def intervene(self, intervention: str, index: int) -> Any:
            if index == 5 and self.failing:
                raise RuntimeError("no sequence for image 5")
            return super().intervene(intervention, index)

    with ThreadPoolExecutor(2) as pool:
        with pytest.raises(UnitsFailedError, match=r"1 unit\(s\) failed.*images 4-5.*no sequence for image 5"):
            run_benchmark(
                settings(),
                tmp_path,
                suites={"darkening": Broken()},
                baselines={"image_map": ImageMap()},
                plots=False,
                executor=pool,
            )
    stored = {r["image"] for r in cells(tmp_path)}
    assert stored == set(range(12)) - {4, 5}  # the failed unit's block alone is missing
    recorded = json.loads((tmp_path / "failed_units.json").read_text())["failed_units"]
    assert len(recorded) == 1 and "images 4-5" in recorded[0] and "no sequence for image 5" in recorded[0]
    Broken.failing = False
    resumed = run_benchmark(
        settings(), tmp_path, suites={"darkening": Broken()}, baselines={"image_map": ImageMap()}, plots=False
    )
    assert resumed["resume"]["cells_computed"] == 2 * 2 * 2  # the rerun computes the failed unit's cells
    assert not (tmp_path / "failed_units.json").exists()  # every unit is done: nothing failed any more
    assert resumed["records"] == run(tmp_path / "straight")["records"]


def test_unreachable_scheduler_is_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from propgrad.cli import main

    start = time.perf_counter()
    out = tmp_path / "out"
    code = main(
        ["benchmark", "--suite", "fur", "--out", str(out), "--executor", "dask", "--scheduler", "tcp://127.0.0.1:9"]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "cannot reach the Dask scheduler at 'tcp://127.0.0.1:9'" in err[0]
    assert time.perf_counter() - start < 20 and not out.exists()


def test_dask_options_without_dask_executor_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from propgrad.cli import main

    code = main(["benchmark", "--suite", "fur", "--out", str(tmp_path / "o"), "--workers", "2"])
    assert code == 2 and "--workers need(s) --executor dask" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_interrupted_driver_keeps_finished_units_and_resumes(
    tmp_path: Path, small_blocks: None, slow_module: str
) -> None:
    """SIGTERM on the driver (as a scheduler sends; the CLI makes it a KeyboardInterrupt) mid-run."""
    from propgrad.cli.benchmark import Terminated, sigterm_interrupts

    slow = __import__(slow_module).SlowMap
    reference = run(tmp_path / "straight", baseline=slow())
    out = tmp_path / "stopped"

    def stop_after_first_unit() -> None:
        while not (out / STORE_NAME).exists() or not any(r["kind"] == "baseline" for r in cells(out)):
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGTERM)

    with distributed.LocalCluster(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0") as c:
        with distributed.Client(c) as client:
            threading.Thread(target=stop_after_first_unit, daemon=True).start()
            with pytest.raises(Terminated), sigterm_interrupts():
                run(out, client.get_executor(pure=False), baseline=slow())
    kept = cells(out)
    assert 0 < len(kept) < len(reference["records"])
    assert len({json.dumps(r["key"]) for r in kept}) == len(kept)
    resumed = run(out, baseline=slow())
    assert resumed["resume"]["cells_loaded"] == len(kept)
    assert resumed["records"] == reference["records"]


@pytest.mark.slow
def test_killed_worker_loses_only_its_unit(tmp_path: Path, small_blocks: None, slow_module: str) -> None:
    slow = __import__(slow_module).SlowMap
    reference = run(tmp_path / "local", baseline=slow())
    killed: list[str] = []
    with (
        distributed.LocalCluster(processes=True, n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster,
        distributed.Client(cluster) as client,
    ):
        out = tmp_path / "dask"

        def kill_a_busy_worker() -> None:
            while not (out / STORE_NAME).exists() or not cells(out):
                time.sleep(0.02)
            busy = [w for w, keys in client.processing().items() if keys]
            killed.extend(busy[:1])
            try:
                client.run(os._exit, 1, workers=busy[:1])
            except Exception:  # noqa: BLE001 - the worker dies answering
                pass

        threading.Thread(target=kill_a_busy_worker, daemon=True).start()
        dask = run(out, client.get_executor(pure=False), baseline=slow())
    assert killed, "a worker was busy when the first unit was stored"
    assert dask["records"] == reference["records"]


@pytest.mark.slow
def test_workers_missing_a_plugin_or_with_another_version_are_refused(tmp_path: Path, slow_module: str) -> None:
    with (
        distributed.LocalCluster(processes=True, n_workers=1, threads_per_worker=1, dashboard_address=":0") as cluster,
        distributed.Client(cluster) as client,
    ):
        (worker,) = client.scheduler_info()["workers"]
        late = tmp_path / "late"
        late.mkdir()
        name = f"lateplugin_{uuid.uuid4().hex[:8]}"
        (late / f"{name}.py").write_text(SLOW_MODULE.replace("{sleep}", "0"))
        sys.path.insert(0, str(late))  # only the driver sees it
        try:
            missing = __import__(name).SlowMap()
            with pytest.raises(
                WorkerMismatchError, match=rf"baseline plugin 'slow_map' does not load on worker {worker}"
            ):
                run(tmp_path / "a", client.get_executor(), baseline=missing)
        finally:
            sys.path.remove(str(late))
        assert not (tmp_path / "a").exists()
        assert client.run(__import__(slow_module).other_version) == {worker: True}
        with pytest.raises(WorkerMismatchError, match=rf"worker {worker} runs propgrad 9.9.9, the driver propgrad \S+"):
            run(tmp_path / "b", client.get_executor())
        assert not (tmp_path / "b" / STORE_NAME).exists()


@pytest.mark.slow
def test_cuda_units_ask_for_one_gpu_worker_resource() -> None:
    from propgrad.harness.executors import dask_executor

    lines: list[str] = []
    with dask_executor(workers=1, threads_per_worker=2, device="cuda", say=lines.append) as executor:
        client = executor._client  # type: ignore[attr-defined]
        assert executor._kwargs["resources"] == {"GPU": 1}  # type: ignore[attr-defined]
        workers = client.scheduler_info()["workers"].values()
        assert [w["resources"] for w in workers] == [{"GPU": 1}]
        assert list(client.run(torch_threads).values()) == [2]
    assert len(lines) == 1 and "1 workers" in lines[0] and "dashboard http" in lines[0]


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


@pytest.mark.slow
def test_scaling_benchmark_quick_check_runs() -> None:
    root = Path(__file__).parents[2]
    done = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "dask_scaling.py"), "--quick-check"],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "records identical across the three runs: True" in out
    assert "(a) overhead" in out and "(b) speed-up" in out
    assert out.count("(c) peak resident memory") == 3  # one line per worker: 1 + 2
