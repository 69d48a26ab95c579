"""Bit-identical p-values: every case of the permutation grid gives exactly the stored results.

The data (``tests/stats/data/permutation_grid.json``) was written by ``tests/stats/permutation_grid.py``
with the code before the permutation test's execution paths moved behind one backend interface;
the grid reaches every path (compiled by shuffles and by column blocks, torch memoised, streamed
and by column blocks, sequential on both backends).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.stats.permutation_grid import DATA, cases, run, run_on_path

GRID: list[dict[str, Any]] = json.loads(DATA.read_text())


def test_grid_file_holds_every_case() -> None:
    assert [entry["case"] for entry in GRID] == cases()
    paths = {entry["case"]["path"] for entry in GRID}
    assert paths == {"compiled", "compiled_columns", "torch", "torch_columns"}
    assert {entry["case"]["sequential"] for entry in GRID} == {None, 10}


@pytest.mark.parametrize("entry", GRID, ids=lambda e: "-".join(str(v) for v in e["case"].values()))
def test_permutation_grid_is_bit_identical(entry: dict[str, Any]) -> None:
    assert run(entry["case"], run_on_path) == entry["result"]
