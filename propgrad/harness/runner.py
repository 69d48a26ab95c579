"""Running the "predict the flip" benchmark: every (suite, intervention, model, image, method) cell.

Per suite and intervention, the test images are processed in attribution blocks (units, below):
each image's sequence (and, when the suite has one, its held-out realisation and, when the run has
placebos, its M placebo sequences) is generated once and shared by every model; every model runs
on the original and every step (softmax); the property cell (score, p-values, the labels and scores of every flip
definition, reference) is stored; then every baseline runs on the original, the half-way and the
final image of each sequence with the explained class as target (none for the suite's
score-only interventions). Finished cells go to a :class:`~propgrad.harness.store.CellStore` at
once, so a rerun skips them.

A cell is computed the same way however the work is chunked and wherever a run was
interrupted: float results of batched kernels (convolutions, Occlusion's and DeepLIFT's stacked
perturbations) depend on which other images share a batch. So each image's forward pass holds
only that image's original and steps, its held-out realisation and its placebos' first round (further
placebo rounds run in passes of their own), and
``baseline.attribute`` runs on fixed *blocks* of :data:`ATTRIBUTION_BLOCK` consecutive pool images:
one call on the block's originals (reused by every intervention), one on its half-way and one on its
final images per intervention. A block's calls hold the same
images whichever of its cells are missing; a resumed run regenerates the sequences of a
half-finished block's other images rather than attribute the missing ones in a smaller batch.

The work is cut into *units* (:class:`~propgrad.harness.units.Unit`): one attribution block of one
intervention, its property cells and then its baseline cells. The in-process run computes the units in
order, inline (:meth:`SuiteRunner.run`); an executor (:mod:`propgrad.harness.executors`) computes
the same units elsewhere with :meth:`SuiteRunner.run_unit`, the one function that computes a unit.
"""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import nn

from propgrad.baselines.base import AttributionBaseline
from propgrad.core.collector import long_lived_frozen
from propgrad.core.forward import model_device
from propgrad.core.progress import progress_bar
from propgrad.errors import InvalidParameterError
from propgrad.explain.scoring import (
    PREDICTED,
    first_round,
    placebo_tests,
    score_outputs_together,
    score_sequences,
    sequence_outputs,
)
from propgrad.explain.scoring import PropertyAxis as ScoreAxis
from propgrad.harness.cells import (
    BaselineRecord,
    CellKey,
    CellRecord,
    PropertyAxis,
    baseline_key,
    baseline_record,
    cell_seed,
    property_key,
    property_record,
)
from propgrad.harness.definitions import half_index
from propgrad.harness.kept_maps import KeptMaps, kept_images
from propgrad.harness.map_cache import MapCache
from propgrad.harness.settings import BenchmarkSettings, PoolSize
from propgrad.harness.store import CellStore
from propgrad.harness.timing import Stopwatch, TimedModule
from propgrad.harness.units import StoreSink, Todo, Unit, UnitSink
from propgrad.sources.base import InterventionSequence
from propgrad.sources.placebo_sequences import PlaceboDraw, PlaceboPool
from propgrad.stats.flips import flips_along
from propgrad.stats.settings import TestSettings
from propgrad.suites.base import BenchmarkSuite

ATTRIBUTION_BLOCK = 16
"""Pool images per ``baseline.attribute`` call. Part of how cells are computed: changing it
changes the last float digits of batch-sensitive baselines (so it is a constant, not a setting).
16 keeps the batch sizes of the earlier mixed batching (up to 8 originals and 8 finals per call);
on the default run, 8 cost 271 s against 239 s for 16 (idle, two cores)."""

Maps = list[torch.Tensor | str]
"""One map per image of a block, or the error message of an image whose map failed."""


def select_pool(labels: torch.Tensor, per_class: int | None, seed: int) -> list[int]:
    """Indices of the evaluated test images: ``per_class`` per class (seeded), or all if None."""
    labels_np = np.asarray(labels.detach().cpu()).reshape(-1)
    if per_class is None:
        return list(range(labels_np.size))
    gen = torch.Generator().manual_seed(int(seed))
    chosen: list[int] = []
    for value in np.unique(labels_np):
        idx = np.flatnonzero(labels_np == value)
        order = torch.randperm(idx.size, generator=gen).numpy()
        chosen.extend(int(i) for i in idx[order[:per_class]])
    return sorted(chosen)


def pool_size(settings: BenchmarkSettings, suite: BenchmarkSuite) -> int | None:
    """The pool size per class of ``suite`` under ``settings``."""
    if isinstance(settings.pool_per_class, PoolSize):
        return int(suite.images_per_class())
    return settings.pool_per_class


@dataclass(frozen=True)
class Outputs:
    """Where a run's results go and how it shows progress.

    Attributes:
        store: The cell store (None on a worker, whose results the driver stores).
        stopwatch: Where the run's time is measured.
        kept_maps: Where the maps and sequences of a few images are kept (None: none).
        show_progress: Progress bars.
    """

    store: CellStore | None
    stopwatch: Stopwatch
    kept_maps: KeptMaps | None = None
    show_progress: bool = False


class SuiteRunner:
    """Computes the missing cells of one suite and stores them.

    The driver of a run (which holds the store) plans the units (:meth:`plan`); whoever computes a unit
    (the driver itself, or a worker of an executor holding a runner without a store) calls :meth:`run_unit`.

    Args:
        name: The suite's name (first part of every key).
        suite: The constructed suite.
        baselines: Constructed baselines by name.
        settings: The run's settings.
        store: Where finished cells go (None on a worker, which only computes units).
        stopwatch: Accumulates forward / attribution / intervention time.
        show_progress: Show progress bars.
        kept_maps: Where the maps and sequences of a few images per class are kept for the
            report's figures (:mod:`propgrad.harness.kept_maps`); None keeps none.
        device: Where the models run (moved there by :meth:`prepare`); None leaves them where the suite put them.

    Attributes:
        slic_fallbacks: Per superpixel baseline, how many images each SLIC strategy segmented
            in this session (read from the baselines' ``last_segmentation_info``).
    """

    def __init__(
        self,
        name: str,
        suite: BenchmarkSuite,
        baselines: Mapping[str, AttributionBaseline],
        settings: BenchmarkSettings,
        outputs: Outputs,
        device: str | None = None,
    ) -> None:
        self.name, self.suite, self.baselines = name, suite, dict(baselines)
        self.kept_maps = outputs.kept_maps
        self.kept: frozenset[int] = frozenset()  # pool images whose maps are kept (set by prepare)
        self.slic_fallbacks: dict[str, dict[str, int]] = {}
        self.settings, self.store, self.stopwatch = settings, outputs.store, outputs.stopwatch
        self.show_progress = outputs.show_progress
        self.device = device
        # Maps of each block's original images by (model, baseline, block, targets), bounded in bytes
        # (propgrad.harness.map_cache): a suite with several interventions attributes them once while
        # they fit, and a forgotten block (or a resumed run) recomputes them in the same block, bit for bit.
        self._maps_before = MapCache()
        self.models: dict[str, nn.Module] = {}
        self.images = torch.empty(0)
        self.labels = torch.empty(0, dtype=torch.long)
        self.pool: list[int] = []

    def prepare(self) -> None:
        """Load the suite's models and test set (training them on a cold cache), on :attr:`device` if set."""
        with self.stopwatch.measure("suite_setup"):
            self.models = dict(self.suite.models())
            self.images, self.labels = self.suite.test_set()
            if self.device is not None:
                self.models = {name: model.to(self.device) for name, model in self.models.items()}
        if not self.models:
            raise InvalidParameterError(f"suite {self.name!r} has no models")
        self.pool = select_pool(self.labels, pool_size(self.settings, self.suite), self.settings.seed)
        self.kept = frozenset(kept_images(self.pool, self.labels)) if self.kept_maps is not None else frozenset()

    def run(self) -> None:
        """Compute and store every missing cell of every intervention (after :meth:`prepare`), unit by unit, inline."""
        for intervention in self.suite.interventions:
            units = self.plan(intervention)
            bars = self.progress_bars(f"{self.name}/{intervention}", units)
            try:
                sink = StoreSink(self._store(), self.kept_maps, bars)
                for unit in units:
                    self.run_unit(unit, sink)
            finally:
                for bar in bars:
                    bar.close()

    def _store(self) -> CellStore:
        if self.store is None:  # internal: a worker's runner computes units, it never plans or stores
            raise RuntimeError(f"the runner of suite {self.name!r} has no cell store")
        return self.store

    def progress_bars(self, label: str, units: list[Unit]) -> list[Any]:
        """Bars of sequences generated, property cells and baseline cells of ``units`` (:class:`StoreSink`'s)."""
        totals = [
            sum(u.n_sequences for u in units),
            sum(len(models) for u in units for _, models, _ in u.todo),
            sum(len(pairs) for u in units for _, _, pairs in u.todo),
        ]
        return [
            progress_bar(total, f"{label} {what}", enabled=self.show_progress, position=k)
            for k, (total, what) in enumerate(zip(totals, ("interventions", "inference", "attribution")))
        ]

    def _missing(self, intervention: str, index: int) -> tuple[list[str], list[tuple[str, str]]]:
        store = self._store()
        models = [m for m in self.models if property_key(self.name, intervention, m, index).as_json() not in store]
        if intervention in self.suite.score_only_interventions:
            return models, []
        pairs = [
            (m, b)
            for m in self.models
            for b in self.baselines
            if not store.is_finished(baseline_key(self.name, intervention, m, index, b).as_json())  # retry errors
        ]
        return models, pairs

    def plan(self, intervention: str) -> list[Unit]:
        """The units of ``intervention`` that hold missing cells (after :meth:`prepare`; reads the store).

        One unit per attribution block of :data:`ATTRIBUTION_BLOCK` consecutive pool images with a
        missing cell; it carries the explained classes of the block's stored property cells that its
        baseline cells need as targets, so it is computed without the store.
        """
        todo = {i: self._missing(intervention, i) for i in self.pool}
        todo = {i: t for i, t in todo.items() if t[0] or t[1]}
        size = ATTRIBUTION_BLOCK
        units = []
        for number, start in enumerate(range(0, len(self.pool), size)):
            block = self.pool[start : start + size]
            if not any(i in todo for i in block):
                continue
            attributed = {m for i in block if i in todo for m, _ in todo[i][1]}
            explained = []
            for m in self.models:
                for i in block:
                    prop = self._stored(property_key(self.name, intervention, m, i))
                    if m in attributed and prop is not None:
                        explained.append((m, i, int(prop["explained"])))
            units.append(
                Unit(
                    suite=self.name,
                    intervention=intervention,
                    number=number,
                    block=tuple(block),
                    todo=tuple((i, tuple(todo[i][0]), tuple(todo[i][1])) for i in block if i in todo),
                    explained=tuple(explained),
                    kept=tuple(i for i in block if i in self.kept),
                    n_sequences=len(_needing_sequences(block, todo)),
                )
            )
        return units

    def run_unit(self, unit: Unit, sink: UnitSink) -> None:
        """Compute one unit: its images' sequences, then its property cells, then its baseline cells, into ``sink``.

        Needs no store (the unit carries what it needs of it): the same computation wherever it runs.
        """
        intervention, block = unit.intervention, list(unit.block)
        todo = {i: (list(models), list(pairs)) for i, models, pairs in unit.todo}
        explained = {(m, i): target for m, i, target in unit.explained}
        sequences = {}
        for i in _needing_sequences(block, todo):
            with self.stopwatch.measure("intervention"):
                sequences[i] = self.suite.intervene(intervention, i)
            if i in unit.kept:
                sink.keep_sequence(self.name, intervention, i, sequences[i])
            sink.generated(1)
        self._infer(intervention, todo, sequences, explained, sink)
        steps = {i: _attributed_steps(seq) for i, seq in sequences.items()}
        del sequences
        self._attribute(intervention, block, todo, steps, explained, frozenset(unit.kept), sink)

    def _stored(self, key: CellKey) -> CellRecord | None:
        """The finished record of ``key``, or None."""
        return self._store().get(key.as_json())  # type: ignore[return-value]

    def _infer(
        self,
        intervention: str,
        todo: Todo,
        sequences: dict[int, InterventionSequence],
        explained: dict[tuple[str, int], int],
        sink: UnitSink,
    ) -> None:
        test = replace(self.settings.cell_test, seed=cell_seed(self.settings.seed, self.name, intervention))
        score_only = intervention in self.suite.score_only_interventions
        for i, (models, _) in todo.items():
            if not models:
                continue
            sequence = sequences[i]
            with self.stopwatch.measure("intervention"):  # held-out labels serve flip tables only
                held_out = None if score_only else self.suite.held_out_realisation(intervention, i)
                placebos = self._placebos(intervention, i, sequence)
                others = [self._realisation(intervention, i, r) for r in range(1, self.settings.realisations)]
            records = [
                self._property_cell(intervention, m, i, sequence, held_out, placebos, others, test) for m in models
            ]
            for m, record in zip(models, records):
                explained[(m, i)] = int(record["explained"])
            sink.cells(list(records))

    def _realisation(self, intervention: str, index: int, number: int) -> InterventionSequence:
        """Realisation ``number`` (>= 1) of the image's intervention, for runs with R > 1."""
        sequence = self.suite.realisation(intervention, index, number)
        if sequence is None:
            raise InvalidParameterError(
                f"suite {self.name!r} has no realisation {number} of {intervention!r} (realisations="
                f"{self.settings.realisations} needs BenchmarkSuite.realisation() to draw them); "
                "run with realisations=1"
            )
        return sequence

    def _placebos(self, intervention: str, index: int, sequence: InterventionSequence) -> PlaceboPool | None:
        """The pool of the image's placebo sequences, seeded per cell and shared by its models (drawn on demand:
        as many as the model that needs most); None without placebos or for a periodic sequence."""
        test = self.settings.cell_test
        if not test.n_placebos or sequence.periodic:
            return None
        seed = cell_seed(self.settings.seed, self.name, intervention, "placebos", index)
        return PlaceboPool(sequence, PlaceboDraw(test.n_placebos, seed=seed, variant=test.placebo))

    def _property_cell(
        self,
        intervention: str,
        model_name: str,
        index: int,
        sequence: InterventionSequence,
        held_out: InterventionSequence | None,
        placebos: PlaceboPool | None,
        others: list[InterventionSequence],
        test: TestSettings,
    ) -> CellRecord:
        """Score one image's sequence on one model: the test, the held-out flips, the placebo test and
        the other realisations' tests (on the same class), under the run's checked settings with the
        cell's seed (``test``).

        One image per call: its forward batches hold nothing of other images.
        """
        model = TimedModule(self.models[model_name], self.stopwatch)
        original = self.images[index][None]
        run = self.settings.cell_run
        with self.stopwatch.measure("scoring"):
            # one forward pass for the original and the sequence, the held-out realisation (only its flips are
            # read) and the placebo test's first round: a fuller batch than three
            real = [sequence] if held_out is None else [sequence, held_out]
            (first,) = first_round([placebos], test, original.device)
            blocks = sequence_outputs(model, original.expand(len(real), -1, -1, -1), real, run, extra=[first])
            (scored,) = score_outputs_together(blocks[:1], [PREDICTED], [ScoreAxis.of(sequence, test.per)], test)
            held_out_flips = None if held_out is None else flips_along(blocks[1])
            realised = []
            if others:
                originals = original.expand(len(others), -1, -1, -1)
                realised = score_sequences(model, originals, others, [scored.target] * len(others), run, test)
            placebo = None
            if placebos is not None:
                (placebo,) = placebo_tests(model, original, [placebos], [scored], run, test, first=[blocks[-1]])
        return property_record(
            property_key(self.name, intervention, model_name, index),
            scored,
            int(self.labels[index]),
            axis=PropertyAxis.of(sequence),
            held_out=held_out_flips,
            placebo=placebo,
            realisations=realised,
        )

    def _attribute(
        self,
        intervention: str,
        block: list[int],
        todo: Todo,
        steps: dict[int, tuple[torch.Tensor | None, torch.Tensor]],
        explained: dict[tuple[str, int], int],
        kept: frozenset[int],
        sink: UnitSink,
    ) -> None:
        """Attribute the original, half-way and final images of the block for its missing baseline cells."""
        for model_name, model in self.models.items():
            for base_name, baseline in self.baselines.items():
                wanted = [i for i in block if i in todo and (model_name, base_name) in todo[i][1]]
                if not wanted:
                    continue
                assert all((model_name, i) in explained for i in block), "property cells come first"
                targets = [explained[(model_name, i)] for i in block]
                originals = [self.images[i] for i in block]
                before = self._maps_before.get(
                    (model_name, base_name, tuple(block), tuple(targets)),
                    partial(self._block_maps, model, baseline, base_name, originals, targets),
                )
                after = self._block_maps(model, baseline, base_name, [steps[i][1] for i in block], targets)
                halves: list[torch.Tensor | str | None] = [None] * len(block)
                if all(steps[i][0] is not None for i in block):
                    halfway = [steps[i][0] for i in block]
                    halves = list(self._block_maps(model, baseline, base_name, halfway, targets))  # type: ignore[arg-type]
                records = [
                    _baseline_cell(baseline_key(self.name, intervention, model_name, i, base_name), b, a, h)
                    for i, b, a, h in zip(block, before, after, halves)
                    if i in wanted
                ]
                for i, b, a in zip(block, before, after):  # before their cells are stored, so a stored cell has them
                    if i in wanted and i in kept and isinstance(b, torch.Tensor) and isinstance(a, torch.Tensor):
                        sink.keep_maps(self.name, intervention, model_name, base_name, i, b, a)
                sink.cells(list(records))

    def _block_maps(
        self, model: nn.Module, baseline: AttributionBaseline, name: str, images: list[torch.Tensor], targets: list[int]
    ) -> Maps:
        """The maps of one block's images in one call; if it fails, each image alone (to isolate the failure)."""
        device = model_device(model, self.images.device)
        inputs = torch.stack([image.to(self.images.device) for image in images]).to(device)
        target = torch.tensor(targets, dtype=torch.long, device=device)
        try:
            with self.stopwatch.measure("attribution"), self.stopwatch.measure(f"attribution/{name}"):
                maps = baseline.attribute(model, inputs, target)
            for info in getattr(baseline, "last_segmentation_info", None) or []:  # LIME, Kernel SHAP
                counts = self.slic_fallbacks.setdefault(name, {})
                counts[str(info.get("strategy"))] = counts.get(str(info.get("strategy")), 0) + 1
            return list(_check_maps(maps, len(images), name))
        except Exception as exc:  # one failing baseline never takes the run down
            if len(images) == 1:
                return [f"{type(exc).__name__}: {exc}"]
            return [
                m
                for j in range(len(images))
                for m in self._block_maps(model, baseline, name, images[j : j + 1], targets[j : j + 1])
            ]


def _needing_sequences(block: list[int], todo: Mapping[int, tuple[list[str], list[tuple[str, str]]]]) -> list[int]:
    """Images of ``block`` whose sequences are needed: every image if a baseline cell is missing
    (the block's final images are attributed together), else those with missing property cells."""
    if any(todo[i][1] for i in block if i in todo):
        return list(block)
    return [i for i in block if i in todo]


def _attributed_steps(sequence: InterventionSequence) -> tuple[torch.Tensor | None, torch.Tensor]:
    """The half-way image (None below three steps) and the final image, which the baselines see."""
    half = half_index(len(sequence))
    return (None if half is None else sequence.images[half]), sequence.images[-1]


def _baseline_cell(
    key: CellKey, before: torch.Tensor | str, after: torch.Tensor | str, half: torch.Tensor | str | None
) -> BaselineRecord:
    for maps in (before, after, half):
        if isinstance(maps, str):
            return baseline_record(key, None, None, maps)
    return baseline_record(key, before, after, None, map_half=half)  # type: ignore[arg-type]


def _check_maps(maps: Any, expected: int, name: str) -> torch.Tensor:
    if not isinstance(maps, torch.Tensor) or maps.dim() < 1 or maps.shape[0] != expected:
        got = tuple(maps.shape) if isinstance(maps, torch.Tensor) else type(maps).__name__
        raise InvalidParameterError(f"baseline {name!r} must return maps with first dimension {expected}, got {got}")
    return maps.detach().float().cpu()


def run_suites(
    suites: Mapping[str, BenchmarkSuite],
    baselines: Mapping[str, AttributionBaseline],
    settings: BenchmarkSettings,
    outputs: Outputs,
    *,
    on_prepared: Callable[[str, SuiteRunner], None] | None = None,
    executor: Executor | None = None,
    device: str | None = None,
    say: Callable[[str], None] | None = None,
) -> dict[str, SuiteRunner]:
    """Run every suite (in order) and return the runners, which hold models, labels and pools.

    ``outputs``: the store, stopwatch, kept maps and progress bars every runner uses.
    ``executor``: where the units run (:mod:`propgrad.harness.executors`); None computes them here, inline.
    ``device``: where the models run (None: where the suites put them). ``say``: status lines (failed units).

    Raises:
        UnitsFailedError: With an executor, units failed (after every suite ran; the others are stored).
    """
    runners = {}
    failures: list[str] = []
    for name, suite in suites.items():
        local_device = device if executor is None else None  # with an executor, the workers run the models
        runner = SuiteRunner(name, suite, baselines, settings, outputs, local_device)
        runner.prepare()
        if on_prepared is not None:
            on_prepared(name, runner)
        if executor is None:
            with long_lived_frozen():  # the modules, models and test set: not re-scanned by every full pass
                runner.run()
        else:
            from propgrad.harness.executors import run_on_executor

            failures += run_on_executor(runner, executor, device=device, say=say)
        runners[name] = runner
    if failures:
        from propgrad.harness.executors import UnitsFailedError

        raise UnitsFailedError(
            f"{len(failures)} unit(s) failed and their cells are not stored (the others are; a rerun computes "
            f"them): {failures[0]}" + (f"; and {len(failures) - 1} more" if len(failures) > 1 else ""),
            failures,
        )
    return runners
