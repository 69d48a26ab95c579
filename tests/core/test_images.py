"""Tests for propgrad.core.images: loading, saving, resizing, example images, masks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from propgrad.core.images import (
    EXAMPLE_IMAGES,
    array_to_rgba,
    as_mask,
    example_image,
    load_image,
    load_mask,
    load_rgba,
    resize,
    save_image,
)


def test_save_load_roundtrip_png_is_exact_at_8_bit(tmp_path: Path) -> None:
    image = torch.rand(3, 9, 7, generator=torch.Generator().manual_seed(0))
    path = save_image(tmp_path / "x.png", image)
    loaded = load_image(path)
    assert loaded.shape == (3, 9, 7) and loaded.dtype == torch.float32
    expected = (image * 255).round() / 255
    assert torch.allclose(loaded, expected, atol=1e-6)
    assert not list(tmp_path.glob("*.tmp")), "atomic write left a temporary file"


def test_rgba_keeps_alpha_and_load_image_drops_it(tmp_path: Path) -> None:
    rgba = torch.rand(4, 6, 5, generator=torch.Generator().manual_seed(1))
    save_image(tmp_path / "a.png", rgba)
    loaded = load_rgba(tmp_path / "a.png")
    assert loaded.shape == (4, 6, 5)
    assert torch.allclose(loaded[3], (rgba[3] * 255).round() / 255, atol=1e-6)
    assert load_image(tmp_path / "a.png").shape == (3, 6, 5)


def test_grey_uint16_and_grey_alpha_inputs(tmp_path: Path) -> None:
    grey = np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000
    Image.fromarray(grey).save(tmp_path / "g16.png")
    loaded = load_image(tmp_path / "g16.png")
    assert loaded.shape == (3, 3, 4)
    assert torch.equal(loaded[0], loaded[2])
    assert torch.allclose(loaded[0], torch.from_numpy(grey.astype(np.float32) / 65535))
    la = np.stack([np.full((2, 3), 100, np.uint8), np.full((2, 3), 50, np.uint8)], axis=2)
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    rgba = load_rgba(tmp_path / "la.png")
    assert torch.allclose(rgba[:3], torch.full((3, 2, 3), 100 / 255))
    assert torch.allclose(rgba[3], torch.full((2, 3), 50 / 255))


def test_opaque_image_gets_alpha_one(tmp_path: Path) -> None:
    save_image(tmp_path / "o.png", torch.rand(3, 4, 4))
    assert torch.equal(load_rgba(tmp_path / "o.png")[3], torch.ones(4, 4))


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.png"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "bad.png").write_bytes(b"not an image at all")
    with pytest.raises(ValueError, match="could not read image .*bad.png"):
        load_image(tmp_path / "bad.png")
    with pytest.raises(ValueError, match="folder"):
        load_image(tmp_path)


def test_save_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        save_image(tmp_path / "x.png", torch.rand(2, 4, 4))
    with pytest.raises(ValueError, match="float"):
        save_image(tmp_path / "x.png", torch.zeros(3, 4, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        save_image(tmp_path / "x.png", torch.full((3, 4, 4), 2.0))
    with pytest.raises(ValueError, match="extension"):
        save_image(tmp_path / "x.nope", torch.rand(3, 4, 4))


def test_resize_sizes_dtype_and_identity() -> None:
    image = torch.rand(3, 20, 30, dtype=torch.float64)
    out = resize(image, (10, 15))
    assert out.shape == (3, 10, 15) and out.dtype == torch.float64
    assert resize(image, 8).shape == (3, 8, 8)
    assert resize(torch.rand(2, 3, 5, 5), (7, 9)).shape == (2, 3, 7, 9)
    assert resize(image, (20, 30)) is image
    constant = torch.full((3, 16, 16), 0.3)
    assert torch.allclose(resize(constant, 5), torch.full((3, 5, 5), 0.3))
    with pytest.raises(ValueError, match="size"):
        resize(image, (0, 4))
    with pytest.raises(ValueError, match="size"):
        resize(image, "big")
    with pytest.raises(ValueError, match="float"):
        resize(torch.zeros(3, 4, 4, dtype=torch.uint8), 2)


@pytest.mark.parametrize("name", EXAMPLE_IMAGES)
def test_example_images_load_offline(name: str) -> None:
    image = example_image(name, size=(16, 24))
    assert image.shape == (3, 16, 24) and image.dtype == torch.float32
    assert 0 <= float(image.min()) and float(image.max()) <= 1 and image.std() > 0.01


@pytest.mark.parametrize("name", EXAMPLE_IMAGES)
def test_example_images_equal_scikit_images_loader(name: str) -> None:
    from skimage import data

    expected = array_to_rgba(getattr(data, name)(), name)[:3]
    assert torch.equal(example_image(name), expected)


def test_example_image_does_not_import_skimage_io() -> None:
    code = (
        "import sys; from propgrad.core.images import example_image; example_image('chelsea'); "
        "loaded = sorted(m for m in sys.modules if m.startswith(('skimage.io', 'scipy'))); "
        "assert not loaded, loaded"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_example_image_unknown_name() -> None:
    with pytest.raises(ValueError, match="chelsea"):
        example_image("lena")


def test_masks(tmp_path: Path) -> None:
    assert as_mask(torch.ones(1, 3, 4, dtype=torch.bool), "m").dtype == torch.float32
    assert as_mask(torch.ones(1, 3, 4, dtype=torch.bool), "m").shape == (3, 4)
    with pytest.raises(ValueError, match="m must hold values"):
        as_mask(torch.full((3, 4), 1.5), "m")
    with pytest.raises(ValueError, match="m must be a bool or float"):
        as_mask(torch.ones(3, 4, dtype=torch.int64), "m")
    with pytest.raises(ValueError, match=r"m must match the image size \(5, 5\)"):
        as_mask(torch.ones(3, 4), "m", size=(5, 5))
    with pytest.raises(TypeError, match="m must be"):
        as_mask([[1, 0]], "m")
    white_left = torch.zeros(3, 4, 6)
    white_left[:, :, :3] = 1
    save_image(tmp_path / "mask.png", white_left)
    assert torch.equal(load_mask(tmp_path / "mask.png"), white_left[0])
    assert torch.equal(as_mask(tmp_path / "mask.png", "m"), white_left[0])


def test_files_written_by_scikit_image_grey_and_rgba(tmp_path: Path) -> None:
    from skimage import io

    io.imsave(tmp_path / "grey.png", np.full((5, 6), 128, dtype=np.uint8), check_contrast=False)
    grey = load_image(tmp_path / "grey.png")
    assert grey.shape == (3, 5, 6) and torch.allclose(grey, torch.full_like(grey, 128 / 255))
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., 0] = 255
    rgba[:2, :, 3] = 255
    io.imsave(tmp_path / "rgba.png", rgba, check_contrast=False)
    assert load_image(tmp_path / "rgba.png").shape == (3, 4, 4)
    alpha = load_rgba(tmp_path / "rgba.png")[3]
    assert alpha[:2].eq(1).all() and alpha[2:].eq(0).all()


# bad files ----------------------------------------------------------------------------------


def png_of_zeros(width: int, height: int) -> bytes:
    """A valid 1-bit greyscale PNG of zeros, built without ever holding its pixels decoded."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\0" * (1 + (width + 7) // 8)
    compressor = zlib.compressobj(9)
    rows_per_block = max(1, 2**20 // len(row))
    blocks = [compressor.compress(row * min(rows_per_block, height - i)) for i in range(0, height, rows_per_block)]
    data = b"".join(blocks) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def test_decompression_bomb_is_refused_from_its_header(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_of_zeros(13000, 13000))  # 169 million pixels in ~20 KB
    assert bomb.stat().st_size < 200_000
    with pytest.warns(Image.DecompressionBombWarning), Image.open(bomb) as header_only:
        assert header_only.size == (13000, 13000)
    for load in (load_image, load_rgba, load_mask):
        with pytest.raises(ValueError, match=r"bomb.png is 13000x13000 = 169,000,000 pixels, .*MAX_IMAGE_PIXELS"):
            load(bomb)
    huge = tmp_path / "huge.png"
    huge.write_bytes(png_of_zeros(20000, 20000))  # past twice the limit, where Pillow itself refuses
    with pytest.raises(ValueError, match=r"huge.png has too many pixels.*MAX_IMAGE_PIXELS"):
        load_image(huge)


def test_pixel_limit_follows_pillows_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    save_image(tmp_path / "small.png", torch.rand(3, 10, 12))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 120 pixels: above the limit, below twice it
    with pytest.raises(ValueError, match=r"small.png is 12x10 = 120 pixels, more than the limit of 100"):
        load_image(tmp_path / "small.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # the guard switched off
    assert load_image(tmp_path / "small.png").shape == (3, 10, 12)


@pytest.mark.parametrize(
    "content",
    [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n", "truncated"],
    ids=["empty", "text", "png-signature-only", "truncated-png"],
)
def test_files_that_are_not_images_name_the_file(tmp_path: Path, content: bytes | str) -> None:
    path = tmp_path / "broken.png"
    if content == "truncated":
        save_image(path, torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0)))
        content = path.read_bytes()[: path.stat().st_size // 2]
    path.write_bytes(content)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"could not read image .*broken.png \(not an image file, or a truncated"):
        load_image(path)
