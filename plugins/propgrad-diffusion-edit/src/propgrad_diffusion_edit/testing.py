"""Tiny editing pipelines with random weights, one per family, for offline tests and benchmarks.

No weights can be downloaded in tests, so this module builds every component from a config (small
UNets, VAEs and transformers; 2-layer CLIP, T5 and Qwen2.5-VL text encoders) with tokenizers built
offline (a byte-level BPE vocabulary written here for CLIP and Qwen2, a SentencePiece model trained
here on a few sentences for T5), saves the pipeline with ``save_pretrained`` and returns the folder,
which is then loaded through the same ``from_pretrained`` path users take. Plugin authors may
reuse them for their own tests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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


def _tiny_vae(latent_channels: int = 4, **extra):
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 16, 16),
        layers_per_block=1,
        latent_channels=latent_channels,
        norm_num_groups=4,
        sample_size=TINY_IMAGE_SIZE,
        **extra,
    )


def _tiny_clip(folder: Path, max_length: int = 32):
    """A 2-layer CLIP text encoder and its byte-level tokenizer (the vocabulary written to ``folder``)."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            vocab_size=514,
            max_position_embeddings=max_length,
            projection_dim=32,
        )
    )
    vocab_path, merges_path = write_byte_level_vocab(folder)
    return encoder, CLIPTokenizer(str(vocab_path), str(merges_path), model_max_length=max_length)


def _save(pipe, folder: Path, scratch: Path) -> Path:
    import shutil

    pipe.save_pretrained(folder)
    shutil.rmtree(scratch)
    return folder


def build_tiny_ledits_pipeline(folder: Path, *, seed: int = 0) -> Path:
    """Build a tiny random-weight Stable Diffusion pipeline and save it as ``LEditsPPPipelineStableDiffusion``.

    The UNet takes 4 latent channels (plain Stable Diffusion; LEdits++ needs no fine-tuning) and
    attends to the text at 1/32 of the image size, the resolution LEdits++ reads its cross-attention
    masks at (so images are multiples of 32, at least 64 for a 2x2 mask); the scheduler is the
    DPM-Solver++ SDE that the pipeline swaps in for Stable Diffusion's default.

    Args:
        folder: Destination folder (created if missing).
        seed: Seed of the random weights.

    Returns:
        ``folder``, loadable with ``LEditsPPPipelineStableDiffusion.from_pretrained``.
    """
    from diffusers import DPMSolverMultistepScheduler, LEditsPPPipelineStableDiffusion, UNet2DConditionModel

    folder = Path(folder)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(  # cross-attention at 1/32 of the image, where LEdits++ reads its masks
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(16, 32, 32),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
        norm_num_groups=8,
    )
    vae = _tiny_vae()
    text_encoder, tokenizer = _tiny_clip(folder / "_vocab")
    scheduler = DPMSolverMultistepScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        algorithm_type="sde-dpmsolver++",
        solver_order=2,
        steps_offset=1,
    )
    pipe = LEditsPPPipelineStableDiffusion(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    return _save(pipe, folder, folder / "_vocab")


T5_SENTENCES = (
    "make the fur black",
    "change the colour of the sky to orange",
    "a photo of a cat sitting on a red sofa",
    "turn the car into a blue bicycle",
    "remove the hat and add sunglasses",
    "the dog runs across a green field at sunset",
)


def train_sentencepiece(folder: Path, sentences: tuple[str, ...] = T5_SENTENCES, vocab_size: int = 64) -> Path:
    """Train a T5-style unigram SentencePiece model (``spiece.model``: pad 0, eos 1, unk 2) on ``sentences``.

    Args:
        folder: Destination folder (created if missing).
        sentences: The training text.
        vocab_size: Upper bound of the vocabulary (a soft limit: small corpora give fewer pieces).

    Returns:
        The path of ``spiece.model``.
    """
    import sentencepiece

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(list(sentences) * 8),
        model_prefix=str(folder / "spiece"),
        vocab_size=vocab_size,
        model_type="unigram",
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        character_coverage=1.0,
        hard_vocab_limit=False,
        minloglevel=2,
    )
    (folder / "spiece.vocab").unlink()
    return folder / "spiece.model"


def build_tiny_flux_kontext_pipeline(folder: Path, *, seed: int = 0) -> Path:
    """Build a tiny random-weight FLUX.1 Kontext pipeline and ``save_pretrained`` it to ``folder``.

    A 1+1-layer FLUX transformer with a guidance embedding (as Kontext [dev]), a VAE with 4 latent
    channels and the FLUX shift/scale, CLIP and a 2-layer T5 encoder whose SentencePiece tokenizer
    is trained here, and the flow-matching scheduler with the real model's shift settings.

    Args:
        folder: Destination folder (created if missing).
        seed: Seed of the random weights.

    Returns:
        ``folder``, loadable with ``FluxKontextPipeline.from_pretrained``.
    """
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxKontextPipeline, FluxTransformer2DModel
    from transformers import T5Config, T5EncoderModel, T5Tokenizer

    folder = Path(folder)
    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=16,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=32,
        guidance_embeds=True,
        axes_dims_rope=(4, 4, 8),
    )
    vae = _tiny_vae(use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.1159, scaling_factor=0.3611)
    scratch = folder / "_vocab"
    text_encoder, tokenizer = _tiny_clip(scratch / "clip", max_length=77)
    train_sentencepiece(scratch / "t5")
    tokenizer_2 = T5Tokenizer.from_pretrained(scratch / "t5", extra_ids=0)
    text_encoder_2 = T5EncoderModel(
        T5Config(
            vocab_size=len(tokenizer_2),
            d_model=32,
            d_kv=8,
            d_ff=37,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            pad_token_id=0,
            eos_token_id=1,
            decoder_start_token_id=0,
        )
    )
    scheduler = FlowMatchEulerDiscreteScheduler(
        num_train_timesteps=1000,
        shift=3.0,
        use_dynamic_shifting=True,
        base_shift=0.5,
        max_shift=1.15,
        base_image_seq_len=256,
        max_image_seq_len=4096,
    )
    pipe = FluxKontextPipeline(
        scheduler=scheduler,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=tokenizer_2,
        transformer=transformer,
    )
    return _save(pipe, folder, scratch)


QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)


def image_only_qwen2vl_processor(image_processor: Any, tokenizer: Any) -> Any:
    """A ``Qwen2VLProcessor`` without its video processor (which transformers 5 builds only with torchvision).

    The edit pipeline never passes videos. This is a test-time stand-in: a saved pipeline needs the
    real processor, so the tiny Qwen pipeline is built in memory (:func:`tiny_qwen_image_edit_pipeline`).
    """
    from transformers import Qwen2VLProcessor

    class ImageOnlyQwen2VLProcessor(Qwen2VLProcessor):
        def __init__(self, image_processor: Any = None, tokenizer: Any = None, chat_template: Any = None, **kw: Any):
            super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kw)

    return ImageOnlyQwen2VLProcessor(image_processor=image_processor, tokenizer=tokenizer)


def tiny_qwen_image_edit_pipeline(scratch: Path, *, seed: int = 0) -> Any:
    """A tiny random-weight ``QwenImageEditPipeline``, built in memory.

    A 2-layer Qwen-Image transformer, a small causal-3D Qwen-Image VAE, a 2-layer Qwen2.5-VL text
    encoder with a 2-block vision tower, and a Qwen2 tokenizer over a byte-level vocabulary written
    to ``scratch`` (256 byte tokens, then the chat and vision special tokens), with a Qwen2-VL image
    processor. It is not saved: with transformers 5, saving and loading a ``Qwen2VLProcessor``
    needs its video processor, which needs torchvision (see :func:`image_only_qwen2vl_processor`).

    Args:
        scratch: Folder for the tokenizer's vocabulary files (created if missing).
        seed: Seed of the random weights.

    Returns:
        The pipeline, in float32 on the CPU, its progress bar disabled.
    """
    from diffusers import (
        AutoencoderKLQwenImage,
        FlowMatchEulerDiscreteScheduler,
        QwenImageEditPipeline,
        QwenImageTransformer2DModel,
    )
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2Tokenizer
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    scratch = Path(scratch)
    torch.manual_seed(seed)
    transformer = QwenImageTransformer2DModel(
        patch_size=2,
        in_channels=16,
        out_channels=4,
        num_layers=2,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=16,
        guidance_embeds=False,
        axes_dims_rope=(8, 4, 4),
    )
    z_dim = 4
    vae = AutoencoderKLQwenImage(
        base_dim=z_dim * 6,
        z_dim=z_dim,
        dim_mult=[1, 2, 4],
        num_res_blocks=1,
        temperal_downsample=[False, True],
        latents_mean=[0.0] * z_dim,
        latents_std=[1.0] * z_dim,
    )
    scratch.mkdir(parents=True, exist_ok=True)
    vocab_path, merges_path = scratch / "vocab.json", scratch / "merges.txt"
    chars = list(_bytes_to_unicode().values())
    vocab_path.write_text(json.dumps({c: i for i, c in enumerate(chars)}), encoding="utf-8")
    merges_path.write_text("#version: 0.2\n", encoding="utf-8")
    tokenizer = Qwen2Tokenizer(
        str(vocab_path),
        str(merges_path),
        unk_token=None,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
    )
    tokenizer.add_special_tokens({"additional_special_tokens": list(QWEN_SPECIAL_TOKENS)})
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in QWEN_SPECIAL_TOKENS}
    config = Qwen2_5_VLConfig(
        text_config={
            "hidden_size": 16,
            "intermediate_size": 16,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
            "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"},
            "rope_theta": 1000000.0,
            "vocab_size": len(tokenizer),
            "bos_token_id": None,
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={"depth": 2, "hidden_size": 16, "intermediate_size": 16, "num_heads": 2, "out_hidden_size": 16},
        hidden_size=16,
        vocab_size=len(tokenizer),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    text_encoder = Qwen2_5_VLForConditionalGeneration(config)
    pipe = QwenImageEditPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(
            num_train_timesteps=1000,
            shift=1.0,
            use_dynamic_shifting=True,
            base_shift=0.5,
            max_shift=0.9,
            base_image_seq_len=256,
            max_image_seq_len=8192,
        ),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        processor=image_only_qwen2vl_processor(Qwen2VLImageProcessorPil(), tokenizer),
        transformer=transformer,
    )
    pipe.set_progress_bar_config(disable=True)
    for part in (pipe.transformer, pipe.vae, pipe.text_encoder):
        part.eval().requires_grad_(False)
    return pipe
