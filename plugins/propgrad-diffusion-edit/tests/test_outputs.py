"""Fidelity numbers and the filmstrip."""

from __future__ import annotations

import torch

from propgrad.sources.base import InterventionSequence
from propgrad_diffusion_edit import save_filmstrip
from propgrad_diffusion_edit.fidelity import PSNR_CAP_DB, fidelity


def test_fidelity_is_perfect_for_the_original_and_drops_with_noise(image):
    noise = torch.rand(image.shape, generator=torch.Generator().manual_seed(0))
    steps = torch.stack([image, (image + 0.05 * (noise - 0.5)).clamp(0, 1), (image + 0.5 * (noise - 0.5)).clamp(0, 1)])
    scores = fidelity(steps, image)
    assert scores["psnr"][0] == PSNR_CAP_DB and abs(scores["ssim"][0] - 1) < 1e-9
    assert scores["psnr"][0] > scores["psnr"][1] > scores["psnr"][2]
    assert scores["ssim"][0] > scores["ssim"][1] > scores["ssim"][2]
    mse = float(((steps[1] - image) ** 2).mean())
    assert abs(scores["psnr"][1] + 10 * torch.log10(torch.tensor(mse)).item()) < 1e-4


def test_filmstrip_draws_one_thumbnail_per_kept_step(image, tmp_path):
    import matplotlib.image

    seq = InterventionSequence(
        images=torch.stack([image * (1 - a) for a in torch.linspace(0, 0.9, 20).tolist()]),
        values=torch.linspace(1.05, 3.9, 20),
        property_name="text guidance scale",
        unit="guidance scale",
        metadata={"fidelity": fidelity(torch.stack([image] * 20), image)},
    )
    wide = matplotlib.image.imread(save_filmstrip(seq, tmp_path / "strip" / "wide.png", max_frames=8))
    narrow = matplotlib.image.imread(save_filmstrip(seq, tmp_path / "narrow.png", max_frames=4))
    assert wide.shape[1] == 2 * narrow.shape[1]  # 8 vs 4 thumbnails of equal width
    assert wide.shape[0] == narrow.shape[0]
