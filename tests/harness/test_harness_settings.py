"""Benchmark settings (checks, the typed pool option, what a store is bound to) and cell keys."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from propgrad.core.validation import ParameterTypeError
from propgrad.harness import BenchmarkSettings, CellKey, PoolSize, preset
from propgrad.harness.cells import baseline_key, baseline_record, property_key, record_key
from propgrad.harness.store import settings_hash

DEFAULT_QUICK_RESULT_SETTINGS = {
    "alpha": 0.01,
    "correction": "bh",
    "baseline_kwargs": {"integrated_gradients": {"n_steps": 16}, "lime": {"n_samples": 32}},
    "baselines": ["integrated_gradients", "lime", "occlusion"],
    "n_permutations": 1000,
    "n_placebos": 100,
    "placebo": "smooth_direction",
    "n_resamples": 10,
    "pool_per_class": "images_per_class",
    "quick": True,
    "realisations": 1,
    "seed": 0,
    "suites": ["fur"],
    "permutation_stream": 2,
}
"""What the quick preset stores (store format 3, with the placebo and correction settings, and
permutation stream 2): a change here is a change of every default run's settings hash."""


def quick() -> BenchmarkSettings:
    return preset(quick=True, suites=("fur",), baselines=("integrated_gradients", "lime", "occlusion"))


def test_quick_preset_stores_its_known_settings() -> None:
    st = quick()
    assert st.pool_per_class is PoolSize.SUITE_IMAGES_PER_CLASS
    assert st.result_settings() == DEFAULT_QUICK_RESULT_SETTINGS
    assert settings_hash(st.result_settings()) == settings_hash(DEFAULT_QUICK_RESULT_SETTINGS)
    assert json.loads(json.dumps(st.to_dict()))["pool_per_class"] == "images_per_class"


def test_stream_one_keeps_the_settings_hash_of_runs_before_streams() -> None:
    # stream 2 changed every p-value, so it changed the hash; stream 1 resumes the runs written before
    before = {k: v for k, v in DEFAULT_QUICK_RESULT_SETTINGS.items() if k != "permutation_stream"}
    baselines = ("integrated_gradients", "lime", "occlusion")
    stream1 = preset(quick=True, suites=("fur",), baselines=baselines, permutation_stream=1)
    assert stream1.result_settings() == before and stream1.cell_test.permutation_stream == 1
    assert settings_hash(quick().result_settings()) != settings_hash(before)
    with pytest.raises(ValueError, match="permutation_stream must be one of 1, 2"):
        BenchmarkSettings(permutation_stream=0)


def test_full_preset_evaluates_every_test_image() -> None:
    st = preset(quick=False, suites=("fur",), baselines=())
    assert st.pool_per_class is None and st.to_dict()["pool_per_class"] is None and st.n_permutations == 10_000


def test_batch_sizes_do_not_bind_the_store() -> None:
    a, b = BenchmarkSettings(), BenchmarkSettings(forward_batch_size=7, chunk_size=3)
    assert a.result_settings() == b.result_settings() and a.to_dict() != b.to_dict()


@pytest.mark.parametrize(
    ("overrides", "error", "match"),
    [
        ({"pool_per_class": "images_per_class"}, ParameterTypeError, "PoolSize.SUITE_IMAGES_PER_CLASS"),
        ({"pool_per_class": 0}, ValueError, "pool_per_class must be a positive integer"),
        ({"pool_per_class": 2.0}, ParameterTypeError, "pool_per_class"),
        ({"pool_per_class": True}, ParameterTypeError, "pool_per_class"),
        ({"seed": -1}, ValueError, "seed must be an integer in"),
        ({"seed": 1.5}, ParameterTypeError, "seeds are not rounded"),
        ({"alpha": 1.0}, ValueError, "alpha must be a number in"),
        ({"alpha": "0.01"}, ParameterTypeError, "alpha"),
        ({"quick": 1}, ParameterTypeError, "quick must be True or False"),
        ({"n_permutations": 0}, ValueError, r"n_permutations must be an integer in \[1, 10000000\], got 0"),
        ({"n_resamples": 2.5}, ParameterTypeError, "n_resamples"),
        ({"forward_batch_size": 0}, ValueError, "forward_batch_size"),
        ({"chunk_size": None}, ParameterTypeError, "chunk_size"),
        ({"suites": ()}, ValueError, "at least one benchmark suite"),
        ({"baselines": ("lime", "lime")}, ValueError, "must not repeat"),
    ],
)
def test_bad_settings_are_refused_by_name(overrides: dict, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        BenchmarkSettings(**overrides)


def test_numpy_numbers_become_json_numbers() -> None:
    st = BenchmarkSettings(seed=np.int64(3), alpha=np.float32(0.05), pool_per_class=np.int64(4))
    data = json.loads(json.dumps(st.to_dict()))
    assert (data["seed"], data["pool_per_class"]) == (3, 4) and type(st.seed) is int
    assert data["alpha"] == pytest.approx(0.05)


def test_cell_keys_are_stored_as_the_lists_stores_always_held() -> None:
    prop, base = property_key("fur", "fur", "unbiased", 7), baseline_key("fur", "fur", "unbiased", 7, "lime")
    assert prop.as_json() == ["property", "fur", "fur", "unbiased", 7]
    assert base.as_json() == ["baseline", "fur", "fur", "unbiased", 7, "lime"]
    assert CellKey.from_json(json.loads(json.dumps(base.as_json()))) == base
    assert CellKey.from_json(prop.as_json()) == prop and prop.baseline is None
    assert (base.model, base.image, base.baseline) == ("unbiased", 7, "lime")


@pytest.mark.parametrize("bad", [[], ["property", "fur", "fur", "m"], ["baseline", "s", "i", "m", 1], ["suite", "fur"]])
def test_other_keys_are_not_cell_keys(bad: list) -> None:
    with pytest.raises(ValueError, match="not a property or baseline cell key"):
        CellKey.from_json(bad)


def test_a_baseline_record_carries_its_key() -> None:
    key = baseline_key("fur", "background", "dark_is_cat", 3, "occlusion")
    ok = baseline_record(key, flat_map(0.0), flat_map(0.5), None)
    assert record_key(ok) == key and ok["method"] == "occlusion" and ok["image"] == 3
    assert ok["score"] == pytest.approx(0.25) and ok["error"] is None
    failed = baseline_record(key, None, None, "ValueError: no superpixels")
    assert failed["score"] is None and failed["error"] == "ValueError: no superpixels"
    with pytest.raises(ValueError, match="needs a baseline key"):
        baseline_record(property_key("fur", "fur", "m", 3), flat_map(0.0), flat_map(0.5), None)


def flat_map(value: float) -> torch.Tensor:
    return torch.full((3, 2, 2), value)


def test_the_settings_hand_the_cells_their_test_and_forward_pass_checked_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import propgrad.harness.settings as settings_module
    from propgrad.core.forward import RunSettings
    from propgrad.stats.settings import TestSettings, test_settings

    calls: list[dict] = []

    def counting(**kwargs: object) -> TestSettings:
        calls.append(kwargs)
        return test_settings(**kwargs)

    monkeypatch.setattr(settings_module, "test_settings", counting)
    s = BenchmarkSettings(n_permutations=np.int64(300), alpha=0.05, seed=7, n_placebos=19, forward_batch_size=16)
    assert len(calls) == 1  # the benchmark's door checks the test once
    assert s.cell_test == TestSettings(n_permutations=300, alpha=0.05, seed=7, n_placebos=19)
    assert s.cell_test.correction is None  # the run's correction is over images, applied by the summary
    assert s.cell_run == RunSettings(output_transform="softmax", batch_size=16)
    assert "cell_test" not in s.to_dict() and "_cell_test" not in json.dumps(s.to_dict())
    assert type(s.n_permutations) is int and s == BenchmarkSettings(
        n_permutations=300, alpha=0.05, seed=7, n_placebos=19, forward_batch_size=16
    )
