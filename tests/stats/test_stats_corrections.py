"""Multiple-testing corrections (propgrad.stats.corrections): Holm and BH against references, shapes,
NaN refusal, and the feasibility of a correction at a given number of permutations."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import scipy.stats
import torch

from propgrad.errors import PropgradWarning
from propgrad.stats.corrections import (
    InfeasibleCorrectionWarning,
    adjust_p_values,
    correction_feasibility,
    minimum_p_value,
    resamples_needed,
    warn_if_infeasible,
)


def holm_reference(p: list[float]) -> list[float]:
    """Holm's step-down adjustment, written as the textbook loop."""
    n = len(p)
    order = sorted(range(n), key=lambda i: p[i])
    adjusted = [0.0] * n
    running = 0.0
    for rank, i in enumerate(order):  # rank 0 is the smallest p-value
        running = max(running, min(1.0, (n - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def bh_reference(p: list[float]) -> list[float]:
    """Benjamini-Hochberg adjustment, written as the textbook loop from the largest p-value down."""
    n = len(p)
    order = sorted(range(n), key=lambda i: p[i])
    adjusted = [0.0] * n
    running = 1.0
    for rank in range(n - 1, -1, -1):  # rank n-1 is the largest p-value
        i = order[rank]
        running = min(running, n * p[i] / (rank + 1))
        adjusted[i] = min(1.0, running)
    return adjusted


def _families(seed: int = 0) -> list[list[float]]:
    rng = np.random.default_rng(seed)
    families = [
        [0.01, 0.04, 0.03, 0.5],
        [0.001],
        [0.2, 0.2, 0.2, 0.01, 0.01],  # ties
        [1.0, 1.0, 0.0, 0.5],  # the bounds
        [1 / 100] * 20,  # every test at the permutation minimum
    ]
    for n in (2, 7, 30):
        families.append(rng.uniform(size=n).tolist())
        families.append((rng.uniform(size=n) ** 4).tolist())  # many small p-values
    return families


@pytest.mark.parametrize("family", _families())
def test_holm_matches_the_reference_loop(family: list[float]) -> None:
    got = adjust_p_values(family, "holm")
    assert isinstance(got, np.ndarray) and got.shape == (len(family),)
    np.testing.assert_allclose(got, holm_reference(family), rtol=1e-12, atol=0)


@pytest.mark.parametrize("family", _families())
def test_bh_matches_scipy_and_the_reference_loop(family: list[float]) -> None:
    got = adjust_p_values(family, "bh")
    np.testing.assert_allclose(got, scipy.stats.false_discovery_control(family, method="bh"), rtol=1e-12, atol=0)
    np.testing.assert_allclose(got, bh_reference(family), rtol=1e-12, atol=1e-15)


def test_against_statsmodels() -> None:
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    for family in _families(1):
        for method, name in (("holm", "holm"), ("bh", "fdr_bh")):
            _, expected, _, _ = multitest.multipletests(family, alpha=0.05, method=name)
            np.testing.assert_allclose(adjust_p_values(family, method), expected, rtol=1e-12, atol=1e-15)


def test_holm_is_stricter_than_bh_and_both_at_least_the_raw_p_values() -> None:
    rng = np.random.default_rng(3)
    p = rng.uniform(size=50) ** 3
    holm, bh = adjust_p_values(p, "holm"), adjust_p_values(p, "bh")
    assert (holm >= bh - 1e-15).all() and (bh >= p).all() and (holm <= 1).all()
    # the order of the p-values is kept
    order = np.argsort(p)
    assert (np.diff(holm[order]) >= 0).all() and (np.diff(bh[order]) >= 0).all()


def test_none_returns_the_p_values_unchanged() -> None:
    p = [0.3, 0.01, 0.7]
    got = adjust_p_values(p, None)
    np.testing.assert_array_equal(got, p)
    t = torch.tensor(p, dtype=torch.float32)
    out = adjust_p_values(t, None)
    assert torch.equal(out, t) and out is not t


def test_last_axis_holds_the_families() -> None:
    rng = np.random.default_rng(4)
    p = rng.uniform(size=(3, 2, 6)) ** 2
    for method, ref in (("holm", holm_reference), ("bh", bh_reference)):
        got = adjust_p_values(p, method)
        assert got.shape == p.shape
        for i in range(3):
            for j in range(2):
                np.testing.assert_allclose(got[i, j], ref(p[i, j].tolist()), rtol=1e-12, atol=1e-15)
    # flattening corrects over everything at once, which is stricter
    flat = adjust_p_values(p.reshape(-1), "holm").reshape(p.shape)
    assert (flat >= adjust_p_values(p, "holm") - 1e-15).all()


def test_tensors_keep_dtype_and_device_scalars_and_empty() -> None:
    t = torch.tensor([0.01, 0.04, 0.03, 0.5], dtype=torch.float32)
    out = adjust_p_values(t, "holm")
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.device == t.device
    assert out.tolist() == pytest.approx(holm_reference(t.tolist()), rel=1e-6)
    ints = adjust_p_values(torch.tensor([0, 1]), "bh")
    assert ints.dtype == torch.float64 and ints.tolist() == [0.0, 1.0]
    assert float(adjust_p_values(0.02, "holm")) == 0.02
    assert adjust_p_values(np.float64(0.02), "bh").shape == ()
    assert adjust_p_values([], "holm").shape == (0,)
    assert adjust_p_values([0.3], "holm").tolist() == [0.3]


def test_bad_p_values_and_methods() -> None:
    with pytest.raises(ValueError, match=r"p_values contains NaN at index \(1,\) \(1 of 3\)"):
        adjust_p_values([0.1, float("nan"), 0.2], "holm")
    with pytest.raises(ValueError, match="NaN"):
        adjust_p_values(torch.tensor([[0.1, 0.2], [float("nan"), 0.3]]), "bh")
    with pytest.raises(ValueError, match="NaN"):
        adjust_p_values([float("nan")], None)  # refused even without a correction
    with pytest.raises(ValueError, match=r"p_values must lie in \[0, 1\], got range \[0.1, 1.5\]"):
        adjust_p_values([0.1, 1.5], "holm")
    with pytest.raises(ValueError, match="p_values must lie in"):
        adjust_p_values(torch.tensor([-0.1, 0.5]), "bh")
    with pytest.raises(TypeError, match="p_values must be real numbers"):
        adjust_p_values(["a", "b"], "holm")
    with pytest.raises(TypeError, match="p_values must be real numbers"):
        adjust_p_values([True, False], "holm")
    with pytest.raises(ValueError, match="method must be one of None, 'holm', 'bh', got 'bonferroni'"):
        adjust_p_values([0.1], "bonferroni")
    with pytest.raises(TypeError, match="method must be one of"):
        adjust_p_values([0.1], 3)


def test_minimum_p_value() -> None:
    assert minimum_p_value(99) == pytest.approx(0.01)
    assert minimum_p_value(np.int64(9999)) == pytest.approx(1e-4)
    assert minimum_p_value(1) == 0.5
    for bad in (0, -3):
        with pytest.raises(ValueError, match="k must be a positive integer"):
            minimum_p_value(bad)
    with pytest.raises(TypeError, match="k must be a positive integer"):
        minimum_p_value(99.0)


def _reachable(n: int, k: int, alpha: float, method: str | None, single: bool) -> bool:
    """Brute force: adjust the best-case family and look whether anything is below alpha."""
    p_min = 1 / (k + 1)
    family = [p_min] + [1.0] * (n - 1) if single else [p_min] * n
    return bool((adjust_p_values(family, method) < alpha).any())


@pytest.mark.parametrize("method", [None, "holm", "bh"])
@pytest.mark.parametrize(
    ("n", "alpha"), [(1, 0.05), (5, 0.05), (20, 0.05), (20, 0.01), (1000, 0.05), (7, 0.03), (3, 0.3)]
)
def test_feasibility_agrees_with_adjusting_the_best_case(method: str | None, n: int, alpha: float) -> None:
    for k in (1, 19, 20, 99, 100, 399, 400, 999, 10_000):
        result = correction_feasibility(n, k, alpha, method)
        assert result.min_p == pytest.approx(1 / (k + 1))
        assert result.feasible == _reachable(n, k, alpha, method, single=False), (n, k, alpha, method)
        assert result.single_feasible == _reachable(n, k, alpha, method, single=True), (n, k, alpha, method)
    result = correction_feasibility(n, 1, alpha, method)
    # k_needed is the smallest K that works: it works, and K - 1 does not
    for needed, single in ((result.k_needed, False), (result.k_needed_single, True)):
        assert _reachable(n, needed, alpha, method, single)
        assert needed == 1 or not _reachable(n, needed - 1, alpha, method, single)


def test_feasibility_examples() -> None:
    # Holm over 20 tests at 0.05 with K = 99: 20 / 100 = 0.2, nothing significant; K + 1 > 400 needed
    holm = correction_feasibility(20, 99, 0.05, "holm")
    assert not holm.feasible and holm.best_adjusted_p == pytest.approx(0.2) and holm.k_needed == 400
    assert holm.k_needed_single == 400
    # BH: 20 tests all at 1/100 adjust to 1/100 (feasible), a lone one to 20/100 (not)
    bh = correction_feasibility(20, 99, 0.05, "bh")
    assert bh.feasible and bh.best_adjusted_p == pytest.approx(0.01) and bh.k_needed == 20
    assert not bh.single_feasible and bh.single_adjusted_p == pytest.approx(0.2) and bh.k_needed_single == 400
    # boundary: 5 / 100 is not below 0.05 (significance is strict), 5 / 101 is
    assert not correction_feasibility(5, 99, 0.05, "holm").feasible
    assert correction_feasibility(5, 100, 0.05, "holm").feasible
    # no correction: only 1 / (K + 1) < alpha matters
    none = correction_feasibility(1000, 19, 0.05, None)
    assert not none.feasible and none.k_needed == 20 and none.k_needed_single == 20
    # the paper's 10,000 permutations over 1000 classes with Holm at 0.01
    big = correction_feasibility(1000, 10_000, 0.01, "holm")
    assert not big.feasible and big.k_needed == 100_000
    assert json.loads(json.dumps(holm.to_dict()))["k_needed"] == 400


def test_feasibility_bad_arguments() -> None:
    with pytest.raises(ValueError, match="n_tests must be a positive integer"):
        correction_feasibility(0, 99, 0.05, "holm")
    with pytest.raises(ValueError, match="k must be a positive integer"):
        correction_feasibility(3, 0, 0.05, "holm")
    with pytest.raises(ValueError, match="alpha must be a number in"):
        correction_feasibility(3, 99, 1.0, "holm")
    with pytest.raises(ValueError, match="method must be one of"):
        correction_feasibility(3, 99, 0.05, "by")


def test_warn_if_infeasible() -> None:
    assert issubclass(InfeasibleCorrectionWarning, PropgradWarning)
    with pytest.warns(InfeasibleCorrectionWarning) as caught:
        result = warn_if_infeasible(20, 99, 0.05, "holm")
    assert not result.feasible
    message = str(caught[0].message)
    assert "K=99 permutations" in message and "K >= 400" in message and "'holm'" in message and "20 tests" in message
    assert caught[0].filename == __file__  # points at the caller
    with pytest.warns(InfeasibleCorrectionWarning, match=r"M=19 placebos.*M >= 20"):
        warn_if_infeasible(1, 19, 0.05, None, what="placebos")
    # BH with every test strong is feasible: no warning unless a lone effect must be detectable
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert warn_if_infeasible(20, 99, 0.05, "bh").feasible
        assert warn_if_infeasible(20, 400, 0.05, "holm").feasible
        assert warn_if_infeasible(1, 99, 0.05, None).feasible
    with pytest.warns(InfeasibleCorrectionWarning, match=r"lone strong effect.*K=99.*K >= 400"):
        warn_if_infeasible(20, 99, 0.05, "bh", require="single")
    with pytest.raises(ValueError, match="require must be one of"):
        warn_if_infeasible(20, 99, 0.05, "bh", require="all")
    with pytest.raises(ValueError, match="what must be one of"):
        warn_if_infeasible(20, 99, 0.05, "bh", what="shuffles")


def _survive(n: int, strong: int, k: int, alpha: float, method: str | None) -> bool:
    """Whether ``strong`` tests at p = 1/(k+1) among n - strong at p = 1 all stay below alpha (reference loops)."""
    p = [1.0 / (k + 1)] * strong + [1.0] * (n - strong)
    adjusted = {None: p, "holm": holm_reference(p), "bh": bh_reference(p)}[method]
    return all(a < alpha for a in adjusted[:strong])


@pytest.mark.parametrize("method", [None, "holm", "bh"])
@pytest.mark.parametrize("n, strong", [(1, 1), (10, 1), (10, 4), (300, 142), (300, 300)])
def test_resamples_needed_is_the_smallest_k_with_which_the_strong_tests_survive(
    method: str | None, n: int, strong: int
) -> None:
    for alpha in (0.01, 0.05):
        k = resamples_needed(n, strong, alpha, method)
        assert _survive(n, strong, k, alpha, method), (method, n, strong, alpha, k)
        assert k == 1 or not _survive(n, strong, k - 1, alpha, method), (method, n, strong, alpha, k)


def test_resamples_needed_bad_arguments() -> None:
    with pytest.raises(ValueError, match="n_strong"):
        resamples_needed(10, 11, 0.05, "bh")
    with pytest.raises(ValueError, match="n_strong"):
        resamples_needed(10, 0, 0.05, "bh")
