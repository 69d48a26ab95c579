"""Image loading, saving, resizing and the bundled example photographs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import io

from propgrad.images import example_image, load_image, load_rgba, resize, save_image


def test_save_and_load_round_trip(tmp_path):
    g = torch.Generator().manual_seed(0)
    image = torch.rand(3, 10, 14, generator=g)
    path = save_image(tmp_path / "x.png", image)
    back = load_image(path)
    assert back.shape == (3, 10, 14) and back.dtype == torch.float32
    assert torch.allclose(back, image, atol=1 / 255)


def test_grey_and_rgba_files_become_rgb(tmp_path):
    io.imsave(tmp_path / "grey.png", np.full((5, 6), 128, dtype=np.uint8), check_contrast=False)
    grey = load_image(tmp_path / "grey.png")
    assert grey.shape == (3, 5, 6) and torch.allclose(grey, torch.full_like(grey, 128 / 255))
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 0
    rgba[:2, :, 3] = 255
    io.imsave(tmp_path / "rgba.png", rgba, check_contrast=False)
    assert load_image(tmp_path / "rgba.png").shape == (3, 4, 4)
    alpha = load_rgba(tmp_path / "rgba.png")[3]
    assert alpha[:2].eq(1).all() and alpha[2:].eq(0).all()


def test_example_photographs_load_offline():
    cat = example_image("chelsea")
    assert cat.shape[0] == 3 and cat.min() >= 0 and cat.max() <= 1
    assert example_image("chelsea", size=(20, 30)).shape == (3, 20, 30)
    with pytest.raises(ValueError, match="chelsea"):
        example_image("not_a_picture")


def test_resize_and_errors(tmp_path):
    assert resize(torch.rand(3, 8, 8), (4, 6)).shape == (3, 4, 6)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "junk.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="junk.png"):
        load_image(tmp_path / "junk.png")
