"""A benchmark cell is computed the same way however the work was chunked or interrupted.

The fakes here are sensitive to batch composition on purpose: the model's logits and the
baseline's maps both move with the mean of the whole batch they are given, as float rounding of
batched kernels does in real models (Occlusion, DeepLIFT, Guided Grad-CAM on CPU differ by up to
5e-7 between batch compositions). A harness that mixed images of other cells in one forward pass,
attributed other batches than the fixed blocks, or recomputed a cached map in another batch after
a resume, would give records that differ here, and these tests would fail.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from propgrad.baselines.base import AttributionBaseline
from propgrad.harness import BenchmarkSettings, run_benchmark
from propgrad.harness import runner as runner_module
from propgrad.harness.pipeline import STORE_NAME
from tests import fakes


class GreySuite(fakes.GreySuite):
    """Grey images darkened and brightened by batch-sensitive brightness models."""

    interventions = ("darken", "brighten")
    greys = (0.9, 0.8, 0.7, 0.62, 0.55, 0.45, 0.38, 0.3, 0.2, 0.1)
    cuts = {"cut50": 0.5, "cut40": 0.4}
    scales = {"cut50": 8.0, "cut40": 8.0}
    batch_weight = 0.01
    steps = 7
    final_factors = {"darken": 0.3, "brighten": 1.6}

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "steps": self.steps}


GREYS = GreySuite.greys


class Interrupted(KeyboardInterrupt):
    """The run was stopped (a KeyboardInterrupt is not caught as a baseline error)."""


class BatchSensitiveMap(AttributionBaseline):
    """The image plus a term from the batch's mean; raises :class:`Interrupted` after ``stop_after`` calls."""

    name = "batch_map"

    def __init__(self, stop_after: int | None = None) -> None:
        self.calls = 0
        self.stop_after = stop_after

    def attribute(self, model: nn.Module, images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.stop_after is not None and self.calls >= self.stop_after:
            raise Interrupted
        self.calls += 1
        return images * (1.0 + target[:, None, None, None]) + 0.1 * images.mean(dim=0, keepdim=True)


def settings(**overrides: Any) -> BenchmarkSettings:
    base: dict[str, Any] = dict(suites=("grey",), n_permutations=100, baselines=("batch_map",), n_resamples=3)
    base.update(overrides)
    return BenchmarkSettings(**base)


def records(out: Path, st: BenchmarkSettings, baseline: BatchSensitiveMap) -> list[dict[str, Any]]:
    results = run_benchmark(st, out, suites={"grey": GreySuite()}, baselines={"batch_map": baseline}, plots=False)
    return results["records"]


@pytest.fixture(scope="module", autouse=True)
def blocks_of_eight() -> Any:
    """The call counts below assume blocks of 8 pool images (this module's images make two blocks)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runner_module, "ATTRIBUTION_BLOCK", 8)
        yield


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return records(tmp_path_factory.mktemp("straight"), settings(chunk_size=4), BatchSensitiveMap())


# 12 attribute calls in all: per model, blocks of 8 and 2 images, their originals and finals under
# "darken", their finals under "brighten" (the originals' maps are reused)
@pytest.mark.parametrize("stop_after", [1, 3, 6, 10])
def test_resumed_run_matches_an_uninterrupted_one(
    uninterrupted: list[dict[str, Any]], tmp_path: Path, stop_after: int
) -> None:
    st = settings(chunk_size=4)
    with pytest.raises(Interrupted):
        records(tmp_path, st, BatchSensitiveMap(stop_after=stop_after))
    resumed = BatchSensitiveMap()
    again = records(tmp_path, st, resumed)
    # the rest, and maps the stopped run had computed but not stored (the block being attributed,
    # cached originals' maps) again
    assert runner_module.ATTRIBUTION_BLOCK == 8 and resumed.calls >= 12 - stop_after
    assert len(again) == len(uninterrupted) == 2 * 2 * len(GREYS) * 2
    assert again == uninterrupted  # bit for bit: every score, p-value and curve


@pytest.mark.parametrize("chunk_size", [1, 3, 32])
def test_records_do_not_depend_on_how_many_images_run_together(
    uninterrupted: list[dict[str, Any]], tmp_path: Path, chunk_size: int
) -> None:
    assert records(tmp_path, settings(chunk_size=chunk_size), BatchSensitiveMap()) == uninterrupted


def test_a_half_written_block_is_recomputed_whole(uninterrupted: list[dict[str, Any]], tmp_path: Path) -> None:
    st = settings(chunk_size=4)
    records(tmp_path, st, BatchSensitiveMap())
    path = tmp_path / STORE_NAME
    lines = path.read_text().splitlines(keepends=True)
    last = max(n for n, line in enumerate(lines) if '"kind": "baseline"' in line)
    path.write_text("".join(lines[:last]) + lines[last][:20])  # died writing the block's last cell
    again = BatchSensitiveMap()
    assert records(tmp_path, st, again) == uninterrupted
    assert again.calls == 3  # the block's originals (their cached maps were lost), its finals and half-way images


def test_a_property_cell_does_not_depend_on_which_other_images_are_in_the_pool(
    uninterrupted: list[dict[str, Any]], tmp_path: Path
) -> None:
    small = records(tmp_path, settings(chunk_size=4, pool_per_class=2), BatchSensitiveMap())
    by_key = {tuple(r["key"]): r for r in uninterrupted}
    props = [r for r in small if r["kind"] == "property"]
    assert 0 < len(props) < len(uninterrupted) / 2
    assert all(r == by_key[tuple(r["key"])] for r in props)
