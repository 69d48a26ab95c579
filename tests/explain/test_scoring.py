"""Tests of propgrad.stats.gradient: the expected property gradient magnitude against numpy.gradient."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from propgrad.sources.base import InterventionSequence
from propgrad.stats.gradient import apply_stencil, finite_difference_weights, property_gradient


def _numpy_score(y: np.ndarray, x: np.ndarray | None = None, edge_order: int = 1) -> np.ndarray:
    args = (y,) if x is None else (y, x)
    return np.abs(np.gradient(*args, axis=0, edge_order=edge_order)).mean(axis=0)


@pytest.mark.parametrize("n", [3, 4, 7, 50])
@pytest.mark.parametrize("c", [1, 5])
@pytest.mark.parametrize("edge_order", [1, 2])
def test_uniform_and_nonuniform_grids_match_numpy_gradient(n: int, c: int, edge_order: int) -> None:
    rng = np.random.default_rng(n * 10 + c)
    y = rng.normal(size=(n, c))
    x = np.cumsum(rng.uniform(0.05, 3.0, size=n))
    unit = property_gradient(torch.tensor(y), edge_order=edge_order)
    uniform = property_gradient(torch.tensor(y), torch.tensor(np.arange(n) * 0.25 + 3), edge_order=edge_order)
    nonuniform = property_gradient(torch.tensor(y), torch.tensor(x), edge_order=edge_order)
    assert unit.shape == (c,)
    np.testing.assert_allclose(unit.numpy(), _numpy_score(y, None, edge_order), rtol=1e-12)
    np.testing.assert_allclose(uniform.numpy(), _numpy_score(y, np.arange(n) * 0.25 + 3, edge_order), rtol=1e-12)
    np.testing.assert_allclose(nonuniform.numpy(), _numpy_score(y, x, edge_order), rtol=1e-12)


def test_float32_one_d_numpy_and_list_inputs() -> None:
    rng = np.random.default_rng(1)
    y = rng.normal(size=30)
    x = np.cumsum(rng.uniform(0.5, 1.5, size=30))
    score = property_gradient(torch.tensor(y, dtype=torch.float32), torch.tensor(x))
    assert score.shape == () and score.dtype == torch.float32
    assert float(score) == pytest.approx(float(_numpy_score(y, x)), rel=1e-5)
    assert float(property_gradient(y, x)) == pytest.approx(float(_numpy_score(y, x)), rel=1e-12)
    assert float(property_gradient([1, 2, 4, 8])) == pytest.approx(float(_numpy_score(np.array([1, 2, 4, 8.0]))))
    assert property_gradient(torch.tensor([0, 1, 3])).is_floating_point()


def test_binary_case_is_absolute_concept_effect() -> None:
    y = torch.tensor([[0.2, 0.9, 0.5], [0.7, 0.1, 0.5]], dtype=torch.float64)
    np.testing.assert_allclose(property_gradient(y).numpy(), [0.5, 0.8, 0.0])
    np.testing.assert_allclose(property_gradient(y, torch.tensor([1.0, 3.0])).numpy(), [0.25, 0.4, 0.0])
    np.testing.assert_allclose(property_gradient(y, edge_order=2).numpy(), [0.5, 0.8, 0.0])


def test_periodic_matches_manual_wrap_around_on_nonuniform_grid() -> None:
    rng = np.random.default_rng(2)
    n = 12
    y = rng.normal(size=(n, 3))
    x = np.sort(rng.uniform(0, 10, size=n))
    period = 11.0
    xp = np.concatenate([[x[-1] - period], x, [x[0] + period]])
    yp = np.concatenate([y[-1:], y, y[:1]])
    manual = np.abs(np.gradient(yp, xp, axis=0)[1:-1]).mean(axis=0)
    got = property_gradient(torch.tensor(y), torch.tensor(x), periodic=True, period=period)
    np.testing.assert_allclose(got.numpy(), manual, rtol=1e-12)
    # differs from the non-periodic score: the ends use the neighbours across the seam
    assert not np.allclose(got.numpy(), _numpy_score(y, x))


def test_periodic_default_period_is_span_plus_mean_step() -> None:
    rng = np.random.default_rng(3)
    y = torch.tensor(rng.normal(size=(9, 2)))
    x = torch.tensor(np.sort(rng.uniform(0, 5, size=9)))
    inferred = property_gradient(y, x, periodic=True)
    explicit = property_gradient(y, x, periodic=True, period=float(x[-1] - x[0]) * 9 / 8)
    torch.testing.assert_close(inferred, explicit)
    unit = property_gradient(y, periodic=True)
    torch.testing.assert_close(
        unit, property_gradient(y, torch.arange(9.0, dtype=torch.float64), periodic=True, period=9.0)
    )


def test_sine_over_full_period_gives_mean_absolute_cosine() -> None:
    n = 400
    x = torch.arange(n, dtype=torch.float64) * (2 * math.pi / n)
    score = property_gradient(torch.sin(x), x, periodic=True, period=2 * math.pi)
    assert float(score) == pytest.approx(2 / math.pi, rel=1e-4)  # mean |cos| over a period
    h = 2 * math.pi / n  # central difference of sin: sin(h)/h * cos(x), exactly
    expected = math.sin(h) / h * torch.cos(x).abs().mean()
    assert float(score) == pytest.approx(float(expected), rel=1e-12)


def test_stencil_weights_are_pure_and_reusable() -> None:
    x = torch.tensor([0.0, 1.0, 3.0, 3.5, 6.0], dtype=torch.float64)
    idx, w = finite_difference_weights(x)
    assert idx.shape == (5, 3) and w.shape == (5, 3)
    torch.testing.assert_close(w.sum(1), torch.zeros(5, dtype=torch.float64), atol=1e-12, rtol=0)
    y = (x**2)[:, None]
    interior = apply_stencil(y, idx, w)[1:-1, 0]
    torch.testing.assert_close(interior, 2 * x[1:-1])  # second order: exact on a parabola
    idx2, w2 = finite_difference_weights(x, edge_order=2)
    torch.testing.assert_close(apply_stencil(y, idx2, w2)[:, 0], 2 * x)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"outputs": torch.tensor([0.1, float("nan"), 0.3])}, ValueError, "outputs contains NaN or Inf .*step 1"),
        ({"outputs": torch.tensor([[0.1, 0.2], [0.3, float("inf")], [0.0, 0.0]])}, ValueError, "step 1, column 1"),
        ({"outputs": torch.tensor([0.5])}, ValueError, "at least 2 steps"),
        ({"outputs": torch.zeros(2, 2, 2)}, ValueError, r"outputs must have shape \(N,\) or \(N, C\)"),
        ({"outputs": torch.zeros(0)}, ValueError, "outputs is empty"),
        ({"outputs": "abc"}, TypeError, "outputs must be"),
        (
            {"outputs": torch.zeros(4), "values": torch.arange(5.0)},
            ValueError,
            "values has 5 entries but outputs has 4",
        ),
        (
            {"outputs": torch.zeros(4), "values": torch.tensor([0.0, 2.0, 1.0, 3.0])},
            ValueError,
            "values must be strictly increasing",
        ),
        (
            {"outputs": torch.zeros(4), "values": torch.tensor([0.0, 1.0, 1.0, 3.0])},
            ValueError,
            "values must be strictly increasing",
        ),
        ({"outputs": torch.zeros(4), "values": torch.zeros(4, 1)}, ValueError, "values must have shape"),
        (
            {"outputs": torch.zeros(4), "values": torch.tensor([0.0, 1.0, float("nan"), 3.0])},
            ValueError,
            "values contains NaN",
        ),
        ({"outputs": torch.zeros(4), "values": "x"}, TypeError, "values must be a torch.Tensor"),
        ({"outputs": torch.zeros(4), "edge_order": 3}, ValueError, "edge_order must be 1 or 2"),
        ({"outputs": torch.zeros(2), "periodic": True}, ValueError, "periodic=True needs at least 3 steps"),
        ({"outputs": torch.zeros(4), "periodic": True, "period": 3.0}, ValueError, "period must exceed the span"),
        ({"outputs": torch.zeros(4), "period": 5.0}, ValueError, "period is only used with periodic=True"),
    ],
)
def test_bad_input_raises_naming_the_argument(kwargs: dict, error: type, match: str) -> None:
    outputs = kwargs.pop("outputs")
    with pytest.raises(error, match=match):
        property_gradient(outputs, **kwargs)


def test_integer_values_are_converted() -> None:
    y = torch.tensor([0.0, 1.0, 4.0, 9.0])
    assert float(property_gradient(y, torch.tensor([0, 1, 2, 3]))) == pytest.approx(float(property_gradient(y)))


def test_a_periodic_sequence_scored_per_unit_uses_its_own_period() -> None:
    from types import SimpleNamespace

    from propgrad.explain.scoring import PropertyAxis, score_outputs, sequence_period, sequence_statistic
    from propgrad.stats.settings import test_settings

    angles = torch.tensor([0.0, 20.0, 50.0, 90.0, 140.0, 200.0, 260.0, 310.0])  # uneven, a full turn
    outputs = torch.sin(torch.deg2rad(angles))[:, None].double()
    turn = SimpleNamespace(periodic=True, metadata={"period": 360})
    assert sequence_period(turn, "unit") == 360.0 and sequence_period(turn, "step") is None
    assert sequence_period(SimpleNamespace(periodic=False, metadata={"period": 360}), "unit") is None
    expected = property_gradient(outputs, angles, periodic=True, period=360.0)
    got = sequence_statistic(outputs, angles, periodic=True, period=sequence_period(turn, "unit"))
    torch.testing.assert_close(got, expected)
    assert not torch.allclose(got, property_gradient(outputs, angles, periodic=True))  # the default period differs
    axis = PropertyAxis.of(SimpleNamespace(values=angles, periodic=True, metadata={"period": 360}), "unit")
    assert axis == PropertyAxis(values=angles, periodic=True, period=360.0)
    scored = score_outputs(outputs, outputs[0], None, axis, test_settings(n_permutations=50))
    torch.testing.assert_close(scored.test.statistic, expected)


def test_an_original_of_another_size_than_its_frames_is_refused_by_name() -> None:
    from propgrad.core.forward import RunSettings
    from propgrad.explain.scoring import score_sequences
    from propgrad.sources.base import InterventionSequence
    from propgrad.stats.settings import TestSettings

    seq = InterventionSequence(torch.rand(4, 3, 8, 8), torch.arange(4.0), "angle", "degree")
    with pytest.raises(ValueError, match=r"sequence 0 has images of shape \(3, 8, 8\) but its original image"):
        score_sequences(lambda x: x.mean((2, 3)), torch.rand(1, 3, 16, 16), [seq], [0], RunSettings(), TestSettings())


def test_placebo_first_round_run_beside_the_sequence_gives_the_same_test() -> None:
    """The benchmark runs the first placebo round in the sequence's forward pass (first_round, extra=, first=):
    the same placebo statistics and p-value as placebo_tests running every round itself, and the extra stacks'
    outputs are the model's outputs on exactly those images, in order."""
    from propgrad.core.forward import RunSettings
    from propgrad.explain.scoring import PropertyAxis as ScoreAxis
    from propgrad.explain.scoring import first_round, placebo_tests, score_outputs, sequence_outputs
    from propgrad.sources.placebo_sequences import PlaceboDraw, PlaceboPool
    from propgrad.stats.settings import test_settings

    def model(x: torch.Tensor) -> torch.Tensor:  # a linear read-out: float64 sums, exact enough to compare
        means = x.double().mean((2, 3))
        return torch.stack([means[:, 0] - means[:, 2], means[:, 2] - means[:, 0]], dim=1)

    image = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ramp = torch.linspace(0, 0.3, 6, dtype=torch.float64)[:, None, None, None]
    images = (image + ramp * torch.tensor([1.0, 0.0, -1.0], dtype=torch.float64)[:, None, None]).clamp(0, 1)
    seq = InterventionSequence(images, torch.arange(6.0), "tint", "step")
    run, test = RunSettings(output_transform="none"), test_settings(n_permutations=99, n_placebos=30)
    original = image[None]

    pool = PlaceboPool(seq, PlaceboDraw(30, seed=1))
    (pieces,) = first_round([pool], test, original.device)
    # the first round's 4 placebos, every step but the shared first, as one block in placebo order
    assert [tuple(piece.shape) for piece in pieces] == [(20, 3, 8, 8)]
    torch.testing.assert_close(pieces[0], pool.images(0, 4)[:, 1:].flatten(0, 1), rtol=0, atol=0)
    blocks = sequence_outputs(model, original, [seq], run, extra=[pieces, None])
    assert len(blocks) == 3 and blocks[2] is None
    torch.testing.assert_close(blocks[1], model(torch.cat(pieces)), rtol=0, atol=0)
    scored = score_outputs(blocks[0][1:], blocks[0][0], 0, ScoreAxis.of(seq, "step"), test)
    (fused,) = placebo_tests(model, original, [pool], [scored], run, test, first=[blocks[1]])

    (alone,) = placebo_tests(model, original, [PlaceboPool(seq, PlaceboDraw(30, seed=1))], [scored], run, test)
    torch.testing.assert_close(fused.placebo_scores, alone.placebo_scores, rtol=0, atol=0)
    assert float(fused.p_value) == float(alone.p_value)
    assert fused.n_used == alone.n_used


def test_placebo_test_holds_one_images_round_at_a_time_and_pools_read_once_keep_nothing() -> None:
    """With pools that keep nothing (one attribute call), the placebo test draws an image's round, runs it and
    lets it go before the next image's: no placebo images of an earlier request are alive when the pool
    draws. The results equal those of pools that keep their placebos (the benchmark's, shared by models)."""
    import gc
    import weakref

    from propgrad.core.forward import RunSettings
    from propgrad.explain.scoring import placebo_pools, placebo_tests, score_sequences
    from propgrad.sources.placebo_sequences import PlaceboPool
    from propgrad.stats.settings import test_settings

    def model(x: torch.Tensor) -> torch.Tensor:  # reads the red channel's mean: a tint drives it
        means = x.double().mean((2, 3))
        return torch.stack([means[:, 0], -means[:, 0]], dim=1)

    g = torch.Generator().manual_seed(2)
    originals = torch.rand(3, 3, 8, 8, generator=g, dtype=torch.float64) * 0.5 + 0.25
    ramp = torch.linspace(0, 0.2, 6, dtype=torch.float64)[:, None, None, None]
    tint = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)[:, None, None]
    seqs = [InterventionSequence(o + ramp * tint, torch.arange(6.0), "tint", "step") for o in originals]
    run, test = RunSettings(output_transform="none"), test_settings(n_permutations=99, n_placebos=100)
    scores = score_sequences(model, originals, seqs, [0, 0, 0], run, test)

    alive: list[weakref.ref] = []
    live_at_draw: list[int] = []
    real_steps = PlaceboPool.steps

    def watched(self: PlaceboPool, start: int, stop: int, **kwargs: object) -> torch.Tensor:
        gc.collect()
        live_at_draw.append(sum(ref() is not None for ref in alive))
        out = real_steps(self, start, stop, **kwargs)
        alive.append(weakref.ref(out))
        return out

    once = placebo_pools(seqs, test, keep=False)
    PlaceboPool.steps = watched  # type: ignore[method-assign]
    try:
        results = placebo_tests(model, originals, once, scores, run, test)
    finally:
        PlaceboPool.steps = real_steps  # type: ignore[method-assign]
    assert len(live_at_draw) >= 6 and set(live_at_draw) == {0}  # rounds of every image, none held at a draw
    kept = placebo_tests(model, originals, placebo_pools(seqs, test), scores, run, test)
    for a, b in zip(results, kept):
        torch.testing.assert_close(a.placebo_scores, b.placebo_scores, rtol=0, atol=0)
        assert a.n_used == b.n_used and float(a.p_value) == float(b.p_value)
    with pytest.raises(RuntimeError, match="read in order"):
        once[0].steps(0, 4)  # already handed out, not kept


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"sequential": 10},
        {"statistic": "pearson"},
        {"per": "unit"},
        {"statistic": "vector_l1"},
    ],
)
@pytest.mark.parametrize("target", [0, None])
def test_sequences_tested_together_get_the_test_each_gets_alone(settings: dict, target: int | None) -> None:
    """score_outputs_together runs one permutation test over the columns of sequences on one axis: every
    sequence's statistic, p-value, null and shuffles drawn equal its own score_outputs call's, for sequences of
    other lengths and values too, and past KEEP_NULL_MAX_COLUMNS columns (which share no test)."""
    from propgrad.explain.scoring import PropertyAxis as ScoreAxis
    from propgrad.explain.scoring import score_outputs, score_outputs_together
    from propgrad.stats.settings import test_settings

    test = test_settings(n_permutations=199, seed=5, **settings)
    g = torch.Generator().manual_seed(1)
    lengths = [9] * 12 + [7, 7, 9]  # twelve of one axis: with 3 columns each, more than one test's 16 columns
    blocks = [torch.rand(n + 1, 3, generator=g) for n in lengths]
    blocks[3][:, 1] = 0.25  # a constant column
    values = [torch.arange(float(n)) for n in lengths]
    values[-1] = torch.linspace(0, 2, 9) ** 2  # same length, other values: its own test when scored per unit
    axes = [ScoreAxis(values=v if test.per == "unit" else None) for v in values]
    together = score_outputs_together(blocks, [target] * len(blocks), axes, test)
    for block, axis, got in zip(blocks, axes, together):
        alone = score_outputs(block[1:], block[0], target, axis, test)
        assert got.target == alone.target
        for name in ("statistic", "p_value", "significant", "null_distribution", "n_drawn"):
            a, b = getattr(got.test, name), getattr(alone.test, name)
            assert (a is None) == (b is None), name
            if a is not None:
                torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True, msg=name)
        assert torch.equal(got.flips.decisions, alone.flips.decisions)
