"""The benchmark grid on Dask distributed against the in-process run: overhead, speed-up, memory per worker.

Runs the same benchmark three times into temporary folders, torch on one thread everywhere:

(a) in-process (``executor=None``, one torch thread) against a Dask ``LocalCluster`` of 1 worker
    process (one thread): the Dask path's overhead (target <= 1.15x);
(b) a ``LocalCluster`` of 2 worker processes (one thread each) against (a)'s in-process run: the
    speed-up of the run's compute part (target >= 1.7x on two cores);
(c) every worker's peak resident memory (``ru_maxrss``) after its run;
(d) the machine's own ceiling for this work: the in-process run twice at once, in two processes of
    one torch thread each, against (a)'s run alone. Two cores that each kept their speed while the
    other works would give 2x; the ceiling is ``2 * alone / together``, the best any way of sharing
    the grid between two processes can reach here (they compete for memory bandwidth and caches, and
    on a virtual machine for the host). ``--no-ceiling`` skips it (about 6 min).

"Compute part": the session's run time minus reporting (tables, figures) and Quantus, i.e. the
wall time from the first unit planned to the last cell stored; the driver's suite setup (cached
training) and the cluster's start are excluded and printed apart. The records of the three runs
are compared too (they must be equal). Full mode: the default quick ``fur`` benchmark (every
registered baseline, the suite's pool, the fur models cached), roughly 6 min in-process on one
thread + 6 min on 1 worker + 3 min on 2 workers on two idle cores: ~15 min (on a quiet machine)::

    PROPGRAD_CACHE_DIR=/tmp/cache python benchmarks/dask_scaling.py

``--quick-check``: a tiny suite defined here (random 16x16 images, a seeded tiny conv net, a
brightness ramp) with Occlusion, in seconds: it checks that the script works, not the figures.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from propgrad.sources.base import InterventionSequence
from propgrad.suites.base import BenchmarkSuite


class TinySuite(BenchmarkSuite):
    """24 random 16x16 images in two classes (by mean brightness), one tiny conv net, a brightness ramp."""

    name = "tiny"
    class_names = ("bright", "dark")
    interventions = ("darken",)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        from propgrad.testing import tiny_classifier

        self._model = tiny_classifier(2, seed=0)
        gen = torch.Generator().manual_seed(0)
        self._images = torch.rand(24, 3, 16, 16, generator=gen)
        self._labels = (self._images.mean(dim=(1, 2, 3)) < 0.5).long()

    def settings(self) -> dict[str, Any]:
        return {"images": 24, "size": 16}

    def models(self) -> dict[str, nn.Module]:
        return {"tiny": self._model}

    def test_set(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._images, self._labels

    def intervene(self, intervention: str, index: int) -> InterventionSequence:
        factors = torch.linspace(1.0, 0.2, 8)
        images = self._images[index][None] * factors[:, None, None, None]
        return InterventionSequence(images, torch.arange(8, dtype=torch.float32), "darkness", "step")

    def accuracy_table(self) -> dict[str, dict[str, float]]:
        return {"tiny": {"test": 1.0}}

    def images_per_class(self) -> int:
        return 4


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB (Linux reports ``ru_maxrss`` in kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def warm_up() -> bool:
    """Import what a worker needs to compute units (run on each worker before the measurement)."""
    import propgrad.harness.executors  # noqa: F401 - the import is the point

    return True


def compute_seconds(results: dict[str, Any]) -> float:
    """The session's run time without reporting and Quantus (suite setup is already out of ``run_s``)."""
    t = results["session_timing"]
    return float(t["run_s"] - t.get("reporting_s", 0.0) - t.get("quantus_s", 0.0))


def run_once(settings: Any, quick_check: bool, executor: Any = None) -> dict[str, Any]:
    """One benchmark run into a temporary folder."""
    from propgrad.harness import run_benchmark

    kwargs: dict[str, Any] = {}
    if quick_check:
        from propgrad.plugins.parameters import build

        kwargs = {"suites": {"tiny": TinySuite()}, "baselines": {"occlusion": build("baselines", "occlusion", {})}}
    with tempfile.TemporaryDirectory() as out:
        return run_benchmark(settings, Path(out), plots=False, executor=executor, **kwargs)


def run_alone(quick_check: bool) -> float:
    """The in-process run's compute seconds, in this process (the ``--alone`` mode of the ceiling's pair)."""
    torch.set_num_threads(1)
    return compute_seconds(run_once(benchmark_settings(quick_check), quick_check))


def pair_at_once(quick_check: bool) -> list[float]:
    """Two in-process runs started together in two processes (one torch thread each): their compute seconds."""
    command = [sys.executable, str(Path(__file__).resolve()), "--alone"] + (["--quick-check"] if quick_check else [])
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [run.communicate()[0] for run in runs]
    if any(run.returncode for run in runs):
        raise RuntimeError(f"an in-process run of the pair failed (exit codes {[run.returncode for run in runs]})")
    return [float(json.loads(out.strip().splitlines()[-1])["compute_s"]) for out in outs]


def benchmark_settings(quick_check: bool) -> Any:
    """The measured benchmark's settings: the default quick fur benchmark, or the tiny check suite's."""
    from propgrad.harness import BenchmarkSettings, preset
    from propgrad.plugins import list_baselines

    if quick_check:
        return BenchmarkSettings(suites=("tiny",), n_permutations=200, n_placebos=0, baselines=("occlusion",))
    classes = dict(list_baselines())
    return preset(quick=True, suites=("fur",), baselines=tuple(classes), baseline_classes=classes)


def on_cluster(settings: Any, quick_check: bool, n_workers: int) -> tuple[dict[str, Any], float, dict[str, float]]:
    """A run on a new LocalCluster of ``n_workers`` processes: results, cluster start seconds, peak MB per worker."""
    from distributed import Client, LocalCluster

    start = time.perf_counter()
    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        with Client(cluster) as client:
            client.run(warm_up)  # the workers' imports belong to the cluster's start, not to the run
            started = time.perf_counter() - start
            results = run_once(settings, quick_check, client.get_executor(pure=False))
            memory = client.run(peak_rss_mb)
    return results, started, memory


def main(argv: list[str] | None = None) -> int:
    """Run the three measurements and print them."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick-check", action="store_true", help="a tiny suite, seconds: check the script works")
    parser.add_argument("--no-ceiling", action="store_true", help="skip (d), the two in-process runs at once")
    parser.add_argument("--alone", action="store_true", help=argparse.SUPPRESS)  # one run of (d)'s pair
    args = parser.parse_args(argv)
    if args.alone:
        print(json.dumps({"compute_s": run_alone(args.quick_check)}))
        return 0

    torch.set_num_threads(1)
    settings = benchmark_settings(args.quick_check)
    local = run_once(settings, args.quick_check)
    one, start_one, memory_one = on_cluster(settings, args.quick_check, 1)
    two, start_two, memory_two = on_cluster(settings, args.quick_check, 2)
    t_local, t_one, t_two = (compute_seconds(r) for r in (local, one, two))
    same = local["records"] == one["records"] == two["records"]
    what = "tiny check suite" if args.quick_check else "default quick fur benchmark"
    print(f"{what}: {len(local['records'])} cells; records identical across the three runs: {same}")
    print(f"in-process, 1 thread:       {t_local:8.2f} s compute")
    print(f"Dask, 1 worker x 1 thread:  {t_one:8.2f} s compute (cluster start {start_one:.2f} s, excluded)")
    print(f"Dask, 2 workers x 1 thread: {t_two:8.2f} s compute (cluster start {start_two:.2f} s, excluded)")
    print(f"(a) overhead of the Dask path, 1 worker / in-process: {t_one / t_local:.3f}x (target <= 1.15)")
    print(f"(b) speed-up, in-process / 2 workers:                 {t_local / t_two:.3f}x (target >= 1.7)")
    peaks = {
        **{f"1 worker: {w}": m for w, m in memory_one.items()},
        **{f"2 workers: {w}": m for w, m in memory_two.items()},
    }
    for worker, mb in sorted(peaks.items()):
        print(f"(c) peak resident memory, {worker}: {mb:.0f} MB")
    print(f"    driver (this process, all three runs): {peak_rss_mb():.0f} MB")
    if not args.no_ceiling:
        together = pair_at_once(args.quick_check)
        ceiling = 2 * t_local / max(together)
        print(
            f"(d) two in-process runs at once: {together[0]:.2f} s and {together[1]:.2f} s compute against "
            f"{t_local:.2f} s alone: the machine's ceiling for two processes on this work is {ceiling:.3f}x; "
            f"the 2 workers reach {t_local / t_two / ceiling:.0%} of it"
        )
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
