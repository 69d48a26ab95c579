"""Settings are checked once, at the door: ``attribute`` validates the test once whatever the number
of images, and the run settings once, when the explainer is built; below the door nothing re-checks."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import pytest
import torch

import propgrad.core.forward
import propgrad.core.validation
import propgrad.stats.settings
from propgrad import PropertyGradient
from propgrad.example_model import colour_balance_net
from propgrad.explain.arguments import resolve_test_settings
from propgrad.stats.settings import TestSettings


def count_calls(monkeypatch: pytest.MonkeyPatch, function: Callable[..., Any]) -> list[int]:
    """Replace ``function`` in every propgrad module that holds it by a counting wrapper; returns the counter."""
    calls: list[int] = []

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return function(*args, **kwargs)

    holders = [
        module
        for name, module in list(sys.modules.items())
        if name.startswith("propgrad") and getattr(module, function.__name__, None) is function
    ]
    assert holders, f"no module holds {function.__name__}"
    for module in holders:
        monkeypatch.setattr(module, function.__name__, counting)
    return calls


def _count_input_image_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the images ``check_images`` is asked to check, but the sequences built by hand (placebos)."""
    names: list[str] = []
    original = propgrad.core.validation.check_images

    def counting(images: Any, name: str = "images", **kwargs: Any) -> Any:
        if name != "InterventionSequence.images":
            names.append(name)
        return original(images, name, **kwargs)

    for module in [m for n, m in list(sys.modules.items()) if n.startswith("propgrad")]:
        if getattr(module, "check_images", None) is original:
            monkeypatch.setattr(module, "check_images", counting)
    return names


@pytest.mark.parametrize("n_images", [1, 5])
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"target": None, "n_placebos": 19, "correction": "holm", "min_effect": 1e-6, "alpha": 0.25},
    ],
)
def test_attribute_validates_the_test_once_whatever_the_number_of_images(
    monkeypatch: pytest.MonkeyPatch, n_images: int, options: dict[str, Any]
) -> None:
    images = torch.rand(n_images, 3, 16, 16, generator=torch.Generator().manual_seed(n_images))
    explainer = PropertyGradient(colour_balance_net())
    test_checks = count_calls(monkeypatch, propgrad.stats.settings.test_settings)
    image_checks = _count_input_image_checks(monkeypatch)
    run_checks = count_calls(monkeypatch, propgrad.core.forward.run_settings)
    result = explainer.attribute(images, "alpha_patch", **{"target": 0, "n_permutations": 99, **options})
    assert len(result) == n_images
    assert len(test_checks) == 1  # the door, and nothing below it (2 + B before issue 18)
    assert run_checks == []  # checked when the explainer was built
    assert image_checks == ["inputs"]  # the batch at the door; the source does not check each image again


def test_the_run_settings_are_checked_once_when_the_explainer_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    run_checks = count_calls(monkeypatch, propgrad.core.forward.run_settings)
    explainer = PropertyGradient(colour_balance_net(), batch_size=4)
    assert len(run_checks) == 1 and explainer.batch_size == 4


def test_the_keywords_and_the_settings_object_merge_without_silent_loss() -> None:
    base = TestSettings()
    assert resolve_test_settings(None, **KEYWORD_DEFAULTS) == base
    rare = propgrad.stats.settings.test_settings(per="unit", n_permutations=500, seed=4)
    merged = resolve_test_settings(rare, **{**KEYWORD_DEFAULTS, "alpha": 0.05})
    assert (merged.per, merged.n_permutations, merged.seed, merged.alpha) == ("unit", 500, 4, 0.05)
    same = resolve_test_settings(rare, **{**KEYWORD_DEFAULTS, "n_permutations": 500})
    assert same.n_permutations == 500
    with pytest.raises(ValueError, match=r"n_permutations=200 contradicts settings.n_permutations=500"):
        resolve_test_settings(rare, **{**KEYWORD_DEFAULTS, "n_permutations": 200})
    with pytest.raises(TypeError, match="settings must be a TestSettings"):
        resolve_test_settings({"per": "unit"}, **KEYWORD_DEFAULTS)  # type: ignore[arg-type]


KEYWORD_DEFAULTS: dict[str, Any] = {
    "n_permutations": 10_000,
    "alpha": 0.01,
    "seed": 0,
    "n_placebos": 100,
    "min_effect": 0.0,
    "correction": None,
}
