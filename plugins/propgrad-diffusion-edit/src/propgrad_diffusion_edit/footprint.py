"""Parameter counts and weight memory of the real editing pipelines, computed without their weights.

Each real checkpoint's components are instantiated from their published configs (the numbers
below: hidden sizes, layers, heads, vocabularies) on PyTorch's ``meta`` device, which allocates no
memory, and their parameters are counted. Bytes are the parameters times the dtype's size: the
memory the weights take once loaded, before activations (which depend on the image size and the
batch; see the sources' ``max_batch_memory_mb``). Run ``python -m propgrad_diffusion_edit.footprint``
for the table in the README.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

GIB = 2**30


def _clip_l() -> Any:  # openai/clip-vit-large-patch14's text tower (SD 1.x, FLUX's first encoder)
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            max_position_embeddings=77,
            projection_dim=768,
        )
    )


def _sd_vae(latent_channels: int = 4, **extra: Any) -> Any:
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
        latent_channels=latent_channels,
        **extra,
    )


def _sd15_unet(in_channels: int) -> Any:  # diffusers' defaults are Stable Diffusion 1.x's UNet
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(in_channels=in_channels, cross_attention_dim=768, attention_head_dim=8)


def _t5_xxl() -> Any:  # google/t5-v1_1-xxl's encoder (FLUX's second encoder)
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(
        T5Config(
            vocab_size=32128,
            d_model=4096,
            d_kv=64,
            d_ff=10240,
            num_layers=24,
            num_heads=64,
            feed_forward_proj="gated-gelu",
        )
    )


def _flux_transformer() -> Any:  # FLUX.1 [dev] / Kontext [dev]: 19 double + 38 single blocks, 24 x 128
    from diffusers import FluxTransformer2DModel

    return FluxTransformer2DModel(
        in_channels=64,
        num_layers=19,
        num_single_layers=38,
        attention_head_dim=128,
        num_attention_heads=24,
        joint_attention_dim=4096,
        pooled_projection_dim=768,
        guidance_embeds=True,
        axes_dims_rope=(16, 56, 56),
    )


def _qwen_transformer() -> Any:  # Qwen-Image(-Edit): 60 blocks, 24 x 128, text width 3584
    from diffusers import QwenImageTransformer2DModel

    return QwenImageTransformer2DModel(
        patch_size=2,
        in_channels=64,
        out_channels=16,
        num_layers=60,
        attention_head_dim=128,
        num_attention_heads=24,
        joint_attention_dim=3584,
        axes_dims_rope=(16, 56, 56),
    )


def _qwen_vae() -> Any:
    from diffusers import AutoencoderKLQwenImage

    return AutoencoderKLQwenImage(base_dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2)


def _qwen25_vl_7b() -> Any:  # Qwen/Qwen2.5-VL-7B-Instruct: 28 x 3584 text layers, 32-block vision tower
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    return Qwen2_5_VLForConditionalGeneration(
        Qwen2_5_VLConfig(
            text_config={
                "hidden_size": 3584,
                "intermediate_size": 18944,
                "num_hidden_layers": 28,
                "num_attention_heads": 28,
                "num_key_value_heads": 4,
                "vocab_size": 152064,
                "rope_scaling": {"mrope_section": [16, 24, 24], "rope_type": "default", "type": "default"},
            },
            vision_config={
                "depth": 32,
                "hidden_size": 1280,
                "intermediate_size": 3420,
                "num_heads": 16,
                "out_hidden_size": 3584,
            },
            vocab_size=152064,
            tie_word_embeddings=False,
        )
    )


@dataclass(frozen=True)
class Checkpoint:
    """A real pipeline: its hub id and a builder of each component from the published config."""

    source: str
    hub_id: str
    components: dict[str, Callable[[], Any]]


CHECKPOINTS = (
    Checkpoint(
        "instruct_pix2pix",
        "timbrooks/instruct-pix2pix",
        {"unet": lambda: _sd15_unet(8), "vae": _sd_vae, "text_encoder": _clip_l},
    ),
    Checkpoint(
        "ledits_pp",
        "stable-diffusion-v1-5/stable-diffusion-v1-5",
        {"unet": lambda: _sd15_unet(4), "vae": _sd_vae, "text_encoder": _clip_l},
    ),
    Checkpoint(
        "flux_kontext",
        "black-forest-labs/FLUX.1-Kontext-dev",
        {
            "transformer": _flux_transformer,
            "vae": lambda: _sd_vae(16, use_quant_conv=False, use_post_quant_conv=False),
            "text_encoder": _clip_l,
            "text_encoder_2": _t5_xxl,
        },
    ),
    Checkpoint(
        "qwen_image_edit",
        "Qwen/Qwen-Image-Edit",
        {"transformer": _qwen_transformer, "vae": _qwen_vae, "text_encoder": _qwen25_vl_7b},
    ),
)


def count_parameters(build: Callable[[], Any]) -> int:
    """Parameters of the module ``build()`` returns, built on the ``meta`` device (nothing allocated)."""
    with torch.device("meta"):
        module = build()
    return sum(p.numel() for p in module.parameters())


def footprint(checkpoint: Checkpoint) -> dict[str, int]:
    """Parameters per component of ``checkpoint`` (and ``"total"``)."""
    counts = {name: count_parameters(build) for name, build in checkpoint.components.items()}
    counts["total"] = sum(counts.values())
    return counts


def table() -> str:
    """A Markdown table: parameters per component, and the weights' GiB in 16-bit and 32-bit floats."""
    rows = [
        "| source | checkpoint | components (parameters) | total | bf16/fp16 | fp32 |",
        "|---|---|---|---:|---:|---:|",
    ]
    for checkpoint in CHECKPOINTS:
        counts = footprint(checkpoint)
        total = counts.pop("total")
        parts = ", ".join(f"{name} {n / 1e9:.3f} B" for name, n in counts.items())
        rows.append(
            f"| `{checkpoint.source}` | `{checkpoint.hub_id}` | {parts} | {total / 1e9:.2f} B "
            f"| {2 * total / GIB:.1f} GiB | {4 * total / GIB:.1f} GiB |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    print(table())
