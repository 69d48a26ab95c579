"""Bad parameters fail early with errors that name the parameter."""

from __future__ import annotations

import pytest

from propgrad_instruct_pix2pix import InstructPix2PixSource
from propgrad_instruct_pix2pix.params import PAPER_NUM_TEXT_SCALES, text_scales


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
        ({"num_text_scales": 1}, "num_text_scales must be an integer >= 2"),
        ({"image_guidance_scale": 0}, "image_guidance_scale must be a finite positive"),
        ({"num_inference_steps": 0}, "num_inference_steps must be an integer >= 1"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"image_size": 30}, "image_size must be a multiple of 8"),
        ({"model": "/no/such/instruct-pix2pix"}, "model: the local folder .* does not exist"),
        ({"device": "gpu-please"}, "device must be a torch device"),
        ({"use_cache": "maybe"}, "use_cache must be true or false"),
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
