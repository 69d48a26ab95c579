"""``run_benchmark``: a whole benchmark run, from settings to results.json, report.md and plots.

Output folder layout: ``cells.jsonl`` (the resumable cell store), ``results.json`` (strict JSON),
``records.csv`` (one row per image), ``report.md`` and the self-contained ``report.html`` (both
open with the verdicts and the suites' validity checks, which ``results.json`` keeps under
``validity``: :func:`validity_of`), the
figures ``{behaviour,scores,roc,filmstrip,maps}_<suite>_<intervention>.png``, ``maps/`` (the
attribution maps and sequences kept for a few images, :mod:`propgrad.harness.kept_maps`) and
``.propgrad-benchmark.lock`` (held while a run uses the folder). Everything but the
append-only store is written atomically.
"""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Callable, Mapping

from propgrad.baselines.base import AttributionBaseline
from propgrad.core.allocator import tune_allocator
from propgrad.core.atomic_files import write_json, write_text
from propgrad.core.collector import long_lived_frozen
from propgrad.core.forward import model_device
from propgrad.core.strict_json import strict_with_reasons
from propgrad.errors import InvalidParameterError
from propgrad.harness.cells import record_key
from propgrad.harness.executors import UnitsFailedError
from propgrad.harness.figures import write_plots
from propgrad.harness.identity import bind_baselines, bind_models, bind_suite, weights_hash
from propgrad.harness.kept_maps import MAPS_DIR, KeptMaps
from propgrad.harness.metric_columns import format_quantus_table, runners_quantus_scores
from propgrad.harness.output_folder import check_writable, locked_output
from propgrad.harness.records_csv import write_records_csv
from propgrad.harness.report import SuiteTables, format_report, report_sections
from propgrad.harness.report_html import HTML_NAME, write_benchmark_html
from propgrad.harness.result_view import BenchmarkResult
from propgrad.harness.runner import Outputs, SuiteRunner, run_suites
from propgrad.harness.settings import BenchmarkSettings
from propgrad.harness.store import CellStore
from propgrad.harness.summary import summarise
from propgrad.harness.timing import Stopwatch, TimingCheckpoints, combine_summaries, format_ratio
from propgrad.harness.versions import collect_versions
from propgrad.stats.strategy import threads_available
from propgrad.suites.base import BenchmarkSuite

STORE_NAME = "cells.jsonl"
RESULTS_NAME = "results.json"
#: Units that failed on every try in a run on an executor, with their errors (removed when a rerun completes).
FAILED_UNITS_NAME = "failed_units.json"
REPORT_NAME = "report.md"
CSV_NAME = "records.csv"
_PLOT_GLOBS = ("behaviour_*.png", "scores_*.png", "roc_*.png", "filmstrip_*.png", "maps_*.png")


def remove_outputs(out_dir: Path) -> None:
    """Delete what a previous run wrote to ``out_dir`` (only the benchmark's own files)."""
    out_dir = Path(out_dir)
    for name in (STORE_NAME, RESULTS_NAME, REPORT_NAME, CSV_NAME, HTML_NAME, FAILED_UNITS_NAME):
        (out_dir / name).unlink(missing_ok=True)
    for pattern in _PLOT_GLOBS:
        for path in out_dir.glob(pattern):
            path.unlink()
    kept = out_dir / MAPS_DIR
    if kept.is_dir():
        for path in sorted(kept.rglob("*.npz"), reverse=True):  # only the files the benchmark keeps there
            path.unlink()
        for folder in sorted((p for p in kept.rglob("*") if p.is_dir()), reverse=True):
            if not any(folder.iterdir()):
                folder.rmdir()


def build_baselines(settings: BenchmarkSettings) -> dict[str, AttributionBaseline]:
    """Construct the settings' baselines from the plugin registry with their keyword arguments."""
    from propgrad.plugins.parameters import build

    return {name: build("baselines", name, settings.baseline_kwargs.get(name, {})) for name in settings.baselines}


def build_suites(settings: BenchmarkSettings, stopwatch: Stopwatch, show_progress: bool) -> dict[str, BenchmarkSuite]:
    """Construct the settings' suites from the plugin registry (quick/full, seed)."""
    from propgrad.plugins import get_suite

    classes = {name: get_suite(name) for name in settings.suites}  # unknown names fail before any work
    suites = {}
    with stopwatch.measure("suite_setup"):
        for name, cls in classes.items():
            suites[name] = cls(quick=settings.quick, seed=settings.seed, show_progress=show_progress)
    return suites


def run_benchmark(
    settings: BenchmarkSettings,
    out_dir: Path,
    *,
    suites: Mapping[str, BenchmarkSuite] | None = None,
    baselines: Mapping[str, AttributionBaseline] | None = None,
    fresh: bool = False,
    show_progress: bool = False,
    plots: bool = True,
    echo: Callable[[str], None] | None = None,
    executor: Executor | None = None,
    device: str | None = None,
) -> dict[str, Any]:
    """Run (or resume) the "predict the flip" benchmark and write its outputs.

    The output folder is locked for the whole run (a second run into it fails at once). A resumed
    run reuses the stored cells whose suite, baseline and model identities are unchanged (see
    :mod:`propgrad.harness.identity`: other settings are refused, another plugin version or other
    weights recompute that plugin's or model's cells) and retries cells recorded as errors.

    Args:
        settings: What to run (see :class:`BenchmarkSettings`).
        out_dir: Output folder; a rerun with the same settings continues where the last stopped.
        suites: Constructed suites by name (keys must equal ``settings.suites``); None builds
            them from the plugin registry.
        baselines: Constructed baselines by name (keys must equal ``settings.baselines``); None
            builds them from the registry with ``settings.baseline_kwargs``.
        fresh: Discard earlier results in ``out_dir`` first.
        show_progress: Progress bars (suite construction, interventions, inference, attribution).
        plots: Write the PNG figures.
        echo: Called with status lines (resumed cells, recomputed plugins, output paths); None is silent.
        executor: Where the units of the grid run (any :class:`concurrent.futures.Executor`, e.g. Dask's
            ``Client.get_executor()``; :mod:`propgrad.harness.executors`, docs/distributed.md); None (the
            default) computes them in this process. Not a setting: the records are the same either way,
            and the driver (this process) alone writes the output folder.
        device: Where the models run (``"cpu"``, ``"cuda"`` ...; with an executor, on the workers); None
            leaves them where the suites put them. Not a setting either (see docs/distributed.md).

    glibc's malloc thresholds are set for the process (:func:`propgrad.core.allocator.tune_allocator`,
    ``PROPGRAD_TUNE_ALLOCATOR=0`` leaves them).

    Returns:
        The data written to ``results.json``. ``timing`` adds up every session that computed
        cells of this store; ``session_timing`` is this session alone.

    Raises:
        SettingsMismatchError: ``out_dir`` holds results of other settings (and not ``fresh``).
        OutputNotWritableError: ``out_dir`` cannot be written.
        OutputInUseError: Another run is using ``out_dir``.
        ValueError: Suites or baselines that do not match the settings.
        WorkerMismatchError: A Dask worker lacks a plugin the run needs or runs another version (before anything is
            written).
        UnitsFailedError: With an executor, units failed; every other cell is stored and no report is written.
    """
    out_dir = Path(out_dir)
    say = echo or (lambda _m: None)
    tune_allocator()  # this process's forward passes reuse freed memory (propgrad.core.allocator)
    if executor is not None:  # before anything is written
        _check_executor(executor, settings, suites, baselines, say)
    check_writable(out_dir, (STORE_NAME,))
    with locked_output(out_dir):
        if fresh:
            remove_outputs(out_dir)
        store = CellStore(out_dir / STORE_NAME, settings.result_settings())
        run = _Run(executor, device, show_progress, plots)
        return _run_locked(settings, out_dir, store, suites, baselines, say, run)


@dataclass(frozen=True)
class _Run:
    """How a run computes and reports: its units on ``executor`` (None: in this process) with the models on
    ``device``, with progress bars or not, with the PNG figures or not."""

    executor: Executor | None = None
    device: str | None = None
    show_progress: bool = False
    plots: bool = True


def _check_executor(
    executor: Executor,
    settings: BenchmarkSettings,
    suites: Mapping[str, BenchmarkSuite] | None,
    baselines: Mapping[str, AttributionBaseline] | None,
    say: Callable[[str], None],
) -> None:
    """On a Dask executor, check every worker before anything is written (:func:`executors.check_workers`)."""
    from propgrad.harness.executors import check_workers, dask_client_of, needed_plugins

    client = dask_client_of(executor)
    if client is None:
        return
    from propgrad.plugins import get_baseline, get_suite

    suite_classes = {n: type(s) for n, s in suites.items()} if suites is not None else {}
    if suites is None:
        suite_classes = {n: get_suite(n) for n in settings.suites}
    baseline_classes = {n: type(b) for n, b in baselines.items()} if baselines is not None else {}
    if baselines is None:
        baseline_classes = {n: get_baseline(n) for n in settings.baselines}
    n = check_workers(
        client, needed_plugins(suite_classes, baseline_classes, registered=(suites is None, baselines is None))
    )
    say(f"Dask: {n} workers checked (propgrad and plugin versions); dashboard {client.dashboard_link}")


def _run_locked(
    settings: BenchmarkSettings,
    out_dir: Path,
    store: CellStore,
    suites: Mapping[str, BenchmarkSuite] | None,
    baselines: Mapping[str, AttributionBaseline] | None,
    say: Callable[[str], None],
    run: _Run,
) -> dict[str, Any]:
    show_progress, plots = run.show_progress, run.plots
    stopwatch = Stopwatch()
    started = datetime.now(UTC).isoformat(timespec="seconds")
    store.track_session(TimingCheckpoints(stopwatch), started=started)  # a killed session still counts
    if store.n_loaded:
        say(f"resuming: {store.n_loaded} finished cells found in {out_dir / STORE_NAME}")
    if baselines is None:
        baselines = build_baselines(settings)
    elif list(baselines) != list(settings.baselines):
        raise InvalidParameterError(
            f"baselines must be given for exactly {list(settings.baselines)} in order, got {list(baselines)}"
        )
    if suites is None:
        suites = build_suites(settings, stopwatch, show_progress)
    elif list(suites) != list(settings.suites):
        raise InvalidParameterError(
            f"suites must be given for exactly {list(settings.suites)} in order, got {list(suites)}"
        )
    changes = bind_baselines(store, baselines, settings.baseline_kwargs)
    suite_settings = {}
    for name, suite in suites.items():
        suite_settings[name], message = bind_suite(store, name, suite)
        changes += [message] if message else []
    for message in changes:
        say(message)
    suite_info: dict[str, dict[str, Any]] = {}
    model_weights: dict[str, dict[str, str]] = {}

    def prepared(name: str, runner: SuiteRunner) -> None:
        for message in bind_models(store, name, runner.models):
            changes.append(message)
            say(message)
        model_weights[name] = {model_name: weights_hash(model) for model_name, model in runner.models.items()}
        suite = runner.suite
        with stopwatch.measure("suite_setup"):
            accuracy = suite.accuracy_table()
            levels = suite.level_accuracy()
        suite_info[name] = {
            "settings": suite_settings[name],
            "description": suite.description,
            "class_names": list(suite.class_names),
            "interventions": list(suite.interventions),
            "score_only_interventions": list(suite.score_only_interventions),
            "models": list(runner.models),
            "images_per_class": int(suite.images_per_class()),
            "n_test_images": int(runner.labels.shape[0]),
            "pool": list(runner.pool),
            "accuracy_table": accuracy,
            "level_accuracy": levels,
            "devices": sorted({str(model_device(m, runner.images.device)) for m in runner.models.values()}),
        }

    finished = False
    runners: dict[str, SuiteRunner] = {}
    kept = KeptMaps(out_dir / MAPS_DIR)
    try:
        runners = run_suites(
            suites,
            baselines,
            settings,
            Outputs(store, stopwatch, kept, run.show_progress),
            on_prepared=prepared,
            executor=run.executor,
            device=run.device,
            say=say,
        )
        finished = True
    except UnitsFailedError as exc:  # recorded with their errors; the stored cells of the other units stay
        path = write_json(out_dir / FAILED_UNITS_NAME, {"failed_units": exc.failures})
        raise UnitsFailedError(f"{exc} (every failed unit and its error: {path})", exc.failures) from exc
    finally:
        if not finished and store.n_appended:  # keep the timing of the interrupted session's cells
            try:
                store.add_segment(store.n_appended, stopwatch.summary(), started=started, interrupted=True)
            except Exception:  # noqa: BLE001 - never hide why the run stopped
                pass
    (out_dir / FAILED_UNITS_NAME).unlink(missing_ok=True)  # every unit is done now
    slic = _slic_counts(runners)
    with stopwatch.measure("quantus"):
        quantus = runners_quantus_scores(runners, settings.quantus_metrics)
    session = _Session(settings, out_dir, store, stopwatch, started, say, plots, kept)
    return BenchmarkResult(_report(session, _Outcome(suite_info, changes, slic, quantus, model_weights, suites)))


def _slic_counts(runners: Mapping[str, SuiteRunner]) -> dict[str, dict[str, int]]:
    """The SLIC strategies the runners' superpixel baselines used in this session, summed."""
    total: dict[str, dict[str, int]] = {}
    for runner in runners.values():
        for baseline, counts in runner.slic_fallbacks.items():
            for strategy, n in counts.items():
                total.setdefault(baseline, {})[strategy] = total.get(baseline, {}).get(strategy, 0) + n
    return total


def _model_devices_of(suite_info: Mapping[str, Mapping[str, Any]]) -> str:
    """Where the suites' models ran (one device, or several joined by commas)."""
    devices = {d for info in suite_info.values() for d in info.get("devices", [])}
    return ", ".join(sorted(devices)) or "unknown (no suite was prepared)"


@dataclass(frozen=True)
class _Session:
    """One locked run of :func:`run_benchmark`: its settings, output folder, store and stopwatch.

    Attributes:
        settings: The run's checked settings.
        out_dir: The output folder (locked).
        store: The cell store.
        stopwatch: This session's timing.
        started: When this session started (ISO 8601).
        say: Where status lines go.
        plots: Write the PNG figures.
        kept: Where the maps and sequences of a few images are kept (None: none).
    """

    settings: BenchmarkSettings
    out_dir: Path
    store: CellStore
    stopwatch: Stopwatch
    started: str
    say: Callable[[str], None]
    plots: bool
    kept: KeptMaps | None = None


@dataclass(frozen=True)
class _Outcome:
    """What running the suites gave beside the stored cells.

    Attributes:
        suite_info: Per suite: its settings, models, pool, accuracy tables and devices.
        changes: The status lines about recomputed plugins and models.
        slic: The SLIC strategies this session's superpixel baselines used.
        quantus: The Quantus metric records (None: none asked).
        model_weights: Per suite, each model's weights hash
            (:func:`propgrad.harness.identity.weights_hash`, as the cell store binds it).
        suites: The suites run, whose validity checks the report runs (None: none).
    """

    suite_info: dict[str, dict[str, Any]]
    changes: list[str]
    slic: Mapping[str, Mapping[str, int]] | None = None
    quantus: list[dict[str, Any]] | None = None
    model_weights: Mapping[str, Mapping[str, str]] | None = None
    suites: Mapping[str, BenchmarkSuite] | None = None


def _report(session: _Session, outcome: _Outcome) -> dict[str, Any]:
    """Summarise the store's cells; write results.json, records.csv, report.md, report.html and the plots."""
    settings, out_dir, store, stopwatch = session.settings, session.out_dir, session.store, session.stopwatch
    started, plots, say, kept = session.started, session.plots, session.say, session.kept
    suite_info, changes, slic, quantus = outcome.suite_info, outcome.changes, outcome.slic, outcome.quantus
    model_weights = {suite: dict(models) for suite, models in (outcome.model_weights or {}).items()}
    with stopwatch.measure("reporting"), long_lived_frozen():  # the run's objects: not re-scanned by full passes
        fields = ("interventions", "score_only_interventions", "models", "pool", "images_per_class")
        layout = {k: {f: v[f] for f in fields} for k, v in suite_info.items()}
        records = [
            r for r in store.records() if r["kind"] in ("property", "baseline") and _in_layout(r, layout, settings)
        ]
        summary = summarise(
            records,
            layout,
            settings.baselines,
            n_resamples=settings.n_resamples,
            seed=settings.seed,
            alpha=settings.alpha,
            n_permutations=settings.n_permutations,
            correction=settings.correction,
        )
        # figures drawn by a forked process too when the user's torch threads allow a second core
        workers = threads_available()
        figures = write_plots(out_dir, records, summary, settings.baselines, kept, workers) if plots else []
        accuracy_tables = {name: info["accuracy_table"] for name, info in suite_info.items()}
        level_tables = {name: info["level_accuracy"] for name, info in suite_info.items()}
        model_order = {name: info["models"] for name, info in suite_info.items()}
        tables = SuiteTables(accuracy=accuracy_tables, model_order=model_order, levels=level_tables)
    this_session = stopwatch.summary()
    if store.n_appended:
        store.add_segment(
            store.n_appended, this_session, started=started, interrupted=False, slic_fallbacks=dict(slic or {})
        )
    slic_total: dict[str, dict[str, int]] = {}
    for seg in store.segments():  # every session that computed cells, so a resumed run counts them all
        for baseline, counts in (seg.get("slic_fallbacks") or {}).items():
            for strategy, n in counts.items():
                slic_total.setdefault(baseline, {})[strategy] = slic_total.get(baseline, {}).get(strategy, 0) + n
    computing = [seg["timing"] for seg in store.segments() if seg["cells_computed"] > 0]
    timing = combine_summaries(computing) if computing else combine_summaries([this_session])
    results = {
        "format": "propgrad-benchmark/1",
        "versions": {
            **collect_versions(device=_model_devices_of(suite_info), slic_fallbacks=slic_total),
            "model_weights": model_weights,  # two runs on other models are told apart (compare_results.py)
        },
        "seeds": {
            "run": settings.seed,
            "suites": settings.seed,
            "resampling": settings.seed,
            "permutation": "per intervention: propgrad.harness.cells.cell_seed(seed, suite, intervention)",
            "placebos": 'per cell: propgrad.harness.cells.cell_seed(seed, suite, intervention, "placebos", image)',
        },
        "settings": settings.to_dict(),
        "suites": suite_info,
        "summary": summary,
        "records": records,
        "timing": timing,
        "session_timing": this_session,
        "resume": {
            "cells_loaded": store.n_loaded,
            "cells_computed": store.n_appended,
            "dropped_partial_line": store.dropped_partial_line,
            "recomputed": list(changes),
        },
        "figures": [p.name for p in figures],
    }
    if settings.quantus_metrics:  # the Quantus columns (propgrad.harness.metric_columns)
        results["quantus"] = quantus or []
    # Timing depends on the machine (a ratio of sums that can round to 0 s is NaN): each timing block
    # keeps its own null reasons, so the top-level null_reasons, like the rest, follows the cells alone.
    for block in ("timing", "session_timing"):
        results[block] = strict_with_reasons(results[block])
    results = strict_with_reasons(results)
    validity = validity_of(outcome.suites or {}, results)  # on the data results.json holds, as `propgrad validate`
    results["validity"] = validity
    tables = replace(tables, validity=validity)
    write_json(out_dir / RESULTS_NAME, results)
    write_records_csv(out_dir / CSV_NAME, records, settings.baselines)
    timing_line = format_timing(timing, this_session)
    markdown = format_report(
        summary,
        settings.baselines,
        markdown=True,
        tables=replace(tables, weights=model_weights),
        header=f"{timing_line}\n\n"
        f"Also: [{HTML_NAME}]({HTML_NAME}) (every table and figure in one page), [{RESULTS_NAME}]({RESULTS_NAME}), "
        f"[{CSV_NAME}]({CSV_NAME}) (one row per image).",
        figures=[p.name for p in figures],
        settings=settings.to_dict(),
    )
    write_text(
        out_dir / REPORT_NAME, markdown + ("\n" + format_quantus_table(quantus, markdown=True) if quantus else "")
    )
    sections = report_sections(summary, settings.baselines, tables)
    write_benchmark_html(
        out_dir / HTML_NAME, results, sections, timing_line=timing_line, links=(RESULTS_NAME, CSV_NAME, REPORT_NAME)
    )
    text = format_report(summary, settings.baselines, tables=tables)
    say(text + ("\n" + format_quantus_table(quantus) if quantus else "") + "\n" + timing_line)
    say(
        f"wrote {out_dir / RESULTS_NAME}, {out_dir / CSV_NAME}, {out_dir / REPORT_NAME}, {out_dir / HTML_NAME} "
        f"and {len(figures)} figures"
    )
    return results


def validity_of(suites: Mapping[str, BenchmarkSuite], results: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Every suite's validity checks on a run's results, as ``results.json`` keeps them (``validity``).

    The checks and notes are the suite's own (:meth:`~propgrad.suites.base.BenchmarkSuite.validity_checks`
    with its default thresholds and :meth:`~propgrad.suites.base.BenchmarkSuite.validity_notes`, as
    ``propgrad validate RUN`` runs them on the finished folder). A suite that states no checks and
    no notes is left out.

    Args:
        suites: The suites of the run by name.
        results: The run's results (the data of ``results.json``).

    Returns:
        Per suite: ``checks`` (each ``{"name", "passed", "detail"}``), ``notes`` and ``error`` (why
        the checks could not be run on these results, e.g. a model they need is missing; else None).
    """
    out: dict[str, dict[str, Any]] = {}
    for name, suite in suites.items():
        try:
            checks, notes = suite.validity_checks(results), suite.validity_notes(results)
        except ValueError as exc:  # the results lack what a check reads (InvalidParameterError is one)
            out[name] = {"checks": [], "notes": [], "error": str(exc)}
            continue
        if checks or notes:
            out[name] = {"checks": [asdict(c) for c in checks], "notes": list(notes), "error": None}
    return out


def format_timing(timing: dict[str, float], session: dict[str, float]) -> str:
    """The timing line of the report: the sessions that computed the cells, then this session if it differs."""
    line = (
        f"timing: {timing['run_s']:.1f} s run ({timing.get('suite_setup_s', 0.0):.1f} s suite setup excluded), "
        f"{timing['model_and_attribution_s']:.1f} s in model forward + attribution calls, overhead ratio "
        f"{format_ratio(timing['overhead_ratio'])} (wall time of the run / time in those calls; 1 = no overhead)"
    )
    sessions = int(timing.get("sessions", 1))
    if sessions > 1 or session.get("model_and_attribution_s", 0.0) != timing["model_and_attribution_s"]:
        line += (
            f" (summed over the {sessions} session(s) that computed the cells; this session: "
            f"{session['run_s']:.1f} s run, {session['model_and_attribution_s']:.1f} s in calls)"
        )
    return line


def _in_layout(record: dict[str, Any], layout: Mapping[str, Any], settings: BenchmarkSettings) -> bool:
    key = record_key(record)
    info = layout.get(key.suite)
    if info is None or key.intervention not in info["interventions"] or key.model not in info["models"]:
        return False
    return key.baseline is None or key.baseline in settings.baselines
