"""The built-in demonstration: two starts trained with a checkpoint per epoch, cached, tracked; its checks."""

from __future__ import annotations

import math

import pytest

from propgrad.track.demo import STARTS, demo_settings, half_way_epoch, run_demo
from propgrad.track.records import CheckpointInfo, CheckpointScore


def _score(epoch: int, image: int, value: float) -> CheckpointScore:
    info = CheckpointInfo(f"e{epoch}", f"/e{epoch}", "torch", None, float(epoch), epoch, f"k{epoch}")
    return CheckpointScore(
        info,
        image,
        "fur",
        "s",
        "per step",
        [0],
        [value],
        [0.5],
        None,
        [False],
        None,
        None,
        0,
        False,
        0,
        [0.5, 0.5],
        [0.0],
        [[0.5, 0.5]],
        [math.nan],
    )


def test_the_half_way_epoch_is_where_the_mean_first_reaches_the_midpoint():
    means = {0: 0.0, 1: 0.1, 2: 0.3, 3: 0.2, 4: 0.4}  # midpoint of 0 and 0.4 is 0.2: reached at epoch 2
    scores = [_score(e, i, m + (0.05 if i else -0.05)) for e, m in means.items() for i in (0, 1)]
    assert half_way_epoch(scores) == 2
    falling = [_score(e, 0, 1 - e / 10) for e in range(4)]
    assert half_way_epoch(falling) is None


@pytest.mark.slow
def test_the_demo_trains_caches_and_tracks_both_starts(tmp_path, monkeypatch, quick_fur):
    from propgrad.suites import training

    settings = demo_settings(epochs=2, images=2, n_permutations=99)
    result = run_demo(settings, cache_dir=quick_fur.cache, out=tmp_path / "out")
    assert set(result.tracks) == set(STARTS)
    for start, track in result.tracks.items():
        assert [c.epoch for c in track.checkpoints] == [0, 1, 2]
        assert len(track.scores) == 3 * 2
        assert (result.folders[start] / "done.json").exists()
        assert (tmp_path / "out" / start / "track-store.jsonl").exists()
    random_start = result.tracks["random"]
    assert result.checks["random"]["images"] == 2
    assert result.checks["random"]["images_higher_at_last_epoch"] == sum(
        s[-1].score[0] > s[0].score[0] for s in (random_start.of_image(0), random_start.of_image(1))
    )

    def no_training(*args, **kwargs):
        raise AssertionError("the cached checkpoints should have been used")

    monkeypatch.setattr(training, "train_classifier", no_training)
    monkeypatch.setattr("propgrad.track.demo.train_with_checkpoints", no_training)
    again = run_demo(settings, cache_dir=quick_fur.cache)
    assert again.tracks["random"].scores == random_start.scores
