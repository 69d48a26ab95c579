"""propgrad.core.forward: the one forward pass (run_model) and the output transforms."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

from propgrad.core.forward import run_model, transform_outputs
from propgrad.core.validation import ParameterTypeError
from propgrad.errors import ModelOutputError


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 2, 3)
        self.bn = nn.BatchNorm2d(2)
        self.drop = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.bn(self.conv(x))).mean((2, 3))


def images(n: int = 5) -> torch.Tensor:
    return torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(1))


def test_train_mode_model_runs_in_eval_mode_and_gets_its_modes_back():
    net = Net().train()
    net.drop.eval()
    before = {name: m.training for name, m in net.named_modules()}
    running = net.bn.running_mean.clone()
    out = run_model(net, images(), batch_size=2)
    assert {name: m.training for name, m in net.named_modules()} == before
    assert torch.equal(net.bn.running_mean, running) and int(net.bn.num_batches_tracked) == 0
    torch.testing.assert_close(out, run_model(net, images(), batch_size=5))
    assert not out.requires_grad


def test_mode_is_restored_when_the_model_raises():
    class Failing(Net):
        def forward(self, x):
            raise RuntimeError("boom")

    net = Failing().train()
    with pytest.raises(RuntimeError, match="boom"):
        run_model(net, images())
    assert all(m.training for m in net.modules())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_images_are_cast_to_the_models_dtype(dtype):
    net = Net().eval()
    out = run_model(net, images().to(dtype))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, run_model(net, images().to(dtype).float()))


def test_double_models_keep_float64_outputs():
    net = Net().double().eval()
    assert run_model(net, images()).dtype == torch.float64


def test_hugging_face_style_outputs_are_read_from_logits():
    class Output:
        def __init__(self, logits):
            self.logits = logits

    out = run_model(lambda x: Output(x.mean((2, 3))), images())
    torch.testing.assert_close(out, images().mean((2, 3)))


@pytest.mark.parametrize(
    ("model", "error", "match"),
    [
        (
            lambda x: torch.zeros(x.shape[0], 2, dtype=torch.complex64),
            ModelOutputError,  # the model's fault, a ValueError
            r"complex outputs \(torch.complex64\)",
        ),
        (lambda x: torch.zeros(x.shape[0], 0), ValueError, r"n_outputs >= 1 .*got \(5, 0\)"),
        (lambda x: torch.zeros(x.shape[0] + 1, 2), ValueError, r"must return shape \(5, n_outputs\) .*got \(6, 2\)"),
        (lambda x: {"logits": x}, ValueError, r"must return a tensor .*got dict"),
        (lambda x: torch.full((x.shape[0], 2), float("inf")), ValueError, r"NaN or Inf at step 0, output column 0"),
    ],
)
def test_bad_model_outputs_are_named(model, error, match):
    with pytest.raises(error, match=match):
        run_model(model, images())


def test_preprocess_must_return_one_row_per_image():
    with pytest.raises(TypeError, match=r"preprocess 'as_list' must return a tensor with one row per image.*got list"):

        def as_list(x):
            return list(x)

        run_model(lambda x: x.mean((1, 2, 3)), images(), preprocess=as_list)
    with pytest.raises(
        ValueError, match=r"\(B, \.\.\.\) = \(2, \.\.\.\) for images of shape \(2, 3, 8, 8\), got shape"
    ):
        run_model(lambda x: x.mean((1, 2, 3)), images(), preprocess=lambda x: x.flatten(), batch_size=2)
    with pytest.raises(TypeError, match="preprocess must be callable or None, got int"):
        run_model(lambda x: x.mean((1, 2, 3)), images(), preprocess=3)
    resized = run_model(lambda x: x.flatten(1), images(), preprocess=lambda x: x[:, :, :2, :2])
    assert resized.shape == (5, 12)  # another image size (or layout) is fine: one row per image


def test_devices_are_checked_before_any_tensor_moves():
    with pytest.raises(ValueError, match=r"device must be one of the available devices \('cpu'.*got 'bogus'"):
        run_model(lambda x: x.mean((1, 2, 3)), images(), device="bogus")
    with pytest.raises(ParameterTypeError, match="device must be a device name"):
        run_model(lambda x: x.mean((1, 2, 3)), images(), device=0.5)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"device 'cuda:0' is not available.*available devices: 'cpu'"):
            run_model(lambda x: x.mean((1, 2, 3)), images(), device="cuda:0")


def test_row_aligned_arguments_are_sliced_with_their_batch():
    rows = torch.arange(5.0)[:, None]
    out = run_model(
        lambda x, r, c: x.mean((1, 2, 3))[:, None] * 0 + r + c,
        images(),
        additional_forward_args=(rows, 1.0),
        row_aligned=(True, False),
        batch_size=2,
    )
    torch.testing.assert_close(out, rows + 1.0)
    with pytest.raises(ValueError, match=r"one row per image \(5\), got shape \(4, 1\)"):
        run_model(lambda x, r: x, images(), additional_forward_args=(rows[:4],), row_aligned=(True,))


def test_one_column_softmax_is_the_sigmoid():
    logits = torch.tensor([[-2.0], [0.0], [3.0]])
    torch.testing.assert_close(transform_outputs(logits, "softmax"), logits.sigmoid())
    torch.testing.assert_close(
        transform_outputs(torch.tensor([[1.0, 2.0]]), "softmax"), torch.tensor([[1.0, 2.0]]).softmax(-1)
    )


@pytest.mark.parametrize(
    ("transform", "error", "match"),
    [
        (
            lambda o: o.sum(),
            ValueError,
            r"must return shape \(3, C\) or \(3,\) for outputs of shape \(3, 2\), got \(\)",
        ),
        (lambda o: o / 0 * 0, ValueError, r"returned NaN or Inf at step 0, column 0"),
        (lambda o: 1.0, TypeError, r"must return a real tensor of shape \(N, C\), got float"),
        (lambda o: o.to(torch.complex64), TypeError, r"got dtype torch.complex64"),
        ("log_softmax", ValueError, r"output_transform must be one of \('softmax', 'sigmoid', 'none'\)"),
    ],
)
def test_bad_output_transforms_are_named(transform, error, match):
    with pytest.raises(error, match=match):
        transform_outputs(torch.rand(3, 2), transform)


def test_run_settings_are_checked_once_at_their_door_and_trusted_by_forward_batches():
    import numpy as np

    from propgrad.core.forward import RunSettings, forward_batches, run_settings

    extra = (torch.arange(5.0)[:, None],)
    run = run_settings(batch_size=np.int64(2), device="cpu", additional_forward_args=extra)
    expected = RunSettings(batch_size=2, device=torch.device("cpu"), additional_forward_args=extra)
    assert run == replace(expected, per_image_args=(False,)) and type(run.batch_size) is int
    model = Net().eval()
    torch.testing.assert_close(forward_batches(model, images(), run_settings(batch_size=2)), run_model(model, images()))
    rows = torch.arange(5.0)[:, None]
    aligned = run_settings(batch_size=2, additional_forward_args=(rows,), per_image_args=(True,))
    out = forward_batches(lambda x, r: x.mean((1, 2, 3))[:, None] * 0 + r, images(), aligned)
    torch.testing.assert_close(out, rows)
    for kwargs, match in [
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"show_progress": "yes"}, "show_progress must be True or False"),
        ({"preprocess": 3}, "preprocess must be callable"),
        ({"additional_forward_args": (1,), "per_image_args": (True, True)}, "2 flags for 1"),
    ]:
        with pytest.raises((TypeError, ValueError), match=match):
            run_settings(**kwargs)


def test_forward_batches_over_pieces_runs_the_batches_of_their_concatenation(monkeypatch):
    from propgrad.core import forward
    from propgrad.core.forward import forward_batches, run_settings

    seen: list[torch.Tensor] = []

    def model(x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        seen.append(x)
        return x.flatten(1).sum(1, keepdim=True) + r

    whole = torch.rand(23, 3, 4, 4, generator=torch.Generator().manual_seed(2))
    pieces = [whole[:1], whole[1:8], whole[8:8], whole[8:9], whole[9:23]]  # batches span pieces
    rows = torch.arange(23.0)[:, None]
    run = run_settings(batch_size=4, additional_forward_args=(rows,), per_image_args=(True,))
    expected = forward_batches(model, whole, run)
    concatenated = [batch.clone() for batch in seen]
    for slab_batches in (2, 3, 100):
        monkeypatch.setattr(forward, "SLAB_BYTES", slab_batches * 4 * whole[0].numel() * 4)
        seen.clear()
        assert torch.equal(forward_batches(model, pieces, run), expected)
        assert [b.shape[0] for b in seen] == [4, 4, 4, 4, 4, 3]
        for batch, reference in zip(seen, concatenated):
            assert torch.equal(batch, reference) and batch.is_contiguous()
        if slab_batches == 2:  # the third slab, rows 16-22, lies in one piece: a view, not a copy
            assert seen[4].data_ptr() == whole[16].data_ptr()
