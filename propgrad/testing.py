"""Opt-in test helpers for plugin authors.

Import them in your plugin's tests; each helper raises ``AssertionError`` with a message that
says which part of the contract is broken::

    from propgrad.testing import check_source, collect_registrations

    def test_contract():
        check_source(MySource, steps=8)

    def test_registered():
        assert collect_registrations(my_plugin)["sources"] == [MySource]

Nothing here is imported by propgrad itself, and nothing needs the plugin to be installed.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from operator import eq
from typing import Any, Callable, TypeVar

import torch
from torch import nn

from propgrad.baselines.base import AttributionBaseline, change_score
from propgrad.plugins.registry import KINDS, NAME_PATTERN, call_register_hooks, new_plugin_manager, register_plugin
from propgrad.sources.base import InterventionSequence, InterventionSource

__all__ = ["collect_registrations", "check_source", "check_baseline", "sample_image", "tiny_classifier"]

T = TypeVar("T")


def _fail(message: str) -> None:
    raise AssertionError(message)


def _call(label: str, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call the plugin's code; any exception it raises becomes an ``AssertionError`` naming ``label``.

    Args:
        label: What is being called, with the plugin's class name (``"MySource.generate"``).
        function: The callable to run.
        *args: Its positional arguments.
        **kwargs: Its keyword arguments.

    Returns:
        What ``function`` returned.

    Raises:
        AssertionError: ``function`` raised; the message names ``label`` and the error, and the
            original exception is chained as the cause (its traceback shows where it happened).
    """
    try:
        return function(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - every error raised by the plugin is a broken contract
        raise AssertionError(f"{label} raised {type(exc).__name__}: {exc}") from exc


def collect_registrations(plugin: object) -> dict[str, list[type]]:
    """Register one plugin object (usually a module) on a fresh plugin manager and run its hooks.

    This is what propgrad does for an installed plugin, without installing it: misspelled hooks,
    hooks that raise and invalid classes fail exactly as they would at load time.

    Args:
        plugin: The plugin module or object carrying ``@propgrad.hookimpl`` functions.

    Returns:
        The registered classes per kind: ``{"sources": [...], "baselines": [...], "suites": [...]}``.
    """
    pm = new_plugin_manager()
    register_plugin(pm, plugin, getattr(plugin, "__name__", repr(plugin)))
    found: dict[str, list[type]] = {kind: [] for kind in KINDS}
    for kind, cls in call_register_hooks(pm, plugin):
        found[kind].append(cls)
    return found


def sample_image(height: int = 24, width: int = 24, *, seed: int = 0) -> torch.Tensor:
    """A colourful (3, H, W) test image in [0, 1]: smooth gradients, a square and some noise."""
    gen = torch.Generator().manual_seed(seed)
    ys = torch.linspace(0, 1, height).view(height, 1).expand(height, width)
    xs = torch.linspace(0, 1, width).view(1, width).expand(height, width)
    image = torch.stack([xs, ys, 1 - 0.5 * (xs + ys)])
    image[:, height // 4 : height // 2, width // 4 : width // 2] = torch.tensor([0.9, 0.2, 0.1]).view(3, 1, 1)
    image = image + 0.05 * torch.rand(3, height, width, generator=gen)
    return image.clamp(0, 1)


def _check_metadata(cls: type, base: type, attrs: tuple[str, ...]) -> None:
    if not (isinstance(cls, type) and issubclass(cls, base)):
        _fail(f"{cls!r} is not a subclass of {base.__module__}.{base.__qualname__}")
    for attr in attrs:
        value = getattr(cls, attr, None)
        if not isinstance(value, str) or not value.strip():
            _fail(f"{cls.__qualname__}.{attr} must be a non-empty string class attribute, got {value!r}")
    if not NAME_PATTERN.fullmatch(cls.name):
        _fail(f"{cls.__qualname__}.name {cls.name!r} must be letters, digits and underscores, starting with a letter")


def check_source(
    source_cls: type,
    image: torch.Tensor | None = None,
    *,
    seed: int = 0,
    same_size: bool = True,
    first_is_original: bool = False,
    **params: Any,
) -> InterventionSequence:
    """Check that an intervention source fulfils the ``InterventionSource`` contract.

    Checks the class metadata, then instantiates ``source_cls(**params)``, generates a sequence
    and asserts: an ``InterventionSequence`` of at least 2 float images (N, 3, H, W) in [0, 1]
    with strictly increasing finite values, on the input's device; property name and unit equal
    to the class attributes; JSON-serialisable metadata; the input image left untouched; the
    images actually change; the same seed gives the same sequence. Every failure is an
    ``AssertionError`` naming the class: an exception raised by the constructor or ``generate``
    (including the ``ValueError`` of an invalid ``InterventionSequence``) is chained as its cause.

    Args:
        source_cls: The source class under test.
        image: Input image (3, H, W); default :func:`sample_image`.
        seed: Seed passed to ``generate``.
        same_size: Require the sequence's images to have the input's height and width.
        first_is_original: Require the first step to equal the input image (atol 1e-4).
        **params: Constructor parameters of the source.

    Returns:
        The generated sequence, for further assertions.
    """
    _check_metadata(source_cls, InterventionSource, ("name", "description", "property_name", "unit"))
    image = sample_image() if image is None else image
    original = image.clone()
    source = _call(f"{source_cls.__qualname__}(**{params!r})", source_cls, **params)
    label = f"{source_cls.__qualname__}.generate"
    seq = _call(label, source.generate, image, seed=seed)
    if not isinstance(seq, InterventionSequence):
        _fail(f"{label} must return an InterventionSequence, got {type(seq).__name__}")
    images, values = seq.images, seq.values
    if images.dim() != 4 or images.shape[1] != 3 or len(seq) < 2:
        _fail(f"{label} must return at least 2 images of shape (N, 3, H, W), got {tuple(images.shape)}")
    if same_size and tuple(images.shape[-2:]) != tuple(image.shape[-2:]):
        _fail(f"{label} changed the image size from {tuple(image.shape[-2:])} to {tuple(images.shape[-2:])}")
    if not images.is_floating_point() or float(images.min()) < 0 or float(images.max()) > 1:
        lo, hi = float(images.min()), float(images.max())
        _fail(f"{label} images must be floats in [0, 1], got {images.dtype} in [{lo:.4g}, {hi:.4g}]")
    finite = bool(torch.isfinite(values).all())
    if values.shape != (len(seq),) or not finite or bool((values.diff() <= 0).any()):
        _fail(f"{label} values must be finite, strictly increasing, one per image; got {values.tolist()}")
    if images.device != image.device or values.device != image.device:
        _fail(
            f"{label} must keep the input's device {image.device}, "
            f"got images on {images.device} and values on {values.device}"
        )
    if (seq.property_name, seq.unit) != (source_cls.property_name, source_cls.unit):
        _fail(
            f"{label} property/unit {(seq.property_name, seq.unit)} differ from the class attributes "
            f"{(source_cls.property_name, source_cls.unit)}"
        )
    if not isinstance(seq.periodic, bool):
        _fail(f"{label} periodic must be a bool, got {seq.periodic!r}")
    try:
        json.dumps(seq.metadata)
    except (TypeError, ValueError) as exc:
        _fail(f"{label} metadata must be JSON-serialisable: {exc}")
    if not torch.equal(image, original):
        _fail(f"{label} modified its input image in place")
    if float((images - images[:1]).abs().max()) == 0:
        _fail(f"{label} returned {len(seq)} identical images: the intervention changes nothing")
    if first_is_original and (
        images.shape[1:] != image.shape or not torch.allclose(images[0], image.to(images.dtype), atol=1e-4)
    ):
        diff = float((images[0] - image).abs().max()) if images.shape[1:] == image.shape else float("nan")
        _fail(f"{label} first step differs from the input image (max diff {diff:.3g})")
    again = _call(f"{label} (second call)", source_cls(**params).generate, image, seed=seed)
    if not (
        isinstance(again, InterventionSequence)
        and torch.equal(again.images, images)
        and torch.equal(again.values, values)
    ):
        _fail(f"{label} is not deterministic: the same seed ({seed}) gave a different sequence")
    return seq


def tiny_classifier(num_classes: int = 3, *, seed: int = 0) -> nn.Module:
    """A small seeded conv net mapping (B, 3, H, W) images in [0, 1] to (B, num_classes) logits."""
    with torch.random.fork_rng(devices=[]):  # seed the weights without touching the global RNG
        torch.manual_seed(seed)
        model = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(8, num_classes),
        )
    return model.eval()


@dataclass(frozen=True)
class _ModelSnapshot:
    """What an attribution baseline must leave as it found it: parameters, buffers, modes, grads, hooks."""

    state: dict[str, torch.Tensor]
    modes: dict[str, bool]
    requires_grad: dict[str, bool]
    grads: dict[str, torch.Tensor | None]
    hooks: dict[str, int]

    @classmethod
    def take(cls, model: nn.Module) -> _ModelSnapshot:
        """Copy everything about ``model`` that :meth:`changes` compares."""
        params = dict(model.named_parameters())
        return cls(
            state=copy.deepcopy(model.state_dict()),
            modes={name: module.training for name, module in model.named_modules()},
            requires_grad={name: p.requires_grad for name, p in params.items()},
            grads={name: None if p.grad is None else p.grad.detach().clone() for name, p in params.items()},
            hooks={name: _hook_count(module) for name, module in model.named_modules()},
        )

    def changes(self, model: nn.Module) -> list[str]:
        """Human-readable differences between this snapshot and ``model`` now (empty: unchanged)."""
        now = _ModelSnapshot.take(model)
        checks = [
            (_differing(self.state, now.state, _same_tensor), "parameter/buffer values or shapes changed"),
            (_differing(self.modes, now.modes), "train/eval mode changed (or submodules were replaced)"),
            (_differing(self.requires_grad, now.requires_grad), "requires_grad changed"),
            (
                _differing(self.grads, now.grads, _same_tensor),
                ".grad left set or changed (use torch.autograd.grad, or set the grads back to None)",
            ),
            (_differing(self.hooks, now.hooks), "hooks left registered (or removed)"),
        ]
        return [f"{what}: {_names(names)}" for names, what in checks if names]


def _differing(before: dict[str, Any], after: dict[str, Any], same: Callable[[Any, Any], bool] = eq) -> list[str]:
    """Keys present on one side only, or whose values differ; ``""`` (the root module) is shown as ``<model>``."""
    keys = list(before) + [k for k in after if k not in before]
    return [k or "<model>" for k in keys if k not in before or k not in after or not same(before[k], after[k])]


def _same_tensor(before: torch.Tensor | None, after: torch.Tensor | None) -> bool:
    if before is None or after is None:
        return before is None and after is None
    return before.shape == after.shape and torch.equal(before, after)


def _hook_count(module: nn.Module) -> int:
    """Forward, forward-pre and backward hooks registered on one module."""
    kinds = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    return sum(len(getattr(module, kind, {})) for kind in kinds)


def _names(names: list[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def check_baseline(
    baseline_cls: type,
    model: nn.Module | None = None,
    images: torch.Tensor | None = None,
    target: torch.Tensor | None = None,
    *,
    deterministic: bool = True,
    **params: Any,
) -> torch.Tensor:
    """Check that an attribution baseline fulfils the ``AttributionBaseline`` contract.

    Asserts: class metadata; the constructor and ``attribute`` raise nothing; ``attribute``
    returns a detached, finite float tensor whose first dimension is the batch size, on the
    images' device; it leaves the model as it found it (parameter and buffer values,
    ``requires_grad``, ``.grad``, hooks, the train/eval mode of every submodule), torch's grad
    mode and the images untouched; ``change_score`` of a map with itself is 0; with
    ``deterministic``, two calls give the same maps. Every failure is an ``AssertionError``
    naming the class (an exception raised by the baseline is chained as its cause).

    Args:
        baseline_cls: The baseline class under test.
        model: Model to explain; default :func:`tiny_classifier`.
        images: Batch (B, 3, H, W) in [0, 1]; default two :func:`sample_image` images of 16x16.
        target: Class index per image; default zeros.
        deterministic: Require identical maps from two calls.
        **params: Constructor parameters of the baseline.

    Returns:
        The attribution maps.
    """
    _check_metadata(baseline_cls, AttributionBaseline, ("name", "description"))
    model = tiny_classifier() if model is None else model
    if images is None:
        images = torch.stack([sample_image(16, 16, seed=0), sample_image(16, 16, seed=1)])
    target = torch.zeros(images.shape[0], dtype=torch.long, device=images.device) if target is None else target
    snapshot, before = _ModelSnapshot.take(model), images.clone()
    label = f"{baseline_cls.__qualname__}.attribute"
    baseline = _call(f"{baseline_cls.__qualname__}(**{params!r})", baseline_cls, **params)
    grad_mode = torch.is_grad_enabled()
    maps = _call(label, baseline.attribute, model, images, target)
    if torch.is_grad_enabled() != grad_mode:
        _fail(f"{label} left gradient tracking {'on' if torch.is_grad_enabled() else 'off'}; restore torch's grad mode")
    if not isinstance(maps, torch.Tensor) or not maps.is_floating_point():
        _fail(f"{label} must return a float tensor, got {maps!r:.80}")
    if maps.dim() == 0 or maps.shape[0] != images.shape[0]:
        _fail(
            f"{label} must return one map per image (first dimension {images.shape[0]}), got shape {tuple(maps.shape)}"
        )
    if maps.requires_grad or maps.device != images.device or not bool(torch.isfinite(maps).all()):
        _fail(
            f"{label} maps must be detached, finite and on {images.device}; got requires_grad="
            f"{maps.requires_grad}, device={maps.device}, finite={bool(torch.isfinite(maps).all())}"
        )
    changes = snapshot.changes(model)
    if changes:
        _fail(f"{label} changed the model: {'; '.join(changes)}")
    if not torch.equal(images, before):
        _fail(f"{label} modified the images in place")
    if float(change_score(maps, maps).abs().max()) != 0:
        _fail(f"change_score of {label} maps with themselves is not 0")
    if deterministic:
        again = _call(f"{label} (second call)", baseline_cls(**params).attribute, model, images, target)
        if not (isinstance(again, torch.Tensor) and again.shape == maps.shape and torch.allclose(again, maps)):
            _fail(f"{label} is not deterministic: two calls gave different maps")
    return maps


from pathlib import Path  # noqa: E402 - used by tiny_clip only, added with it


def tiny_clip(path: str | Path, *, seed: int = 0, image_size: int = 32, embedding_dim: int = 16) -> Path:
    """Write a tiny Hugging Face ``CLIPModel`` with random weights and its processor to ``path``, offline.

    For tests and examples of zero-shot models (:class:`propgrad.explain.zero_shot.ZeroShotClassifier`):
    the model is built from a ``CLIPConfig`` (two layers of width 32, ``image_size`` pixels,
    ``embedding_dim``-dimensional embeddings), the tokenizer from a byte-level vocabulary (the 256
    byte symbols, each also as a word end, and the two special tokens) and a ``merges.txt`` holding
    only its version line, so every word is spelled out byte by byte; nothing is downloaded. Load
    it back with ``from_pretrained(path)`` (``ZeroShotClassifier.from_pretrained(path, descriptors)``,
    or ``propgrad explain --model clip:PATH``). Its similarities are meaningless but deterministic.

    Args:
        path: Folder to write (created if needed).
        seed: Seed of the random weights.
        image_size: Input resolution of the vision tower (the processor resizes and crops to it).
        embedding_dim: Dimension of the joint embedding space.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        ImportError: transformers is not installed.
    """
    import tempfile

    import transformers

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    symbols = _byte_symbols()
    vocab = {s: i for i, s in enumerate([*symbols, *(s + "</w>" for s in symbols), "<|startoftext|>", "<|endoftext|>"])}
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
        (Path(folder) / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
        tokenizer = transformers.CLIPTokenizer.from_pretrained(folder)
    image_processor_cls = getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor
    image_processor = image_processor_cls(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )
    special = {"bos_token_id": vocab["<|startoftext|>"], "eos_token_id": vocab["<|endoftext|>"]}
    config = transformers.CLIPConfig(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 77,
            "pad_token_id": vocab["<|endoftext|>"],
            **special,
        },
        vision_config={
            "image_size": image_size,
            "patch_size": max(1, image_size // 4),
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
        },
        projection_dim=embedding_dim,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = transformers.CLIPModel(config)
    model.save_pretrained(path)
    transformers.CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(path)
    return path


def _byte_symbols() -> list[str]:
    """The 256 printable stand-ins of GPT-2's byte-level BPE (as CLIP's tokenizer uses them), in byte order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    symbols, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            symbols[byte] = chr(byte)
        else:
            symbols[byte] = chr(256 + extra)
            extra += 1
    return [symbols[b] for b in range(256)]
