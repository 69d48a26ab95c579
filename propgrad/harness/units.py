"""Units of work of the benchmark grid, and where a unit's results go.

A :class:`Unit` is one attribution block (:data:`propgrad.harness.runner.ATTRIBUTION_BLOCK`
consecutive pool images) of one (suite, intervention), for every model and baseline: the block's
missing property cells, then its missing baseline cells. It is the grain of the benchmark's own
batching (a block's ``baseline.attribute`` calls hold the same images whichever of its cells are
missing), so cutting the grid into units changes nothing in how a cell is computed; and on the
quick fur benchmark a unit takes seconds (16 images, a few hundred forward passes, six baselines),
on the full one about a minute: long enough that sending a unit to a worker costs little beside
it, short enough that a lost worker loses little and that two workers share a suite's work evenly.

A unit is planned by the driver (which holds the cell store, :meth:`SuiteRunner.plan
<propgrad.harness.runner.SuiteRunner.plan>`) and computed by :meth:`SuiteRunner.run_unit
<propgrad.harness.runner.SuiteRunner.run_unit>` into a :class:`UnitSink`: in the in-process run a
:class:`StoreSink` (cells are stored as they are made, as they always were), on a worker a
:class:`CollectingSink` whose :class:`UnitResult` travels back to the driver, which replays it
into its own :class:`StoreSink` (:meth:`UnitResult.replay`). The driver alone writes the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

import torch

from propgrad.harness.kept_maps import KeptMaps
from propgrad.harness.store import CellStore

Todo = dict[int, tuple[list[str], list[tuple[str, str]]]]
"""Per image of a unit: the models of its missing property cells, the (model, baseline) pairs of its missing
baseline cells."""


@dataclass(frozen=True)
class Unit:
    """One attribution block of one (suite, intervention): the cells it must compute and what it needs of the store.

    Attributes:
        suite: The suite's name.
        intervention: The intervention.
        number: The block's position in the suite's pool (block ``number`` holds pool images
            ``number * ATTRIBUTION_BLOCK`` onwards).
        block: The block's pool images (test-set indices), in order.
        todo: Per image with a missing cell: (image, models of missing property cells, (model, baseline)
            pairs of missing baseline cells).
        explained: (model, image, explained class) of the block's stored property cells whose model has
            missing baseline cells (the targets of the block's attribution calls).
        kept: The block's images whose sequences and maps are kept for the report's figures.
        n_sequences: How many intervention sequences the unit generates.
    """

    suite: str
    intervention: str
    number: int
    block: tuple[int, ...]
    todo: tuple[tuple[int, tuple[str, ...], tuple[tuple[str, str], ...]], ...]
    explained: tuple[tuple[str, int, int], ...] = ()
    kept: tuple[int, ...] = ()
    n_sequences: int = 0

    @property
    def label(self) -> str:
        """A short name of the unit for messages: ``suite/intervention block N (images a-b)``."""
        return f"{self.suite}/{self.intervention} block {self.number} (images {self.block[0]}-{self.block[-1]})"

    @property
    def n_cells(self) -> int:
        """How many cells the unit computes."""
        return sum(len(models) + len(pairs) for _, models, pairs in self.todo)


class UnitSink(Protocol):
    """Where a unit's results go as they are made (cells, kept sequences and maps, progress)."""

    def cells(self, records: list[Any]) -> None:
        """Finished cells (property or baseline records) of the unit."""

    def keep_sequence(self, suite: str, intervention: str, image: int, sequence: Any) -> None:
        """The sequence of a kept image (:mod:`propgrad.harness.kept_maps`)."""

    def keep_maps(
        self,
        suite: str,
        intervention: str,
        model: str,
        baseline: str,
        image: int,
        before: torch.Tensor,
        after: torch.Tensor,
    ) -> None:
        """The maps of a kept image, before its baseline cell is stored."""

    def generated(self, n: int) -> None:
        """``n`` intervention sequences were generated."""


class StoreSink:
    """The driver's sink: cells go to the store at once, kept maps to their folder, counts to the bars.

    Args:
        store: The run's cell store.
        kept_maps: Where kept sequences and maps are saved (None: nowhere).
        bars: Progress bars of sequences, property cells and baseline cells (as
            :meth:`~propgrad.harness.runner.SuiteRunner.progress_bars` makes them).
    """

    def __init__(self, store: CellStore, kept_maps: KeptMaps | None, bars: Sequence[Any]) -> None:
        self.store, self.kept_maps, self.bars = store, kept_maps, list(bars)

    def cells(self, records: list[Any]) -> None:
        self.store.append(list(records))
        n_property = sum(1 for r in records if r["kind"] == "property")
        self.bars[1].update(n_property)
        self.bars[2].update(len(records) - n_property)

    def keep_sequence(self, suite: str, intervention: str, image: int, sequence: Any) -> None:
        if self.kept_maps is not None:
            self.kept_maps.save_sequence(suite, intervention, image, sequence)

    def keep_maps(
        self,
        suite: str,
        intervention: str,
        model: str,
        baseline: str,
        image: int,
        before: torch.Tensor,
        after: torch.Tensor,
    ) -> None:
        if self.kept_maps is not None:
            self.kept_maps.save_maps(suite, intervention, model, baseline, image, before, after)

    def generated(self, n: int) -> None:
        self.bars[0].update(n)


@dataclass
class UnitResult:
    """What a unit computed elsewhere sends back to the driver, in the order it was made.

    Attributes:
        unit: The unit.
        events: ``("cells", records)``, ``("sequence", args)``, ``("maps", args)`` and
            ``("generated", n)``, in order (so a kept map is saved before its cell is stored).
        seconds: The worker's time per activity on this unit (:class:`~propgrad.harness.timing.Stopwatch`).
        slic_fallbacks: The SLIC strategies the unit's superpixel baselines used.
        worker: Who computed it (for messages; never part of a record).
    """

    unit: Unit
    events: list[tuple[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    slic_fallbacks: dict[str, dict[str, int]] = field(default_factory=dict)
    worker: str = ""

    def replay(self, sink: UnitSink) -> None:
        """Send everything the unit made to ``sink``, in order."""
        for kind, payload in self.events:
            if kind == "cells":
                sink.cells(payload)
            elif kind == "sequence":
                sink.keep_sequence(*payload)
            elif kind == "maps":
                sink.keep_maps(*payload)
            else:
                sink.generated(payload)


class CollectingSink:
    """A worker's sink: keeps everything in a :class:`UnitResult` for the driver.

    Args:
        unit: The unit being computed.
    """

    def __init__(self, unit: Unit) -> None:
        self.result = UnitResult(unit)

    def cells(self, records: list[Any]) -> None:
        self.result.events.append(("cells", list(records)))

    def keep_sequence(self, suite: str, intervention: str, image: int, sequence: Any) -> None:
        self.result.events.append(("sequence", (suite, intervention, image, sequence)))

    def keep_maps(
        self,
        suite: str,
        intervention: str,
        model: str,
        baseline: str,
        image: int,
        before: torch.Tensor,
        after: torch.Tensor,
    ) -> None:
        self.result.events.append(("maps", (suite, intervention, model, baseline, image, before, after)))

    def generated(self, n: int) -> None:
        self.result.events.append(("generated", n))
