"""The permutation grid: p-values, statistics and significance of ``permutation_test`` over a grid of cases.

``python -m tests.stats.permutation_grid`` (from the repository root) writes
``tests/stats/data/permutation_grid.json``; ``tests/stats/test_permutation_grid.py`` recomputes every
case and asserts bit-identical equality (floats are stored as ``float.hex()``). The file was written
by the code before the backend restructuring of issue 18, so the test proves the restructuring kept
every p-value; it holds permutation stream 1 (the only stream then), so it also proves that stream 1
still reproduces the results written before stream 2 became the default.

The grid covers the statistics gradient and pearson, N in {5, 31, 200}, C in {1, 3, 40}, K in
{1, 99, 1000}, seeds {0, 7}, periodic False/True, unit and non-uniform values, the fixed-K and the
sequential (h = 10) test, and every execution path: compiled by shuffles, compiled by column blocks,
torch with memoised permutations, torch streamed, torch by column blocks, and sequential on both
backends. Each case runs twice after the permutation memo is cleared: the first call streams its
permutations, the second uses the memoised matrix; both must give the stored bits.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from propgrad.stats.permutation import clear_cache, permutation_test

DATA = Path(__file__).parent / "data" / "permutation_grid.json"
PATHS = ("compiled", "compiled_columns", "torch", "torch_columns")
"""How a case is run: the compiled CPU kernels or torch, with the default memory budget or one so
small that the columns are processed in blocks."""
DTYPES = ("float32", "float64")
"""The outputs' dtype (float64 shows differences in the last bits of the statistic that float32 rounds away)."""
SMALL_BUDGET_COLUMNS = 8
"""Columns per block under the small memory budget (``memory_budget = 8 * K * 8`` bytes)."""


def cases() -> list[dict[str, Any]]:
    """The grid: every (statistic, N, C, K), each with a rotation of the remaining factors."""
    rest = list(itertools.product((0, 7), (False, True), ("unit", "nonuniform"), (None, 10), PATHS, DTYPES))
    out = []
    for i, (statistic, n, c, k) in enumerate(
        itertools.product(("gradient", "pearson"), (5, 31, 200), (1, 3, 40), (1, 99, 1000))
    ):
        for j in range(3):
            seed, periodic, values, sequential, path, dtype = rest[(7 * i + 23 * j) % len(rest)]
            if statistic == "pearson" and path.startswith("compiled"):
                path = "torch" if path == "compiled" else "torch_columns"
            out.append(
                {
                    "statistic": statistic,
                    "n": n,
                    "c": c,
                    "k": k,
                    "seed": seed,
                    "periodic": periodic,
                    "values": values,
                    "sequential": sequential,
                    "path": path,
                    "dtype": dtype,
                }
            )
    return out


def inputs(case: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Outputs (N, C) of the case's dtype (a trend in some columns, a constant column when C >= 3) and the values."""
    n, c = case["n"], case["c"]
    rng = np.random.default_rng(1000 * n + c)
    y = rng.standard_normal((n, c))
    y[:, ::2] += np.linspace(0, 3, n)[:, None]
    if c >= 3:
        y[:, 1] = 0.25
    values = None
    if case["values"] == "nonuniform":
        values = torch.from_numpy(np.cumsum(rng.uniform(0.1, 2.0, n)))
    return torch.from_numpy(y).to(getattr(torch, case["dtype"])), values


def run(case: dict[str, Any], run_test: Any = permutation_test) -> dict[str, Any]:
    """Run one case twice (streamed, then memoised) and return its results as hex floats."""
    y, values = inputs(case)
    kwargs = {
        "n_permutations": case["k"],
        "statistic": case["statistic"],
        "seed": case["seed"],
        "periodic": case["periodic"],
        "sequential": case["sequential"],
        "permutation_stream": 1,  # the stream of the stored results (the only one when they were written)
    }
    clear_cache()
    results = [_encode(run_test(y, values, path=case["path"], **kwargs)) for _ in range(2)]
    if results[0] != results[1]:
        raise AssertionError(f"streamed and memoised runs differ for {case}")
    return results[0]


def _encode(result: Any) -> dict[str, Any]:
    out = {
        "statistic": [float(v).hex() for v in result.statistic.reshape(-1).tolist()],
        "p_value": [float(v).hex() for v in result.p_value.reshape(-1).tolist()],
        "significant": [bool(v) for v in result.significant.reshape(-1).tolist()],
        "dtype": str(result.p_value.dtype),
    }
    if result.n_drawn is not None:
        out["n_drawn"] = [int(v) for v in result.n_drawn.reshape(-1).tolist()]
    return out


def run_on_path(y: torch.Tensor, values: Any, *, path: str, **kwargs: Any) -> Any:
    """``permutation_test`` forced onto one execution path by attributes of the default backends.

    The code before the backends (which wrote the data) had a module global ``_COMPILED`` and a
    ``memory_budget`` argument instead; this runs either.
    """
    try:
        from propgrad.stats.backends import COMPILED, TORCH
    except ImportError:  # the code before the restructuring
        return _run_on_path_before(y, values, path=path, **kwargs)
    saved = COMPILED.enabled, COMPILED.memory_budget, TORCH.memory_budget
    COMPILED.enabled = path.startswith("compiled")
    if path.endswith("columns"):
        COMPILED.memory_budget = TORCH.memory_budget = SMALL_BUDGET_COLUMNS * kwargs["n_permutations"] * 8 * 2
    try:
        return permutation_test(y, values, **kwargs)
    finally:
        COMPILED.enabled, COMPILED.memory_budget, TORCH.memory_budget = saved


def _run_on_path_before(y: torch.Tensor, values: Any, *, path: str, **kwargs: Any) -> Any:
    from propgrad.stats import permutation as driver

    saved = driver._COMPILED  # type: ignore[attr-defined]
    driver._COMPILED = None if path.startswith("compiled") else False  # type: ignore[attr-defined]
    try:
        if path.endswith("columns"):
            kwargs["memory_budget"] = SMALL_BUDGET_COLUMNS * kwargs["n_permutations"] * 8 * 2
        return permutation_test(y, values, **kwargs)
    finally:
        driver._COMPILED = saved  # type: ignore[attr-defined]


def main() -> None:
    """Write :data:`DATA`."""
    grid = [{"case": case, "result": run(case, run_on_path)} for case in cases()]
    DATA.parent.mkdir(parents=True, exist_ok=True)
    DATA.write_text(json.dumps(grid, indent=1) + "\n")
    print(f"wrote {len(grid)} cases to {DATA}")


if __name__ == "__main__":
    main()
