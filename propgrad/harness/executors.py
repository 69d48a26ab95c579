"""The benchmark's units on a :class:`concurrent.futures.Executor`: Dask distributed, or any other.

The in-process run (no executor, the default) computes the units inline (:meth:`SuiteRunner.run
<propgrad.harness.runner.SuiteRunner.run>`) and never imports Dask. With an executor, the driver
plans each suite's units, submits them all and stores each unit's cells as it finishes
(:func:`concurrent.futures.as_completed`): **the driver alone writes the cell store**, so its
lock, checksums, identities, interruption and resume are those of the in-process run. A worker
computes a unit with the same :meth:`SuiteRunner.run_unit <propgrad.harness.runner.SuiteRunner.run_unit>`
into a :class:`~propgrad.harness.units.CollectingSink` and sends it back (:func:`compute_unit`).

How suites reach workers (no shared file system assumed): the driver prepares each suite (loading or
training its models, as the in-process run does) and sends the prepared suite, its models and test
data with the baselines as one :class:`SuitePayload`. On Dask it is scattered once to every worker
(``client.scatter(..., broadcast=True)``) and each unit names it; any other executor gets it with
every unit. A worker builds its runner once per payload (a memo keyed by the payload's token, holding
one suite at a time) and checks every model's weights hash against the driver's before computing
anything. Scattering rather than rebuilding from the cache key: a cold worker would otherwise
train the suite's models itself (minutes, on every worker of a fresh cluster), and the weights are
the driver's by construction, for any suite, registered or passed in as an object.

Faults: a lost worker's units are rescheduled by Dask (``distributed.scheduler.allowed-failures``);
a unit that raises (or whose workers keep dying) is reported and the rest of the grid goes on;
at the end :class:`UnitsFailedError` names the failed units, whose cells a rerun computes. Before
the run, :func:`check_workers` asks every Dask worker for its propgrad version and whether the run's
suites and baselines load there (``client.run``): a missing plugin or another version is refused,
naming the worker and both versions.
"""

from __future__ import annotations

import os
import sys
import threading
import uuid
from collections import OrderedDict
from concurrent.futures import Executor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import import_module, metadata
from typing import Any, Callable, Iterator, Mapping, Sequence

from propgrad.baselines.base import AttributionBaseline
from propgrad.core.allocator import tune_allocator
from propgrad.core.progress import progress_bar
from propgrad.errors import PropgradError
from propgrad.harness.identity import plugin_identity, weights_hash
from propgrad.harness.runner import Outputs, SuiteRunner
from propgrad.harness.settings import BenchmarkSettings
from propgrad.harness.timing import Stopwatch
from propgrad.harness.units import CollectingSink, StoreSink, Unit, UnitResult
from propgrad.suites.base import BenchmarkSuite

CONNECT_TIMEOUT_S = 5.0
"""How long to try to reach a Dask scheduler before giving up (``--scheduler``)."""

EXECUTOR_CHOICES = ("local", "dask")
"""``propgrad benchmark --executor``: in-process (the default), or Dask distributed."""


class ExecutorError(PropgradError):
    """The executor of a distributed benchmark run cannot be used."""


class DaskMissingError(ExecutorError, ImportError):
    """``--executor dask`` without Dask distributed installed."""


class SchedulerUnreachableError(ExecutorError, ConnectionError):
    """The Dask scheduler address does not answer."""


class WorkerMismatchError(ExecutorError):
    """A worker lacks a plugin the run needs, or runs another propgrad or plugin version, or other weights."""


class UnitsFailedError(ExecutorError):
    """Units of the grid failed on every try; the other units' cells are stored.

    Attributes:
        failures: One line per failed unit: its label, the error's type and message.
    """

    def __init__(self, message: str, failures: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.failures = list(failures)


@dataclass(frozen=True)
class SuitePayload:
    """What a worker needs to compute a suite's units: sent once per worker (Dask) or with every unit.

    Attributes:
        token: Unique per run and suite: the key of the worker's memo.
        name: The suite's name.
        suite: The driver's prepared suite (its models and test data loaded).
        baselines: The run's constructed baselines by name.
        settings: The run's settings.
        weights: Each model's weights hash on the driver (:func:`~propgrad.harness.identity.weights_hash`).
        device: Where the worker runs the models (None: where the suite put them).
    """

    token: str
    name: str
    suite: BenchmarkSuite
    baselines: Mapping[str, AttributionBaseline]
    settings: BenchmarkSettings
    weights: Mapping[str, str]
    device: str | None = None


_CONTEXTS: OrderedDict[str, tuple[SuiteRunner, threading.Lock]] = OrderedDict()
_CONTEXTS_LOCK = threading.Lock()
_MEMO_SUITES = 1
"""Suites a worker keeps built at once: one, so its memory is one suite's models plus one unit's data."""


def _runner_of(payload: SuitePayload) -> tuple[SuiteRunner, threading.Lock]:
    """The worker's runner of ``payload`` (built and checked on first use) and the lock of its units."""
    with _CONTEXTS_LOCK:
        found = _CONTEXTS.get(payload.token)
        if found is not None:
            _CONTEXTS.move_to_end(payload.token)
            return found
        tune_allocator()
        while len(_CONTEXTS) >= _MEMO_SUITES:
            _CONTEXTS.popitem(last=False)
        runner = SuiteRunner(
            payload.name, payload.suite, payload.baselines, payload.settings, Outputs(None, Stopwatch()), payload.device
        )
        runner.prepare()
        got = {name: weights_hash(model) for name, model in runner.models.items()}
        if got != dict(payload.weights):
            differ = sorted(n for n in set(got) | set(payload.weights) if got.get(n) != payload.weights.get(n))
            raise WorkerMismatchError(
                f"worker {worker_name()} built suite {payload.name!r} with other models than the driver ("
                + ", ".join(f"{n}: {payload.weights.get(n)} on the driver, {got.get(n)} here" for n in differ)
                + ")"
            )
        _CONTEXTS[payload.token] = (runner, threading.Lock())
        return _CONTEXTS[payload.token]


def worker_name() -> str:
    """The Dask worker's address when called in a task on one, else this process's host and id."""
    if "distributed" in sys.modules:
        try:
            from distributed import get_worker

            return str(get_worker().address)
        except ValueError:  # not inside a worker's task
            pass
    return f"{os.uname().nodename} pid {os.getpid()}"


def compute_unit(payload: SuitePayload, unit: Unit) -> UnitResult:
    """Compute one unit on a worker and return everything it made (the function executors run).

    A pure function of the payload (settings, suite, baselines) and the unit: the same cells as the
    in-process run, whichever worker runs it and in whatever order. Units of one suite run one at a
    time per worker process (they share its runner); each worker's torch threads do the parallel work.
    """
    runner, lock = _runner_of(payload)
    with lock:
        runner.stopwatch, runner.slic_fallbacks = Stopwatch(), {}
        sink = CollectingSink(unit)
        runner.run_unit(unit, sink)
        result = sink.result
        result.seconds = dict(runner.stopwatch.seconds)
        result.slic_fallbacks = {k: dict(v) for k, v in runner.slic_fallbacks.items()}
        result.worker = worker_name()
    return result


def dask_client_of(executor: Executor) -> Any | None:
    """The Dask client behind ``executor`` (``Client.get_executor()``), or None for any other executor."""
    if "distributed" not in sys.modules:  # then it cannot be one, and Dask stays unimported
        return None
    from distributed.cfexecutor import ClientExecutor

    return executor._client if isinstance(executor, ClientExecutor) else None


def run_on_executor(
    runner: SuiteRunner,
    executor: Executor,
    *,
    device: str | None = None,
    say: Callable[[str], None] | None = None,
) -> list[str]:
    """Compute every missing cell of a prepared suite on ``executor``, storing each unit's cells as it finishes.

    Args:
        runner: The driver's prepared runner (with the store and kept maps).
        executor: Where units run.
        device: Where workers run the models (None: where the suite put them).
        say: Where a line about each failed unit goes (None: nowhere).

    Returns:
        One line per failed unit (its label and error); its cells are not stored.
    """
    store = runner._store()
    units = [unit for intervention in runner.suite.interventions for unit in runner.plan(intervention)]
    if not units:
        return []
    weights = {name: weights_hash(model) for name, model in runner.models.items()}
    payload = SuitePayload(
        uuid.uuid4().hex, runner.name, runner.suite, runner.baselines, runner.settings, weights, device
    )
    client = dask_client_of(executor)
    shipped: Any = payload if client is None else client.scatter(payload, broadcast=True, hash=False)
    bars = runner.progress_bars(runner.name, units)
    unit_bar = progress_bar(len(units), f"{runner.name} units", enabled=runner.show_progress, position=len(bars))
    sink = StoreSink(store, runner.kept_maps, bars)
    failures: list[str] = []
    futures = {executor.submit(compute_unit, shipped, unit): unit for unit in units}
    try:
        for future in as_completed(futures):
            unit = futures.pop(future)
            try:
                result = future.result()
            except Exception as exc:  # noqa: BLE001 - one failed unit never takes the grid down
                failures.append(f"{unit.label}: {type(exc).__name__}: {exc}")
                if say is not None:
                    say(f"unit {failures[-1]} (its {unit.n_cells} cells are not stored; a rerun computes them)")
                continue
            result.replay(sink)
            for name, seconds in result.seconds.items():
                runner.stopwatch.seconds[name] = runner.stopwatch.seconds.get(name, 0.0) + seconds
            for baseline, counts in result.slic_fallbacks.items():
                mine = runner.slic_fallbacks.setdefault(baseline, {})
                for strategy, n in counts.items():
                    mine[strategy] = mine.get(strategy, 0) + n
            unit_bar.update(1)
    finally:
        for future in futures:  # interrupted: what has not finished is dropped (a rerun computes it)
            future.cancel()
        for bar in [*bars, unit_bar]:
            bar.close()
        if client is not None:
            client.cancel([shipped])
    return failures


# -- checks at start ---------------------------------------------------------------------------
def propgrad_version() -> str:
    """The installed propgrad distribution's version (the package's own if it is not installed)."""
    try:
        return metadata.version("propgrad")
    except metadata.PackageNotFoundError:
        import propgrad

        return propgrad.__version__


def needed_plugins(
    suites: Mapping[str, type], baselines: Mapping[str, type], *, registered: tuple[bool, bool] = (True, True)
) -> list[tuple[str, str, str, bool]]:
    """What a worker must load: (kind, name, class path, whether it comes from the plugin registry).

    ``registered``: whether the suites and the baselines (in that order) come from the plugin registry
    (a worker looks them up there) or were passed in as objects (a worker imports their classes).
    """
    kinds = (("suites", suites, registered[0]), ("baselines", baselines, registered[1]))
    return [
        (kind, n, f"{c.__module__}:{c.__qualname__}", reg) for kind, classes, reg in kinds for n, c in classes.items()
    ]


def worker_report(needed: list[tuple[str, str, str, bool]]) -> dict[str, Any]:
    """Run on each worker: its propgrad version and, per needed plugin, its version or why it does not load."""
    plugins: dict[str, dict[str, Any]] = {}
    for kind, name, path, registered in needed:
        if not registered and (path.startswith("__main__:") or "<locals>" in path):
            continue  # a class of a script or a function travels by value with the payload (cloudpickle)
        try:
            if registered:
                from propgrad.plugins import get_baseline, get_suite

                cls = (get_suite if kind == "suites" else get_baseline)(name)
            else:
                module, _, qualname = path.partition(":")
                cls = import_module(module)
                for part in qualname.split("."):
                    cls = getattr(cls, part)
            identity = plugin_identity(kind, cls)
            plugins[f"{kind}:{name}"] = {"version": identity["version"], "distribution": identity["distribution"]}
        except Exception as exc:  # noqa: BLE001 - reported to the driver, which names the worker
            plugins[f"{kind}:{name}"] = {"error": f"{type(exc).__name__}: {exc}"}
    return {"propgrad": propgrad_version(), "plugins": plugins}


def check_workers(client: Any, needed: list[tuple[str, str, str, bool]]) -> int:
    """Refuse workers that cannot run the grid: another propgrad version, a plugin missing or of another version.

    Args:
        client: A Dask client.
        needed: The run's suites and baselines (:func:`needed_plugins`).

    Returns:
        How many workers were checked.

    Raises:
        WorkerMismatchError: Naming the worker, the plugin and both versions.
    """
    mine = worker_report(needed)
    reports = client.run(worker_report, needed)
    if not reports:
        raise ExecutorError(f"the Dask cluster at {client.scheduler.address} has no workers")
    for worker, report in sorted(reports.items()):
        if report["propgrad"] != mine["propgrad"]:
            raise WorkerMismatchError(
                f"worker {worker} runs propgrad {report['propgrad']}, the driver propgrad {mine['propgrad']}: "
                "install the same version everywhere"
            )
        for key, theirs in report["plugins"].items():
            kind, _, name = key.partition(":")
            what = f"{kind[:-1]} plugin {name!r}"
            if "error" in theirs:
                raise WorkerMismatchError(f"{what} does not load on worker {worker}: {theirs['error']}")
            ours = mine["plugins"][key]
            if theirs.get("version") != ours.get("version"):
                raise WorkerMismatchError(
                    f"worker {worker} has {what} version {theirs.get('version')} ({theirs.get('distribution')}), "
                    f"the driver version {ours.get('version')}: install the same version everywhere"
                )
    return len(reports)


# -- Dask clients ------------------------------------------------------------------------------
@contextmanager
def dask_executor(
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    threads_per_worker: int | None = None,
    device: str | None = None,
    say: Callable[[str], None] | None = None,
) -> Iterator[Executor]:
    """A Dask executor for the benchmark: on the scheduler at ``scheduler``, or on a new local cluster.

    Args:
        scheduler: A running scheduler's address (``tcp://host:8786``); None starts a ``LocalCluster``
            of ``workers`` worker processes (one unit at a time each) on this machine.
        workers: Worker processes of the local cluster (None: Dask's choice, one per core group).
        threads_per_worker: torch threads of each worker (None: 1, Dask's setting for worker processes).
        device: ``cuda...``: every unit asks for one ``GPU`` worker resource (start workers with
            ``--resources GPU=1``, one GPU each); None or ``cpu``: none.
        say: Where the dashboard link goes.

    Raises:
        DaskMissingError: Dask distributed is not installed.
        SchedulerUnreachableError: ``scheduler`` did not answer within :data:`CONNECT_TIMEOUT_S`.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise DaskMissingError(
            "--executor dask needs Dask distributed, which is not installed: pip install 'propgrad[dask]'"
        ) from None
    cluster = None
    if scheduler is not None:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError, ValueError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise SchedulerUnreachableError(
                f"cannot reach the Dask scheduler at {scheduler!r} within {CONNECT_TIMEOUT_S:g} s ({first}); "
                "expected the address of a running scheduler, e.g. tcp://host:8786"
            ) from None
    else:
        resources = {"GPU": 1} if device is not None and device.startswith("cuda") else None
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0", resources=resources
        )
        client = Client(cluster)
    try:
        if threads_per_worker is not None:
            client.run(_set_torch_threads, threads_per_worker)
        if say is not None:
            n = len(client.scheduler_info(n_workers=-1)["workers"])
            say(f"Dask: {n} workers at {client.scheduler.address}; dashboard {client.dashboard_link}")
        kwargs: dict[str, Any] = {"pure": False}
        if device is not None and device.startswith("cuda"):
            kwargs["resources"] = {"GPU": 1}
        yield client.get_executor(**kwargs)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _set_torch_threads(n: int) -> int:
    import torch

    torch.set_num_threads(n)
    return torch.get_num_threads()
