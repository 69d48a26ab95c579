"""The qwen_image_edit adapter: per-sample true CFG, equal to the stock pipeline; parameters checked at the door.

The tiny pipeline is built in memory (``tiny_qwen_image_edit_pipeline``): with transformers 5 a
saved ``Qwen2VLProcessor`` needs a video processor, which needs torchvision (see the README). Both
our sweep and the stock pipeline condition on a 64x64 image here instead of the pipeline's fixed
1 MP (its module-level ``calculate_dimensions`` is patched), which keeps the tests under a minute.
"""

from __future__ import annotations

import pytest
import torch

import propgrad_diffusion_edit.source as source_module
from propgrad_diffusion_edit import QwenImageEditSource, clear_pipeline_cache
from propgrad_diffusion_edit.qwen_image_edit import condition_size, sweep_qwen_image_edit, to_pil
from propgrad_diffusion_edit.sampler import Denoising

SMALL_AREA = 64 * 64


@pytest.fixture(scope="module")
def tiny_qwen(tmp_path_factory: pytest.TempPathFactory):
    from propgrad_diffusion_edit.testing import tiny_qwen_image_edit_pipeline

    return tiny_qwen_image_edit_pipeline(tmp_path_factory.mktemp("tiny-qwen-vocab"))


@pytest.fixture()
def small_condition(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stock pipeline's 1 MP conditioning size, shrunk to 64x64 for ours and the stock pipeline alike."""
    import diffusers.pipelines.qwenimage.pipeline_qwenimage_edit as stock_module

    original = stock_module.calculate_dimensions
    monkeypatch.setattr(stock_module, "calculate_dimensions", lambda area, ratio: original(SMALL_AREA, ratio))


def test_batched_sweep_equals_stock_pipeline_called_per_scale(tiny_qwen, image, small_condition):
    img = torch.round(image * 255)[None] / 255  # the pipeline's processor reads 8-bit images
    scales = [1.5, 4.0, 8.0]
    ours = sweep_qwen_image_edit(tiny_qwen, img, ("make the fur black", " "), scales, Denoising(3, 2), batch_size=2)
    stock = torch.cat(
        [
            tiny_qwen(
                image=to_pil(img[0]),
                prompt="make the fur black",
                negative_prompt=" ",
                true_cfg_scale=s,
                height=32,
                width=32,
                num_inference_steps=2,
                generator=torch.Generator().manual_seed(3),
                output_type="pt",
            ).images
            for s in scales
        ]
    )
    assert ours.shape == (3, 3, 32, 32)
    assert (ours - stock).abs().max() < 1e-4
    assert ((ours[1:] - ours[:-1]).flatten(1).abs().amax(1) > 1e-3).all()  # per-sample scales


def test_source_sequence_fidelity_determinism_and_cache(tiny_qwen, image, small_condition, tmp_path, monkeypatch):
    loads = []
    monkeypatch.setattr(source_module, "load_pipeline", lambda *a, **k: loads.append(a) or tiny_qwen)
    clear_pipeline_cache()

    def make(**overrides):
        kwargs = dict(
            instruction="make the fur black",
            guidance_scales=[1.0, 3.0, 6.0],
            num_inference_steps=2,
            condition_area=SMALL_AREA,
            cache_dir=tmp_path / "cache",
        )
        return QwenImageEditSource(**{**kwargs, **overrides})

    seq = make().generate(image, seed=0)
    assert seq.images.shape == (3, 3, 32, 32) and seq.images.dtype == torch.float32
    assert torch.allclose(seq.values, torch.tensor([1.0, 3.0, 6.0]))
    assert seq.property_name == "true CFG scale" and len(seq.metadata["fidelity"]["psnr"]) == 3
    assert loads[0][3].class_name == "QwenImageEditPipeline"  # the family the loader is asked for
    again = make(use_cache=False, batch_size=1).generate(image, seed=0)
    assert (seq.images - again.images).abs().max() <= 1 / 255 + 1e-6
    hit = make().generate(image, seed=0)
    assert hit.metadata["cache_hit"] is True and torch.equal(hit.images, seq.images) and len(loads) == 2


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"guidance_scales": [0.5, 2.0]}, r"guidance_scales\[0\] must be a number >= 1"),
        ({"guidance_start": 3.0, "guidance_stop": 2.0}, "guidance_stop"),
        ({"negative_prompt": None}, "negative_prompt must be a string"),
        ({"condition_area": 10}, "condition_area must be an integer >= 256, got 10"),
        ({"image_size": (32, 40)}, "multiples of 16, got width 40"),
    ],
)
def test_bad_parameters_name_the_parameter(kwargs, match):
    with pytest.raises(ValueError, match=match):
        QwenImageEditSource(**{"instruction": "make it black", **kwargs})


def test_defaults_and_condition_size():
    source = QwenImageEditSource("make it black")
    assert source.model == "Qwen/Qwen-Image-Edit" and source.guidance_scales[0] == 1.0
    assert source.num_inference_steps == 50 and source.condition_area == 1024 * 1024
    assert condition_size(512, 512, 1024 * 1024) == (1024, 1024)
    h, w = condition_size(300, 600, 1024 * 1024)  # aspect 2: about 1448 x 724, multiples of 32
    assert h % 32 == 0 and w % 32 == 0 and abs(w / h - 2) < 0.05 and abs(h * w - 2**20) < 0.05 * 2**20
