"""Bad parameters fail early with errors that name the parameter."""

from __future__ import annotations

import pytest

from propgrad_diffusion_edit import InstructPix2PixSource
from propgrad_diffusion_edit.guidance import PAPER_NUM_TEXT_SCALES, text_scales


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"instruction": ""}, "instruction must be a non-empty string"),
        ({"instruction": "   "}, "instruction"),
        ({"text_guidance_scales": [1.5, 3.0, 3.0]}, r"text_guidance_scales must be strictly increasing.*\[2\]"),
        ({"text_guidance_scales": [5.0, 2.0]}, "text_guidance_scales must be strictly increasing"),
        ({"text_guidance_scales": [2.0]}, "text_guidance_scales must hold at least 2"),
        ({"text_guidance_scales": [1.0, "x"]}, r"text_guidance_scales\[1\] must be a number"),
        ({"text_guidance_scales": [1.0, 2.0], "num_text_scales": 4}, "either text_guidance_scales or num_text_scales"),
        ({"text_guidance_start": 5.0, "text_guidance_stop": 2.0}, "text_guidance_stop"),
        ({"num_text_scales": 1}, r"num_text_scales must be an integer in \[2, 10000\], got 1"),
        ({"num_text_scales": 10**9}, r"num_text_scales must be an integer in \[2, 10000\], got 1000000000"),
        ({"num_text_scales": "many"}, r"num_text_scales must be an integer in \[2, 10000\], got 'many'"),
        ({"text_guidance_scales": list(range(1, 10_003))}, "at most 10000 guidance scales"),
        ({"text_guidance_scales": {"a": 1.0, "b": 2.0}}, r"text_guidance_scales must be a list .*\(dict\)"),
        ({"text_guidance_scales": 3.0}, r"text_guidance_scales must be a list .*\(float\)"),
        ({"image_guidance_scale": 0}, "image_guidance_scale must be a number > 0, got 0"),
        ({"image_guidance_scale": "strong"}, "image_guidance_scale must be a number > 0, got 'strong'"),
        ({"image_guidance_scale": [1.5]}, r"image_guidance_scale must be a number > 0, got \[1.5\] \(list\)"),
        ({"image_guidance_scale": float("nan")}, "image_guidance_scale must be a number > 0, not NaN"),
        ({"num_inference_steps": 0}, "num_inference_steps must be a positive integer, got 0"),
        ({"num_inference_steps": True}, r"num_inference_steps must be a positive integer, got True \(bool\)"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"image_size": 30}, r"image_size must be .*multiples of 8, got side 30"),
        ({"model": "/no/such/instruct-pix2pix"}, "model: the local folder .* does not exist"),
        ({"device": "gpu-please"}, "device must be a torch device"),
        ({"use_cache": "maybe"}, "use_cache must be True or False .*, got 'maybe'"),
        ({"use_cache": 1}, r"use_cache must be True or False .*, got 1 \(int\)"),
        ({"cache_dir": 5}, r"cache_dir must be a folder path \(str or Path\) or None, got int 5"),
        ({"max_batch_memory_mb": -1}, "max_batch_memory_mb must be a number > 0, got -1"),
    ],
)
def test_bad_parameters_name_the_parameter(kwargs, match):
    kwargs = {"instruction": "make it black", **kwargs}
    with pytest.raises(ValueError, match=match):
        InstructPix2PixSource(**kwargs)


def test_folder_without_a_pipeline_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="model: .* no model_index.json"):
        InstructPix2PixSource("make it black", model=tmp_path)


def test_unreachable_hub_id_fails_with_an_offline_hint(make_source, image):
    source = make_source(model="propgrad-tests/no-such-model", use_cache=False)
    with pytest.raises(ValueError, match=r"model: cannot load .*no-such-model.*offline.*local folder"):
        source.generate(image)


def test_default_sweep_is_the_papers_and_strings_are_accepted():
    scales = text_scales(None, None, None, None)
    assert len(scales) == PAPER_NUM_TEXT_SCALES
    assert scales[0] == 1.05 and scales[-1] == 14.7
    assert all(abs(b - a - 0.15) < 1e-9 for a, b in zip(scales, scales[1:]))
    source = InstructPix2PixSource("make it black", text_guidance_scales="1.05, 2, 3.5", image_size="64")
    assert source.text_guidance_scales == [1.05, 2.0, 3.5] and source.image_size == 64
    assert InstructPix2PixSource("make it black", use_cache="false").use_cache is False
    assert len(InstructPix2PixSource("make it black", num_text_scales=10).text_guidance_scales) == 10


def test_numpy_scalars_and_whole_floats_are_accepted():
    import numpy as np

    source = InstructPix2PixSource(
        "make it black",
        image_guidance_scale=np.float32(1.5),
        text_guidance_start=np.float64(1.05),
        num_text_scales=np.int64(4),
        num_inference_steps=20.0,
        batch_size="2",
        text_guidance_scales=None,
    )
    assert source.image_guidance_scale == 1.5 and type(source.image_guidance_scale) is float
    assert len(source.text_guidance_scales) == 4 and source.text_guidance_scales[0] == 1.05
    assert source.num_inference_steps == 20 and source.batch_size == 2
    scales = InstructPix2PixSource("make it black", text_guidance_scales=np.array([1.5, 3.0], dtype=np.float32))
    assert scales.text_guidance_scales == [1.5, 3.0]


@pytest.mark.parametrize(
    ("seed", "match"),
    [
        (1.5, r"seed must be an integer in \[0, 2\*\*63 - 1\], got 1.5 \(float\); seeds are not rounded"),
        ("3", r"seed must be an integer .*got '3' \(str\)"),
        (None, r"seed must be an integer .*got None"),
        (-1, "seed must be an integer .*got -1"),
    ],
)
def test_bad_seeds_are_refused_before_any_work(seed, match):
    import torch

    source = InstructPix2PixSource("make it black", model="propgrad-tests/never-loaded", use_cache=False)
    with pytest.raises(ValueError, match=match):
        source.generate(torch.rand(3, 16, 16), seed=seed)
