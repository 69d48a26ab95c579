"""The turntable workflow: frames written to disk, read back by the ``frames`` source, scored.

A rendered turntable (the ``rendered_rotation`` plugin: we have no camera) is written as
lossless PNGs; the ``frames`` source reads the angles from the file names or a sidecar, detects
the full turn (periodic, period 360) and keeps uneven spacing as a non-uniform grid. Its scores
must equal the rendered source's on the same frames, with the same model and seed.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import pytest
import torch

import propgrad
from propgrad.core.images import save_image
from propgrad.errors import PropgradWarning
from propgrad.sources.frames import FramesSource
from propgrad.stats.settings import test_settings
from propgrad.testing import tiny_classifier

rendered_rotation = pytest.importorskip("propgrad_rendered_rotation", reason="the plugin renders the turntable")

SIZE = 24
UNEVEN = [0.0, 20.0, 30.0, 60.0, 100.0, 170.0, 200.0, 260.0, 300.0, 340.0]


def write_turntable(source, folder: Path, names: list[str]) -> list[Path]:
    """Save the source's frames (SIZE x SIZE) as PNGs under ``names``."""
    folder.mkdir(parents=True, exist_ok=True)
    images = source.render((SIZE, SIZE)).images()
    return [save_image(folder / name, image) for name, image in zip(names, images)]


def explain(source, reference: torch.Tensor, per: str = "step"):
    return propgrad.PropertyGradient(tiny_classifier(3, seed=1)).attribute(
        reference, source=source, target=None, n_permutations=300, seed=3, settings=test_settings(per=per)
    )


@pytest.fixture(scope="module")
def even(tmp_path_factory):
    """A full turn in 15-degree steps, angles in the file names, and its rendered source."""
    source = rendered_rotation.RenderedRotationSource("animal", axis="y", step=15, image_size=SIZE)
    folder = tmp_path_factory.mktemp("turntable")
    write_turntable(source, folder, [f"animal_{a:05.1f}.png" for a in source.angles])
    return source, folder


def test_frames_read_back_the_rendered_turntable_exactly(even):
    source, folder = even
    frames = FramesSource(path=folder)
    seq = frames.generate(torch.zeros(3, SIZE, SIZE))
    rendered = source.generate(torch.zeros(3, SIZE, SIZE))
    assert torch.equal(seq.images, rendered.images)  # lossless PNG of uint8 frames
    assert torch.equal(seq.values, rendered.values) and seq.values[1] == 15.0
    assert (seq.property_name, seq.unit, seq.periodic) == ("angle", "degree", True)
    assert seq.metadata["period"] == rendered.metadata["period"] == 360.0
    assert seq.metadata["uniform_spacing"] and seq.metadata["value_source"] == "file names"


@pytest.mark.parametrize("per", ["step", "unit"])
def test_the_turntable_scores_the_same_as_the_rendered_source(even, per):
    source, folder = even
    reference = source.reference_image()
    from_disk = explain(FramesSource(path=folder), reference, per)
    rendered = explain(source, reference, per)
    assert torch.equal(from_disk.outputs, rendered.outputs)
    assert torch.equal(from_disk.score, rendered.score) and torch.equal(from_disk.p_value, rendered.p_value)
    assert torch.equal(from_disk.flips.flip_steps, rendered.flips.flip_steps)
    assert float(rendered.score.max()) > 0  # the model does respond to the rotation


def test_uneven_turntable_from_a_sidecar_is_a_non_uniform_periodic_grid(tmp_path):
    source = rendered_rotation.RenderedRotationSource("chair", axis="y", angles=UNEVEN, image_size=SIZE)
    assert source.periodic  # the 20-degree gap back to 360 is no larger than the median step
    names = [f"shot_{chr(ord('a') + i)}.png" for i in range(len(UNEVEN))]  # no numbers in the names
    files = write_turntable(source, tmp_path / "uneven", names)
    with (tmp_path / "uneven" / "values.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "angle"])
        writer.writerows([f.name, a] for f, a in reversed(list(zip(files, UNEVEN))))
    frames = FramesSource(path=tmp_path / "uneven")
    assert frames.values == UNEVEN and frames.periodic and frames.value_source.startswith("sidecar")
    seq = frames.generate(torch.zeros(3, SIZE, SIZE))
    assert not seq.metadata["uniform_spacing"] and seq.metadata["period"] == 360.0
    reference = source.reference_image()
    per_unit = explain(frames, reference, "unit")
    assert torch.equal(per_unit.score, explain(source, reference, "unit").score)
    assert torch.equal(per_unit.p_value, explain(source, reference, "unit").p_value)
    # per degree on the uneven grid differs from per step (the spacing is used)
    assert not torch.allclose(per_unit.score, explain(frames, reference, "step").score)


def test_frames_at_0_and_360_degrees_warn_that_they_show_one_view(tmp_path):
    source = rendered_rotation.RenderedRotationSource("mug", axis="y", start=0, stop=180, step=90, image_size=8)
    write_turntable(source, tmp_path / "t", ["m_0.png", "m_90.png", "m_180.png"])
    save_image(tmp_path / "t" / "m_360.png", source.reference_image(8))
    with pytest.warns(PropgradWarning, match=r"m_0\.png and m_360\.png are 360 degrees apart, the same view"):
        frames = FramesSource(path=tmp_path / "t")
    assert not frames.periodic
    (tmp_path / "t" / "m_360.png").unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not FramesSource(path=tmp_path / "t").periodic  # half a turn
    assert FramesSource(path=tmp_path / "t", periodic=True).generate(torch.zeros(3, 8, 8)).metadata["period"] == 360
