"""Parameter counts on the meta device: equal to real counts, and to the published sizes."""

from __future__ import annotations

import torch

from propgrad_diffusion_edit.footprint import _clip_l, _sd15_unet, count_parameters


def test_meta_count_equals_the_count_of_materialised_weights():
    from diffusers import UNet2DConditionModel

    def build():
        return UNet2DConditionModel(
            block_out_channels=(32, 64),
            layers_per_block=1,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=32,
            attention_head_dim=4,
        )

    real = sum(p.numel() for p in build().parameters())
    assert count_parameters(build) == real
    with torch.device("meta"):
        assert all(p.is_meta for p in build().parameters())  # nothing is allocated


def test_stable_diffusion_components_match_their_published_sizes():
    assert count_parameters(lambda: _sd15_unet(4)) == 859_520_964  # SD 1.x UNet, 859.52 M
    assert count_parameters(_clip_l) == 123_060_480  # CLIP ViT-L/14 text tower, 123.06 M
    # InstructPix2Pix widens only the first convolution: 4 more input channels of a 3x3 conv to 320
    assert count_parameters(lambda: _sd15_unet(8)) - count_parameters(lambda: _sd15_unet(4)) == 4 * 320 * 9
