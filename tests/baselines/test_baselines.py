"""Tests of the Captum attribution baselines (propgrad.baselines.captum_methods)."""

from __future__ import annotations

import pytest
import torch
from skimage.segmentation import slic
from torch import nn

from propgrad.baselines.base import AttributionBaseline, change_score
from propgrad.baselines.captum_methods import (
    BASELINES,
    IG_METHODS,
    DeepLiftBaseline,
    GuidedGradCamBaseline,
    IntegratedGradientsBaseline,
    KernelShapBaseline,
    LimeBaseline,
    OcclusionBaseline,
    register_baselines,
)
from propgrad.baselines.layers import relu_safe_model
from propgrad.baselines.superpixels import grid_segments, superpixel_segments

FAST_SETTINGS = {
    "integrated_gradients": {"n_steps": 16},
    "lime": {"n_samples": 20, "n_segments": 16},
    "kernel_shap": {"n_samples": 20, "n_segments": 16},
}


def tiny_net(inplace: bool = True) -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(inplace=inplace),
        nn.Conv2d(8, 8, 3, padding=1, stride=2),
        nn.ReLU(inplace=inplace),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 4),
    ).eval()
    with torch.no_grad():  # logits that vary by O(1), so LIME's Lasso keeps some features
        net[-1].weight.mul_(300)
    return net


class Nested(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = tiny_net()[:4]
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class TopLeftMean(nn.Module):
    """Logits (mean of the top-left quadrant, minus it): looks at nothing else."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2] // 2, x.shape[-1] // 2
        m = x[:, :, :h, :w].mean(dim=(1, 2, 3))
        return torch.stack([m, -m], dim=1)


def make(name: str, **extra: object) -> AttributionBaseline:
    cls = {c.name: c for c in BASELINES}[name]
    return cls(**{**FAST_SETTINGS.get(name, {}), **extra})


@pytest.fixture()
def images() -> torch.Tensor:
    """Blobby images (upsampled 4x4 noise): greying a superpixel changes them a lot."""
    g = torch.Generator().manual_seed(1)
    coarse = torch.rand(2, 3, 4, 4, generator=g)
    return nn.functional.interpolate(coarse, size=(32, 32), mode="bilinear", align_corners=False)


@pytest.mark.parametrize("name", [c.name for c in BASELINES])
def test_maps_shape_finite_detached_deterministic(name: str, images: torch.Tensor) -> None:
    model, target = tiny_net(), torch.tensor([0, 3])
    maps = make(name).attribute(model, images, target)
    assert maps.shape == images.shape and maps.device == images.device
    assert not maps.requires_grad and torch.isfinite(maps).all()
    assert maps.abs().sum() > 0
    torch.testing.assert_close(make(name).attribute(model, images, target), maps)
    # target as one int for the whole batch is the same as a tensor
    same = make(name).attribute(model, images, 2)
    torch.testing.assert_close(same, make(name).attribute(model, images, torch.tensor([2, 2])))


@pytest.mark.parametrize("name", [c.name for c in BASELINES])
def test_change_score_zero_for_same_image_positive_for_different(name: str, images: torch.Tensor) -> None:
    model, target, baseline = tiny_net(), torch.tensor([1, 1]), make(name)
    before = baseline.attribute(model, images, target)
    again = baseline.attribute(model, images.clone(), target)
    assert torch.all(change_score(before, again) == 0)
    after = baseline.attribute(model, 1 - images, target)
    assert torch.all(change_score(before, after) > 0)


def test_seeded_sampling_reproducible_and_leaves_global_rng(images: torch.Tensor) -> None:
    model = tiny_net()
    state = torch.random.get_rng_state()
    a = make("lime", seed=3).attribute(model, images, 0)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(make("lime", seed=3).attribute(model, images, 0), a)
    assert not torch.equal(make("lime", seed=4).attribute(model, images, 0), a)
    # each image is seeded on its own: its map does not depend on the rest of the batch
    alone = make("kernel_shap", seed=3).attribute(model, images[1:], 0)
    torch.testing.assert_close(make("kernel_shap", seed=3).attribute(model, images, 0)[1:], alone)


def test_occlusion_is_zero_where_the_model_does_not_look() -> None:
    x = torch.full((1, 3, 32, 32), 0.2)
    x[..., :16, :16] = 0.9
    maps = OcclusionBaseline().attribute(TopLeftMean(), x, 0)
    # 9x9 windows with stride 4 that cover pixel row/col >= 24 all start past the quadrant
    assert maps[..., 24:, :].abs().max() == 0 and maps[..., :, 24:].abs().max() == 0
    assert (maps[..., :12, :12] > 0).all()  # grey 0.5 lowers the bright quadrant's mean


def test_integrated_gradients_local_and_complete(images: torch.Tensor) -> None:
    maps = IntegratedGradientsBaseline(n_steps=8).attribute(TopLeftMean(), images, 0)
    assert maps[..., 16:, :].abs().max() == 0 and maps[..., :, 16:].abs().max() == 0
    model, target = tiny_net(), torch.tensor([0, 2])
    ig = IntegratedGradientsBaseline(n_steps=64).attribute(model, images, target)
    with torch.no_grad():
        gain = model(images) - model(torch.zeros_like(images))
    expected = gain.gather(1, target[:, None]).squeeze(1)
    torch.testing.assert_close(ig.flatten(1).sum(1), expected, atol=2e-3, rtol=2e-2)


def test_deeplift_sums_to_difference_from_reference(images: torch.Tensor) -> None:
    model, target = tiny_net(), torch.tensor([1, 3])
    maps = DeepLiftBaseline().attribute(model, images, target)
    with torch.no_grad():
        gain = model(images) - model(torch.zeros_like(images))
    torch.testing.assert_close(maps.flatten(1).sum(1), gain.gather(1, target[:, None]).squeeze(1), atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("cls", [GuidedGradCamBaseline, DeepLiftBaseline])
def test_inplace_relu_model_matches_outofplace_and_is_not_mutated(cls: type, images: torch.Tensor) -> None:
    model, plain = tiny_net(inplace=True), tiny_net(inplace=False)
    params = [p.clone() for p in model.parameters()]
    maps = cls().attribute(model, images, 1)
    torch.testing.assert_close(maps, cls().attribute(plain, images, 1))
    assert all(m.inplace for m in model.modules() if isinstance(m, nn.ReLU))
    assert all(torch.equal(a, b) for a, b in zip(params, model.parameters()))
    assert not model._forward_hooks and not model[1]._forward_hooks
    assert not model[1]._backward_hooks and not model[1]._forward_pre_hooks


def test_relu_safe_copy_is_cached_and_shares_weights() -> None:
    model = tiny_net(inplace=True)
    safe = relu_safe_model(model)
    assert safe is not model and relu_safe_model(model) is safe
    assert not any(m.inplace for m in safe.modules() if isinstance(m, nn.ReLU))
    assert all(a is b for a, b in zip(model.parameters(), safe.parameters()))
    model.train()
    assert relu_safe_model(model).training
    assert relu_safe_model(tiny_net(inplace=False)) is not safe


def test_guided_gradcam_finds_last_conv_and_named_layers(images: torch.Tensor) -> None:
    model = tiny_net()
    auto = GuidedGradCamBaseline().attribute(model, images, 0)
    torch.testing.assert_close(GuidedGradCamBaseline(layer="2").attribute(model, images, 0), auto)
    assert not torch.allclose(GuidedGradCamBaseline(layer="0").attribute(model, images, 0), auto)
    nested = Nested()
    auto = GuidedGradCamBaseline().attribute(nested, images, 0)
    named = GuidedGradCamBaseline(layer="features.2").attribute(nested, images, 0)
    torch.testing.assert_close(named, auto)


def test_guided_gradcam_errors(images: torch.Tensor) -> None:
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 4), nn.ReLU(), nn.Linear(4, 4))
    with pytest.raises(ValueError, match="no nn.Conv2d"):
        GuidedGradCamBaseline().attribute(mlp, images, 0)
    with pytest.raises(ValueError, match="layer must name a submodule.*'conv9'"):
        GuidedGradCamBaseline(layer="conv9").attribute(tiny_net(), images, 0)


def test_kernel_shap_survives_single_segment_slic() -> None:
    noise = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    pixels = noise[0].permute(1, 2, 0).double().numpy()
    assert slic(pixels, n_segments=100, compactness=1, start_label=0).max() == 0  # the pitfall
    baseline = KernelShapBaseline(n_samples=10)
    maps = baseline.attribute(tiny_net(), noise, 0)
    assert torch.isfinite(maps).all() and maps.abs().sum() > 0
    info = baseline.last_segmentation_info[0]
    assert info["strategy"] != "slic_lab" and info["n_segments"] >= 4


def test_superpixel_fallbacks() -> None:
    image = torch.rand(3, 20, 30, generator=torch.Generator().manual_seed(0))
    labels, info = superpixel_segments(image, n_segments=12, min_segments=10_000)
    assert info["strategy"] == "grid" and labels.shape == (20, 30)
    assert torch.equal(labels.unique(), torch.arange(info["n_segments"]))
    assert grid_segments(4, 4, 4).tolist() == [[0, 0, 1, 1]] * 2 + [[2, 2, 3, 3]] * 2
    with pytest.raises(ValueError, match="at least 2 superpixels"):
        superpixel_segments(torch.rand(3, 1, 1), n_segments=100)


def test_input_validation(images: torch.Tensor) -> None:
    baseline, model = OcclusionBaseline(), tiny_net()
    with pytest.raises(ValueError, match=r"target must hold class indices in \[0, 3\]"):
        baseline.attribute(model, images, torch.tensor([0, 4]))
    with pytest.raises(ValueError, match=r"target must have shape \(2,\)"):
        baseline.attribute(model, images, torch.tensor([0, 1, 2]))
    with pytest.raises(TypeError, match="target must hold integer"):
        baseline.attribute(model, images, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="images must hold values in"):
        baseline.attribute(model, images * 3, 0)
    with pytest.raises(ValueError, match="window"):
        OcclusionBaseline(window=40).attribute(model, images, 0)
    with pytest.raises(ValueError, match="n_samples must be a positive int"):
        LimeBaseline(n_samples=0)
    with pytest.raises(ValueError, match="baseline must be a number in"):
        OcclusionBaseline(baseline=2)


def test_register_baselines_registers_all_six() -> None:
    seen: list[type] = []
    register_baselines(seen.append)
    assert {c.name for c in seen} == {
        "integrated_gradients",
        "deeplift",
        "guided_gradcam",
        "occlusion",
        "lime",
        "kernel_shap",
    }
    assert all(issubclass(c, AttributionBaseline) and c.description for c in seen)


# input checks ------------------------------------------------------------------------------


def test_integrated_gradients_method_is_checked_against_captums_rules() -> None:
    from captum.attr._utils.approximation_methods import SUPPORTED_METHODS

    assert set(IG_METHODS) == set(SUPPORTED_METHODS)
    for method in IG_METHODS:
        assert IntegratedGradientsBaseline(method=method).method == method
    with pytest.raises(ValueError, match=r"method must be one of 'gausslegendre', .*'riemann_middle', got 'gauss'"):
        IntegratedGradientsBaseline(method="gauss")
    with pytest.raises(TypeError, match=r"method must be one of .*, got None \(NoneType\)"):
        IntegratedGradientsBaseline(method=None)


def test_integrated_gradients_other_rule_runs(images: torch.Tensor) -> None:
    maps = IntegratedGradientsBaseline(n_steps=8, method="riemann_trapezoid").attribute(tiny_net(), images, 0)
    assert maps.shape == images.shape and torch.isfinite(maps).all()


def test_guided_gradcam_interpolate_mode_is_checked(images: torch.Tensor) -> None:
    with pytest.raises(ValueError, match=r"interpolate_mode must be one of 'nearest', .*'area', got 'cubic'"):
        GuidedGradCamBaseline(interpolate_mode="cubic")
    smooth = GuidedGradCamBaseline(interpolate_mode="bilinear").attribute(tiny_net(), images, 0)
    assert smooth.shape == images.shape and torch.isfinite(smooth).all()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", [c.name for c in BASELINES])
def test_images_of_other_float_dtypes_run_in_the_models_dtype(name: str, dtype: torch.dtype, images) -> None:
    model = tiny_net()
    other = images.to(dtype)
    maps = make(name).attribute(model, other, 1)
    assert maps.dtype == torch.float32 and maps.shape == images.shape and torch.isfinite(maps).all()
    torch.testing.assert_close(maps, make(name).attribute(model, other.float(), 1))


def test_float64_model_gets_float64_images(images: torch.Tensor) -> None:
    model = tiny_net().double()
    assert torch.isfinite(OcclusionBaseline().attribute(model, images, 0)).all()  # float32 images, float64 model
    assert IntegratedGradientsBaseline(n_steps=4).attribute(model, images, 0).dtype == torch.float64
    parameterless = IntegratedGradientsBaseline(n_steps=4).attribute(TopLeftMean(), images.double(), 0)
    assert parameterless.dtype == torch.float64  # no parameters: the images keep their dtype


def test_numpy_scalars_are_accepted(images: torch.Tensor) -> None:
    import numpy as np

    model = tiny_net()
    assert OcclusionBaseline(baseline=np.float32(0.5), window=np.int64(9)).baseline == 0.5
    lime = LimeBaseline(n_samples=np.int64(20), n_segments=16, compactness=np.float32(1.0), seed=np.int64(3))
    assert (lime.compactness, lime.seed) == (1.0, 3) and type(lime.seed) is int
    torch.testing.assert_close(
        lime.attribute(model, images, np.int64(1)), make("lime", seed=3).attribute(model, images, 1)
    )
    assert IntegratedGradientsBaseline(baseline=np.float64(0.25)).baseline == 0.25


@pytest.mark.parametrize(
    ("cls", "kwargs", "match"),
    [
        (IntegratedGradientsBaseline, {"n_steps": "16"}, r"n_steps must be a positive integer, got '16' \(str\)"),
        (IntegratedGradientsBaseline, {"baseline": "black"}, r"baseline must be a number in \[0, 1\], got 'black'"),
        (IntegratedGradientsBaseline, {"internal_batch_size": 0.5}, "internal_batch_size must be a positive integer"),
        (OcclusionBaseline, {"window": 9.0}, r"window must be a positive integer, got 9.0 \(float\)"),
        (OcclusionBaseline, {"baseline": float("nan")}, r"baseline must be a number in \[0, 1\], not NaN"),
        (OcclusionBaseline, {"baseline": [0.5]}, r"baseline must be a number in \[0, 1\], got \[0.5\] \(list\)"),
        (LimeBaseline, {"seed": 1.5}, r"seed must be an integer .*got 1.5 \(float\); seeds are not rounded"),
        (LimeBaseline, {"seed": None}, r"seed must be an integer .*got None"),
        (LimeBaseline, {"seed": -3}, r"seed must be an integer .*got -3"),
        (KernelShapBaseline, {"compactness": "1"}, r"compactness must be a number > 0, got '1' \(str\)"),
        (KernelShapBaseline, {"compactness": 0}, r"compactness must be a number > 0, got 0"),
        (KernelShapBaseline, {"n_segments": 1}, r"n_segments must be an integer >= 2, got 1"),
        (GuidedGradCamBaseline, {"layer": 3}, "layer must be a dotted module name"),
        (DeepLiftBaseline, {"baseline": True}, r"baseline must be a number in \[0, 1\], got True \(bool\)"),
    ],
)
def test_bad_settings_are_named(cls: type, kwargs: dict, match: str) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        cls(**kwargs)


def test_bad_target_types(images: torch.Tensor) -> None:
    import numpy as np

    with pytest.raises(TypeError, match="target must be an int or a long tensor"):
        OcclusionBaseline().attribute(tiny_net(), images, 1.0)
    with pytest.raises(TypeError, match="target must be an int or a long tensor"):
        OcclusionBaseline().attribute(tiny_net(), images, np.bool_(True))


def test_importing_the_baselines_does_not_import_captum_or_matplotlib() -> None:
    import subprocess
    import sys

    code = (
        "import sys, propgrad.baselines, propgrad.baselines.captum_methods, propgrad.baselines.superpixels\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'captum', 'matplotlib', 'skimage'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("cls", [LimeBaseline, KernelShapBaseline])
def test_one_forward_pass_for_all_samples_gives_the_same_maps(cls: type, images: torch.Tensor) -> None:
    model, target = tiny_net(), torch.tensor([0, 3])
    default = cls()
    assert default.perturbations_per_eval == default.n_samples  # every perturbed sample in one pass
    one_by_one = cls(perturbations_per_eval=1)
    torch.testing.assert_close(default.attribute(model, images, target), one_by_one.attribute(model, images, target))
