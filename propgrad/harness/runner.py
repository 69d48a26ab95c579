"""Running the "predict the flip" benchmark: every (suite, intervention, model, image, method) cell.

Per suite and intervention, the test images are processed in chunks: each image's sequence is
generated once and shared by every model; every model runs on every step (batched, softmax);
the property cell (score, p-value, flips, reference) is stored; then every baseline runs on the
original and the final image of each sequence with the explained class as target. Finished cells
go to a :class:`~propgrad.harness.store.CellStore` at once, so a rerun skips them.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import nn

from propgrad.baselines.base import AttributionBaseline
from propgrad.forward import model_device
from propgrad.harness.cells import baseline_key, baseline_record, cell_seed, property_key, property_record
from propgrad.harness.settings import POOL_IMAGES_PER_CLASS, BenchmarkSettings
from propgrad.harness.store import CellStore
from propgrad.harness.timing import Stopwatch, TimedModule
from propgrad.progress import progress_bar
from propgrad.scoring import PREDICTED, score_sequences
from propgrad.sources.base import InterventionSequence
from propgrad.suites.base import BenchmarkSuite


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
    if settings.pool_per_class == POOL_IMAGES_PER_CLASS:
        return int(suite.images_per_class())
    return settings.pool_per_class  # type: ignore[return-value]


class SuiteRunner:
    """Computes the missing cells of one suite and stores them.

    Args:
        name: The suite's name (first part of every key).
        suite: The constructed suite.
        baselines: Constructed baselines by name.
        settings: The run's settings.
        store: Where finished cells go.
        stopwatch: Accumulates forward / attribution / intervention time.
        show_progress: Show progress bars.
    """

    def __init__(
        self,
        name: str,
        suite: BenchmarkSuite,
        baselines: Mapping[str, AttributionBaseline],
        settings: BenchmarkSettings,
        store: CellStore,
        stopwatch: Stopwatch,
        show_progress: bool = False,
    ) -> None:
        self.name, self.suite, self.baselines = name, suite, dict(baselines)
        self.settings, self.store, self.stopwatch = settings, store, stopwatch
        self.show_progress = show_progress
        # Maps of the original images by (model, baseline, image): they do not depend on the
        # intervention, so a suite with several interventions attributes each original once.
        self._maps_before: dict[tuple[str, str, int], torch.Tensor] = {}
        self.models: dict[str, nn.Module] = {}
        self.images = torch.empty(0)
        self.labels = torch.empty(0, dtype=torch.long)
        self.pool: list[int] = []

    def prepare(self) -> None:
        """Load the suite's models and test set (training them on a cold cache)."""
        with self.stopwatch.measure("suite_setup"):
            self.models = dict(self.suite.models())
            self.images, self.labels = self.suite.test_set()
        if not self.models:
            raise ValueError(f"suite {self.name!r} has no models")
        self.pool = select_pool(self.labels, pool_size(self.settings, self.suite), self.settings.seed)

    def run(self) -> None:
        """Compute and store every missing cell of every intervention (after :meth:`prepare`)."""
        for intervention in self.suite.interventions:
            self._run_intervention(intervention)

    def _missing(self, intervention: str, index: int) -> tuple[list[str], list[tuple[str, str]]]:
        models = [m for m in self.models if property_key(self.name, intervention, m, index) not in self.store]
        pairs = [
            (m, b)
            for m in self.models
            for b in self.baselines
            if baseline_key(self.name, intervention, m, index, b) not in self.store
        ]
        return models, pairs

    def _run_intervention(self, intervention: str) -> None:
        todo = {i: self._missing(intervention, i) for i in self.pool}
        todo = {i: t for i, t in todo.items() if t[0] or t[1]}
        label = f"{self.name}/{intervention}"
        totals = [len(todo), sum(len(t[0]) for t in todo.values()), sum(len(t[1]) for t in todo.values())]
        bars = [
            progress_bar(total, f"{label} {what}", enabled=self.show_progress, position=k)
            for k, (total, what) in enumerate(zip(totals, ("interventions", "inference", "attribution")))
        ]
        try:
            indices = list(todo)
            for start in range(0, len(indices), self.settings.chunk_size):
                chunk = {i: todo[i] for i in indices[start : start + self.settings.chunk_size]}
                sequences = {}
                for i in chunk:
                    with self.stopwatch.measure("intervention"):
                        sequences[i] = self.suite.intervene(intervention, i)
                    bars[0].update(1)
                self._infer(intervention, chunk, sequences, bars[1])
                finals = {i: seq.images[-1] for i, seq in sequences.items()}
                del sequences
                self._attribute(intervention, chunk, finals, bars[2])
        finally:
            for bar in bars:
                bar.close()

    def _infer(
        self, intervention: str, chunk: dict[int, Any], sequences: dict[int, InterventionSequence], bar: Any
    ) -> None:
        for model_name, model in self.models.items():
            wanted = [i for i, (models, _) in chunk.items() if model_name in models]
            if not wanted:
                continue
            with self.stopwatch.measure("scoring"):
                scores = score_sequences(
                    TimedModule(model, self.stopwatch),
                    torch.stack([self.images[i] for i in wanted]),
                    [sequences[i] for i in wanted],
                    targets=[PREDICTED] * len(wanted),
                    output_transform="softmax",
                    n_permutations=self.settings.n_permutations,
                    alpha=self.settings.alpha,
                    seed=cell_seed(self.settings.seed, self.name, intervention),
                    batch_size=self.settings.forward_batch_size,
                )
            records = [
                property_record(
                    property_key(self.name, intervention, model_name, i),
                    scored,
                    int(self.labels[i]),
                    periodic=sequences[i].periodic,
                    property_name=sequences[i].property_name,
                    unit=sequences[i].unit,
                )
                for i, scored in zip(wanted, scores)
            ]
            self.store.append(records)
            bar.update(len(records))

    def _attribute(self, intervention: str, chunk: dict[int, Any], finals: dict[int, torch.Tensor], bar: Any) -> None:
        for model_name, model in self.models.items():
            for base_name, baseline in self.baselines.items():
                wanted = [i for i, (_, pairs) in chunk.items() if (model_name, base_name) in pairs]
                size = self.settings.attribution_batch_size
                for start in range(0, len(wanted), size):
                    batch = wanted[start : start + size]
                    records = self._attribute_batch(intervention, model_name, model, base_name, baseline, batch, finals)
                    self.store.append(records)
                    bar.update(len(records))

    def _attribute_batch(
        self,
        intervention: str,
        model_name: str,
        model: nn.Module,
        base_name: str,
        baseline: AttributionBaseline,
        batch: list[int],
        finals: dict[int, torch.Tensor],
    ) -> list[dict[str, Any]]:
        keys = [baseline_key(self.name, intervention, model_name, i, base_name) for i in batch]
        targets = []
        for i in batch:
            prop = self.store.get(property_key(self.name, intervention, model_name, i))
            assert prop is not None, "property cells are stored before attribution"
            targets.append(prop["explained"])
        device = model_device(model, self.images.device)
        fresh = [i for i in batch if (model_name, base_name, i) not in self._maps_before]
        inputs = torch.stack([self.images[i] for i in fresh] + [finals[i].to(self.images.device) for i in batch])
        target = torch.tensor([targets[batch.index(i)] for i in fresh] + targets, dtype=torch.long, device=device)
        try:
            with self.stopwatch.measure("attribution"), self.stopwatch.measure(f"attribution/{base_name}"):
                maps = baseline.attribute(model, inputs.to(device), target)
            maps = _check_maps(maps, inputs.shape[0], base_name)
        except Exception as exc:  # one failing baseline never takes the run down
            if len(batch) > 1:  # isolate the failing image(s)
                return [
                    r
                    for i in batch
                    for r in self._attribute_batch(intervention, model_name, model, base_name, baseline, [i], finals)
                ]
            return [baseline_record(keys[0], None, None, f"{type(exc).__name__}: {exc}")]
        for j, i in enumerate(fresh):
            self._maps_before[(model_name, base_name, i)] = maps[j].clone()  # not a view of the batch
        after = maps[len(fresh) :]
        return [
            baseline_record(keys[j], self._maps_before[(model_name, base_name, i)], after[j], None)
            for j, i in enumerate(batch)
        ]


def _check_maps(maps: Any, expected: int, name: str) -> torch.Tensor:
    if not isinstance(maps, torch.Tensor) or maps.dim() < 1 or maps.shape[0] != expected:
        got = tuple(maps.shape) if isinstance(maps, torch.Tensor) else type(maps).__name__
        raise ValueError(f"baseline {name!r} must return maps with first dimension {expected}, got {got}")
    return maps.detach().float().cpu()


def run_suites(
    suites: Mapping[str, BenchmarkSuite],
    baselines: Mapping[str, AttributionBaseline],
    settings: BenchmarkSettings,
    store: CellStore,
    stopwatch: Stopwatch,
    *,
    show_progress: bool = False,
    on_prepared: Callable[[str, SuiteRunner], None] | None = None,
) -> dict[str, SuiteRunner]:
    """Run every suite (in order) and return the runners, which hold models, labels and pools."""
    runners = {}
    for name, suite in suites.items():
        runner = SuiteRunner(name, suite, baselines, settings, store, stopwatch, show_progress)
        runner.prepare()
        if on_prepared is not None:
            on_prepared(name, runner)
        runner.run()
        runners[name] = runner
    return runners
