"""propgrad.explain.quantus: the baselines as Quantus explain functions, and the Quantus metrics propgrad supports."""

from __future__ import annotations

import numpy as np
import pytest
import quantus
import torch
from torch import nn

import propgrad.explain.quantus as pq
from propgrad.baselines.captum_methods import IntegratedGradientsBaseline, LimeBaseline, OcclusionBaseline
from propgrad.example_model import colour_balance_net
from propgrad.plugins import get_source, list_baselines


def tiny_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 3)
    ).eval()


def batch(n: int = 2, size: int = 16) -> np.ndarray:
    return np.random.default_rng(0).random((n, 3, size, size), dtype=np.float32)


def test_every_registered_baseline_is_an_explain_func_matching_the_baseline() -> None:
    model, x, y = colour_balance_net(), batch(), np.array([0, 1])
    explainers = pq.explain_funcs()
    assert sorted(explainers) == sorted(list_baselines())
    for name, explainer in explainers.items():
        maps = explainer(model, x, y, device="cpu")
        direct = list_baselines()[name]().attribute(model, torch.from_numpy(x), torch.from_numpy(y))
        assert isinstance(maps, np.ndarray) and maps.shape == (2, 1, 16, 16)  # quantus.explain's layout
        np.testing.assert_allclose(maps, direct.sum(1, keepdim=True).numpy(), rtol=1e-5, atol=1e-6)


def test_paper_settings_channel_last_no_reduction_and_per_call_overrides() -> None:
    model, x, y = colour_balance_net(), batch(), np.array([1, 0])
    lime = pq.explain_func("lime")
    assert isinstance(lime.baseline, LimeBaseline) and lime.baseline.n_samples == 50 and lime.baseline.n_segments == 100
    occlusion = pq.explain_func("occlusion").baseline
    assert (occlusion.window, occlusion.stride, occlusion.baseline) == (9, 4, 0.5)
    assert pq.explain_func("integrated_gradients").baseline.n_steps == 50
    full = pq.explain_func("integrated_gradients", n_steps=5)(model, x, y, reduce_axes=())
    expected = IntegratedGradientsBaseline(n_steps=5).attribute(model, torch.from_numpy(x), torch.from_numpy(y))
    np.testing.assert_allclose(full, expected.numpy(), rtol=1e-5, atol=1e-7)
    last = pq.explain(model, x.transpose(0, 2, 3, 1), y, method="integrated_gradients", n_steps=5)
    assert last.shape == (2, 16, 16, 1)
    np.testing.assert_allclose(last[..., 0], expected.sum(1).numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(TypeError, match="no setting 'n_stepz'.*n_steps"):
        pq.explain_func("integrated_gradients", n_stepz=5)


def test_inputs_outside_the_unit_range_are_explained_only_through_the_adapter() -> None:
    model, y = colour_balance_net(), np.array([0, 1])
    noisy = batch() + np.random.default_rng(1).uniform(-0.2, 0.2, (2, 3, 16, 16)).astype(np.float32)
    assert noisy.min() < 0 and noisy.max() > 1
    for name in ("occlusion", "lime", "integrated_gradients"):
        assert np.isfinite(pq.explain_func(name)(model, noisy, y)).all()
    expected = OcclusionBaseline().attribute  # the direct call still refuses: a normalised image is a mistake
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        expected(model, torch.from_numpy(noisy), torch.from_numpy(y))


def test_bad_inputs_are_named() -> None:
    model, x = colour_balance_net(), batch()
    explainer = pq.explain_func("occlusion")
    with pytest.raises(ValueError, match="targets must be one class index per input"):
        explainer(model, x, np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="RGB images"):
        explainer(model, x[0], np.array([0]))
    with pytest.raises(ValueError, match="batch axis"):
        explainer(model, x, np.array([0, 1]), reduce_axes=(0,))


# Small settings per metric so each runs in seconds on a tiny model; every supported metric is here.
METRIC_KWARGS: dict[str, dict] = {
    "FaithfulnessCorrelation": {"nr_runs": 5, "subset_size": 16},
    "FaithfulnessEstimate": {"features_in_step": 32},
    "Monotonicity": {"features_in_step": 32},
    "MonotonicityCorrelation": {"features_in_step": 32, "nr_samples": 2},
    "PixelFlipping": {"features_in_step": 32, "return_auc_per_sample": True},
    "RegionPerturbation": {"patch_size": 4, "regions_evaluation": 4},
    "Selectivity": {"patch_size": 4},
    "SensitivityN": {"features_in_step": 32, "n_max_percentage": 0.5},
    "Sparseness": {},
    "Complexity": {},
    "EffectiveComplexity": {},
    "RandomLogit": {"num_classes": 3},
    "MPRT": {},
    "MaxSensitivity": {"nr_samples": 2},
    "AvgSensitivity": {"nr_samples": 2},
    "Continuity": {"nr_steps": 4},
    "Infidelity": {"n_perturb_samples": 2},
    "Sufficiency": {},
    "SmoothMPRT": {"nr_samples": 2},
    "EfficientMPRT": {},
    "LocalLipschitzEstimate": {"nr_samples": 2},
    "Consistency": {},
    "RelativeInputStability": {"nr_samples": 2},
    "RelativeOutputStability": {"nr_samples": 2},
    "RelativeRepresentationStability": {"nr_samples": 2},
    "Completeness": {},
    "NonSensitivity": {},
    "InputInvariance": {},
    "AUC": {},
    "RelevanceMassAccuracy": {},
    "RelevanceRankAccuracy": {},
    "AttributionLocalisation": {},
    "TopKIntersection": {"k": 16},
    "PointingGame": {},
}


def test_the_test_covers_every_supported_metric() -> None:
    assert sorted(METRIC_KWARGS) == sorted(pq.SUPPORTED_METRICS)


@pytest.mark.parametrize("name", list(METRIC_KWARGS))
def test_every_supported_metric_runs_and_gives_finite_scores(name: str) -> None:
    model, x = tiny_cnn(), batch(2, 16)
    y = model(torch.from_numpy(x)).argmax(1).numpy()
    sequences = [
        get_source("alpha_patch")(steps=3).generate(torch.from_numpy(image), seed=i) for i, image in enumerate(x)
    ]
    masks = pq.s_batch(sequences) if name in pq.NEEDS_MASK else None
    explainer = pq.explain_func("integrated_gradients", n_steps=4)
    scores = pq.evaluate(name, model, x, y, baseline=explainer, s_batch=masks, metric_kwargs=METRIC_KWARGS[name])
    assert scores.shape == (2,) and np.isfinite(scores).all()
    assert not hasattr(np, "trapz") or np.__version__ < "2.4", "the shim must not leak into numpy"


@pytest.mark.parametrize(
    ("name", "extra"), [("PixelFlipping", {}), ("Continuity", {"return_nan_when_prediction_changes": True})]
)
def test_the_numpy_shim_is_what_makes_the_old_names_work_and_stays_inside_the_call(name: str, extra: dict) -> None:
    if hasattr(np, "trapz") and hasattr(np, "NaN"):
        pytest.skip("this NumPy still has trapz and NaN")
    import quantus.helpers.utils as utils
    import quantus.metrics.robustness.continuity as continuity

    model, x = tiny_cnn(), batch(2, 16)
    y = model(torch.from_numpy(x)).argmax(1).numpy()
    metric = pq.metric_class(name)(disable_warnings=True, display_progressbar=False, **METRIC_KWARGS[name], **extra)
    explainer = pq.explain_func("integrated_gradients", n_steps=4)
    with pytest.raises(AttributeError, match="trapz|NaN"):
        metric(model=model, x_batch=x, y_batch=y, explain_func=explainer, device="cpu")
    with pq.numpy_compat():
        assert utils.np is not np and utils.np.trapz is np.trapezoid and np.isnan(continuity.np.NaN)
        scores = metric(model=model, x_batch=x, y_batch=y, explain_func=explainer, device="cpu")
    assert len(scores) == 2
    assert utils.np is np and continuity.np is np and not hasattr(np, "trapz") and not hasattr(np, "NaN")


def test_relevance_mass_accuracy_on_an_intervention_region_matches_its_definition() -> None:
    model, x = colour_balance_net(), batch(2, 16)
    y = np.array([0, 1])
    sequences = [
        get_source("alpha_patch")(steps=3).generate(torch.from_numpy(image), seed=i) for i, image in enumerate(x)
    ]
    masks = pq.s_batch(sequences)
    assert masks.shape == (2, 1, 16, 16) and 0 < masks.mean() < 1
    metric = quantus.RelevanceMassAccuracy(disable_warnings=True, display_progressbar=False, normalise=False)
    scores = pq.evaluate(metric, model, x, y, baseline="occlusion", s_batch=masks)
    maps = pq.explain_func("occlusion")(model, x, y)
    expected = (maps * masks).sum(axis=(1, 2, 3)) / maps.sum(axis=(1, 2, 3))  # Arras et al.: mass inside / total
    np.testing.assert_allclose(scores, expected, rtol=1e-5)


def test_unknown_and_unsupported_metrics_are_refused_with_the_supported_list() -> None:
    with pytest.raises(pq.QuantusMetricError, match="unknown Quantus metric 'Sparsenes'.*Sparseness"):
        pq.metric_class("Sparsenes")
    with pytest.raises(pq.QuantusMetricError, match="'IROF' is not supported: .*mask.*supported: "):
        pq.metric_class("IROF")
    with pytest.raises(pq.QuantusMetricError, match="needs s_batch"):
        pq.evaluate("PointingGame", colour_balance_net(), batch(), np.array([0, 1]))


def test_a_sequence_without_a_region_is_named() -> None:
    sequence = get_source("alpha_patch")(steps=3).generate(torch.rand(3, 8, 8), seed=0)
    bare = type(sequence)(images=sequence.images, values=sequence.values, property_name="alpha", unit="fraction")
    with pytest.raises(ValueError, match="sequence 1 has no region"):
        pq.s_batch([sequence, bare])
