"""PropertyGradient.attribute on the models users bring: extra per-image arguments, train mode,
Hugging Face outputs, binary heads and images of another dtype than the model's."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import propgrad
from propgrad import PropertyGradient
from propgrad.stats.settings import test_settings
from tests.fakes import Brighten


def test_per_image_additional_forward_args_follow_their_image_along_its_sequence():
    class M(nn.Module):
        def forward(self, x, bias):
            return x.mean((2, 3))[:, :2] + bias

    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    bias = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    explanations = PropertyGradient(M(), output_transform="none").attribute(
        x,
        source="gaussian_vignette",
        source_params={"steps": 4},
        target=0,
        additional_forward_args=(bias,),
        n_permutations=100,
    )
    for i, explanation in enumerate(explanations):
        expected = explanation.images.mean((2, 3))[:, 0] + bias[i, 0]
        torch.testing.assert_close(explanation.outputs[:, 0], expected)
        torch.testing.assert_close(explanation.original_outputs[0], x[i].mean((1, 2))[0] + bias[i, 0])
    assert float(explanations[0].outputs[:, 0].max()) < 1.0 < 10.0 < float(explanations[1].outputs[:, 0].min())


def test_a_non_per_image_tensor_argument_is_passed_unchanged_to_every_batch():
    seen = []

    def model(x, scale):
        seen.append(tuple(scale.shape))
        return x.mean((1, 2, 3))[:, None] * scale

    images = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    PropertyGradient(model, output_transform="none", batch_size=4).attribute(
        images, Brighten(steps=5), additional_forward_args=torch.ones(3), n_permutations=10
    )
    assert seen and all(shape == (3,) for shape in seen)  # three entries: not one row per image


class BatchNormNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        return self.head(self.bn(self.conv(x)).relu().mean((2, 3)))


def test_a_model_in_train_mode_runs_in_eval_mode_and_keeps_its_state():
    model = BatchNormNet()
    model.train()
    model.head.eval()  # a mixed state must come back as it was, module by module
    stats = {k: v.clone() for k, v in model.bn.state_dict().items()}
    modes = {name: m.training for name, m in model.named_modules()}
    image = torch.rand(3, 12, 12, generator=torch.Generator().manual_seed(2))
    one = PropertyGradient(model, batch_size=1).attribute(image, Brighten(), n_permutations=200)
    seven = PropertyGradient(model, batch_size=7).attribute(image, Brighten(), n_permutations=200)
    torch.testing.assert_close(one.outputs, seven.outputs)
    torch.testing.assert_close(one.score, seven.score)
    assert {name: m.training for name, m in model.named_modules()} == modes
    for key, value in model.bn.state_dict().items():
        assert torch.equal(value, stats[key]), key  # running statistics (and the batch count) untouched
    with torch.no_grad():
        eval_outputs = copy.deepcopy(model).eval()(image[None])
    torch.testing.assert_close(one.original_outputs, eval_outputs.softmax(-1)[0])


def test_hugging_face_image_classifier_outputs_are_read_from_logits():
    transformers = pytest.importorskip("transformers")
    config = transformers.ViTConfig(
        image_size=16,
        patch_size=8,
        num_hidden_layers=1,
        hidden_size=16,
        num_attention_heads=2,
        intermediate_size=16,
        num_labels=3,
        hidden_dropout_prob=0.5,
        attention_probs_dropout_prob=0.5,
    )
    torch.manual_seed(0)
    model = transformers.ViTForImageClassification(config)
    assert model.training  # built from a config, it starts in train mode (with dropout here)
    image = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(3))
    a = PropertyGradient(model).attribute(image, Brighten(), n_permutations=100)
    b = PropertyGradient(model, batch_size=3).attribute(image, Brighten(), n_permutations=100)
    assert a.outputs.shape == (9, 3) and a.score.shape == (3,)
    torch.testing.assert_close(a.outputs, b.outputs)  # eval mode: no dropout, no batch dependence
    with torch.no_grad():
        expected = model.eval()(pixel_values=image[None]).logits.softmax(-1)[0]
    torch.testing.assert_close(a.original_outputs, expected)


def test_a_binary_classifier_returning_n_by_1_flips_like_one_returning_n():
    def flat(x):
        return 20 * (x.mean((1, 2, 3)) - 0.5)

    def column(x):
        return flat(x)[:, None]

    image = 0.5 * torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(4))  # a dark original: decision 0
    by_flat = PropertyGradient(flat).attribute(image, Brighten(), n_permutations=100)
    by_column = PropertyGradient(column).attribute(image, Brighten(), n_permutations=100)
    assert by_flat.flips.n_flips == 1 and by_flat.flips.final_differs
    assert by_column.flips.to_dict() == by_flat.flips.to_dict()
    torch.testing.assert_close(by_column.outputs, by_flat.outputs)
    # the default softmax over the single column is its sigmoid, not the constant 1
    torch.testing.assert_close(by_column.outputs[:, 0], flat(by_column.images).sigmoid())
    assert float(by_column.score) > 0.01


class SmallConv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(5)
        self.conv = nn.Conv2d(3, 2, 3)

    def forward(self, x):
        return self.conv(x).mean((2, 3))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_images_of_another_float_dtype_are_cast_to_the_models(dtype):
    image = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(6))
    pg = PropertyGradient(SmallConv())
    reference = pg.attribute(
        image.to(dtype).float(), "gaussian_vignette", source_params={"steps": 5}, n_permutations=50
    )
    explanation = pg.attribute(image.to(dtype), "gaussian_vignette", source_params={"steps": 5}, n_permutations=50)
    assert explanation.outputs.dtype == torch.float32 and explanation.outputs.shape == (5, 2)
    tolerance = 1e-6 if dtype == torch.float64 else 2e-2  # the vignette itself runs in the images' dtype
    torch.testing.assert_close(explanation.outputs, reference.outputs, atol=tolerance, rtol=tolerance)


def test_behaviour_plot_is_titled_with_the_statistic_it_shows():
    pytest.importorskip("matplotlib")
    image = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(7))
    pg = PropertyGradient(lambda x: 20 * (x.mean((1, 2, 3)) - 0.5))
    gradient = pg.attribute(image, Brighten(), n_permutations=50)
    pearson = pg.attribute(image, Brighten(), n_permutations=50, settings=test_settings(statistic="pearson"))

    def spread(permuted, values):
        return permuted.amax(1) - permuted.amin(1)

    custom = pg.attribute(image, Brighten(), n_permutations=50, settings=test_settings(statistic=spread))
    assert gradient.plot_behaviour().get_title().startswith("E|grad| = ")
    assert pearson.plot_behaviour().get_title().startswith("|Pearson r| = ")
    assert custom.plot_behaviour().get_title().startswith("spread = ")
    import matplotlib.pyplot as plt

    plt.close("all")


def test_public_names_still_resolve():
    assert propgrad.PropertyGradient is PropertyGradient
