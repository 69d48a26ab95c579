"""The benchmark's stopwatch wrappers (propgrad.harness.timing)."""

from __future__ import annotations

import torch
from torch import nn

from propgrad.core.forward import run_model
from propgrad.harness.timing import Stopwatch, TimedModule


class _CountingEval(nn.Sequential):
    """A model that counts how often it (or a wrapper above it) is switched to eval mode."""

    def __init__(self) -> None:
        super().__init__(nn.Flatten(), nn.Linear(12, 2))
        self.switches = 0

    def train(self, mode: bool = True) -> _CountingEval:
        self.switches += not mode
        return super().train(mode)


def test_timed_module_times_forward_passes_and_keeps_the_models_mode() -> None:
    images = torch.rand(5, 3, 2, 2)
    model = _CountingEval().eval()
    model.switches = 0
    watch = Stopwatch()
    timed = TimedModule(model, watch)
    assert not timed.training  # in the model's mode, so no pass switches modes
    want = model(images)
    got = run_model(timed, images, batch_size=2)
    torch.testing.assert_close(got, want)
    assert model.switches == 0
    assert watch.seconds["forward"] > 0
    trained = TimedModule(_CountingEval().train(), watch)
    assert trained.training
    run_model(trained, images)
    assert trained.training and trained.module.training  # switched for the pass, restored after it
