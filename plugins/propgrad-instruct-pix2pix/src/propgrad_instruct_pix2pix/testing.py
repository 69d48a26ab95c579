"""A tiny InstructPix2Pix pipeline with random weights, for offline tests and benchmarks.

No weights can be downloaded in tests, so this module builds every component from a config
(a small UNet with 8 input channels, a small VAE, a 2-layer CLIP text encoder and a byte-level
CLIP tokenizer whose vocabulary is written here), saves the pipeline with ``save_pretrained``
and returns the folder, which is then loaded through the same ``from_pretrained`` path users
take. Plugin authors may reuse it for their own tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from propgrad.errors import InvalidParameterError

TINY_IMAGE_SIZE = 32
_SCHEDULERS = ("euler_ancestral", "ddim", "euler")


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible map from bytes to printable unicode characters."""
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in codes)))


def write_byte_level_vocab(folder: Path) -> tuple[Path, Path]:
    """Write a merge-free byte-level CLIP vocabulary (``vocab.json``, ``merges.txt``) to ``folder``.

    Args:
        folder: Destination folder (created if missing).

    Returns:
        The paths of ``vocab.json`` and ``merges.txt``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    chars = list(_bytes_to_unicode().values())
    tokens = ["<|startoftext|>", "<|endoftext|>", *chars, *(c + "</w>" for c in chars)]
    vocab_path, merges_path = folder / "vocab.json", folder / "merges.txt"
    vocab_path.write_text(json.dumps({t: i for i, t in enumerate(tokens)}), encoding="utf-8")
    merges_path.write_text("#version: 0.2\n", encoding="utf-8")
    return vocab_path, merges_path


def _make_scheduler(kind: str):
    from diffusers import DDIMScheduler, EulerAncestralDiscreteScheduler, EulerDiscreteScheduler

    common = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000)
    if kind == "euler_ancestral":
        return EulerAncestralDiscreteScheduler(**common)
    if kind == "euler":
        return EulerDiscreteScheduler(**common)
    if kind == "ddim":
        return DDIMScheduler(**common, clip_sample=False, set_alpha_to_one=False)
    raise InvalidParameterError(f"scheduler must be one of {_SCHEDULERS}, got {kind!r}")


def build_tiny_pipeline(folder: Path, *, scheduler: str = "euler_ancestral", seed: int = 0) -> Path:
    """Build a tiny random-weight InstructPix2Pix pipeline and ``save_pretrained`` it to ``folder``.

    Args:
        folder: Destination folder (created if missing).
        scheduler: ``"euler_ancestral"`` (the real model's scheduler; injects noise every step),
            ``"euler"`` or ``"ddim"``.
        seed: Seed of the random weights.

    Returns:
        ``folder``, loadable with ``StableDiffusionInstructPix2PixPipeline.from_pretrained``.
    """
    from diffusers import AutoencoderKL, StableDiffusionInstructPix2PixPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder = Path(folder)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=8,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 16, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=TINY_IMAGE_SIZE,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            vocab_size=514,
            max_position_embeddings=32,
            projection_dim=32,
        )
    )
    vocab_dir = folder / "_vocab"
    vocab_path, merges_path = write_byte_level_vocab(vocab_dir)
    tokenizer = CLIPTokenizer(str(vocab_path), str(merges_path), model_max_length=32)
    pipe = StableDiffusionInstructPix2PixPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=_make_scheduler(scheduler),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder)
    for path in (vocab_path, merges_path):
        path.unlink()
    vocab_dir.rmdir()
    return folder
