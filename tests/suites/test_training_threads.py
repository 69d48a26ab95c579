"""Suite training gives the same bits whatever torch's thread count (the benchmark's ``--threads``).

Without the pinning of :func:`propgrad.suites.training.reproducible_cpu`, two threads sum the
batch-norm statistics and convolution weight gradients of even this tiny ConvMixer (32 images of
16 px, dim 8, two steps) in another order, and the weights differ in the last bits (seen with
torch 2.x on a 2-core Xeon; a quick fur model then differs by up to 0.8 per parameter).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

import pytest
import torch

from propgrad.cli.benchmark import torch_threads
from propgrad.core.cache import CacheRebuildWarning
from propgrad.errors import InvalidParameterError
from propgrad.harness.identity import weights_hash
from propgrad.suites import training
from propgrad.suites.cached import CachedSuite
from propgrad.suites.training import TRAINING_THREADS, TrainingConfig, reproducible_cpu, train_classifier

CONFIG = TrainingConfig(epochs=1, batch_size=16, dim=8, depth=1, kernel_size=3, patch_size=4)


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.rand(32, 3, 16, 16, generator=gen), torch.randint(0, 2, (32,), generator=gen)


def _weights_with(threads: int) -> dict[str, torch.Tensor]:
    """Train CONFIG inside the benchmark's ``--threads`` context; the caller's count must survive."""
    with torch_threads(threads):
        model = train_classifier(*_data(), CONFIG, seed=3)
        assert torch.get_num_threads() == threads
    return {name: value.clone() for name, value in model.state_dict().items()}


def _differing(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> list[str]:
    assert a.keys() == b.keys()
    return [name for name in a if not torch.equal(a[name], b[name])]


def test_training_gives_bit_identical_weights_on_one_and_two_threads() -> None:
    assert _differing(_weights_with(1), _weights_with(2)) == []


def test_without_the_pinning_two_threads_give_other_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    # Shows the test above can fail: the same training, unpinned, differs between 1 and 2 threads.
    @contextlib.contextmanager
    def unpinned(threads: int = TRAINING_THREADS) -> Iterator[None]:
        yield

    monkeypatch.setattr(training, "reproducible_cpu", unpinned)
    differing = _differing(_weights_with(1), _weights_with(2))
    if not differing:
        pytest.skip("this torch build splits no work of this size over two threads; the test above proves nothing")
    assert differing


class RandomSuite(CachedSuite):
    """A cached suite training :data:`CONFIG` on the random images of :func:`_data`."""

    name = "random"
    class_names = ("a", "b")
    interventions = ("none",)
    training_splits = ("only",)

    def training_config(self) -> TrainingConfig:
        return CONFIG

    def settings(self) -> dict[str, Any]:
        return self.settings_base()

    def training_data(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        return _data()

    def make_test_data(self) -> dict[str, torch.Tensor]:
        images, labels = _data()
        return {"images": images, "labels": labels}

    def evaluation_data(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        return {"test": self.test_set()}

    def intervene(self, intervention: str, index: int) -> Any:
        raise NotImplementedError


def test_a_damaged_cached_model_retrained_on_other_threads_equals_the_lost_one(tmp_path: Path) -> None:
    with torch_threads(2):
        lost = weights_hash(RandomSuite(cache_dir=tmp_path).models()["only"])
    model_file = RandomSuite(cache_dir=tmp_path).cache_path / "model_only.pt"
    model_file.write_bytes(model_file.read_bytes()[:100])
    again = RandomSuite(cache_dir=tmp_path)
    with torch_threads(1), pytest.warns(CacheRebuildWarning, match="retraining"):
        retrained = weights_hash(again.models()["only"])
    assert again.training_seconds and retrained == lost


def test_reproducible_cpu_restores_the_callers_settings_also_on_error() -> None:
    with torch_threads(2):
        assert not torch.are_deterministic_algorithms_enabled()
        with pytest.raises(RuntimeError, match="inside"), reproducible_cpu():
            assert torch.get_num_threads() == TRAINING_THREADS == 1
            assert torch.are_deterministic_algorithms_enabled()
            raise RuntimeError("raised inside")
        assert torch.get_num_threads() == 2 and not torch.are_deterministic_algorithms_enabled()


def test_reproducible_cpu_refuses_a_thread_count_that_is_no_positive_integer() -> None:
    for bad in (0, 1.5, "2"):
        with pytest.raises(InvalidParameterError, match="threads"), reproducible_cpu(bad):  # type: ignore[arg-type]
            pass
