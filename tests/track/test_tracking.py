"""``PropertyTracker``: one sequence per image for every checkpoint, the explainer's scores, one model, resuming."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from propgrad import PropertyGradient
from propgrad.errors import InvalidParameterError
from propgrad.track import Keeping, PropertyTracker
from propgrad.track.records import pearson, pearson_columns, summarise
from tests.fakes import Brighten, BrightnessModel
from tests.track.checkpoint_files import TinyNet, write_checkpoints

K = 99


def brightness_checkpoints(folder, scales):
    """One ``torch`` checkpoint per epoch of a BrightnessModel(cut 0.5) with the given logit scales."""
    folder.mkdir(parents=True, exist_ok=True)
    for epoch, scale in enumerate(scales):
        state = {"scale": torch.tensor(float(scale))}
        torch.save({"model_state_dict": state, "epoch": epoch}, folder / f"ckpt_{epoch}.pt")
    return folder


@pytest.fixture
def grey_images():
    return torch.stack([torch.full((3, 8, 8), v) for v in (0.2, 0.45)])


def test_every_checkpoint_scores_as_the_explainer_scores_that_checkpoint(tmp_path):
    written = write_checkpoints(tmp_path / "ck", TinyNet, "torch", epochs=3)
    images = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    result = PropertyTracker(TinyNet, tmp_path / "ck").track(
        images, Brighten(steps=6), target=1, n_permutations=K, seed=3
    )
    assert [c.epoch for c in result.checkpoints] == [0, 1, 2]
    for ck in written:
        model = TinyNet()
        model.load_state_dict(ck.state)
        expected = PropertyGradient(model).attribute(
            images, Brighten(steps=6), target=1, n_permutations=K, seed=3, n_placebos=0
        )
        got = [s for s in result.scores if s.checkpoint.epoch == ck.epoch]
        assert [s.image for s in got] == [0, 1]
        for s, e in zip(got, expected):
            assert s.score == pytest.approx([float(e.score)], rel=1e-6)
            assert s.p == pytest.approx([float(e.p_value)])
            assert s.flips == e.flips.n_flips and s.decision == e.flips.reference_decision
            assert np.allclose(s.outputs, e.outputs.double().numpy(), atol=1e-6)


def test_the_sequence_is_generated_once_per_image_and_the_model_built_once(tmp_path, grey_images):
    brightness_checkpoints(tmp_path / "ck", [1, 5, 10, 20])
    built = []

    def factory():
        built.append(1)
        return BrightnessModel(0.5)

    Brighten.calls = 0
    tracker = PropertyTracker(factory, tmp_path / "ck")
    model = tracker.model
    result = tracker.track(grey_images, Brighten(steps=9), target=1, n_permutations=K)
    assert Brighten.calls == 2  # two images, four checkpoints: two sequences
    assert len(built) == 1 and tracker.model is model
    assert model.images_seen == 4 * 2 * (1 + 9)  # every checkpoint: each original and its 9 steps, once
    assert len(result.scores) == 8


def test_scores_grow_with_the_weights_and_flips_follow_the_arithmetic(tmp_path, grey_images):
    # Brighten adds up to 0.9 to image * 0.1: the mean crosses the cut 0.5 for both images, so the
    # decision flips once (dark -> bright) at every checkpoint with a nonzero scale; scale 0 gives
    # constant outputs (0.5, 0.5): no flip, no defined Pearson rho.
    brightness_checkpoints(tmp_path / "ck", [0, 2, 8])
    result = PropertyTracker(BrightnessModel(0.5), tmp_path / "ck").track(
        grey_images, Brighten(steps=9), target=1, n_permutations=K, alpha=0.05
    )
    for image in (0, 1):
        scores = result.of_image(image)
        assert scores[0].score[0] == 0 and scores[1].score[0] < scores[2].score[0]
        assert [s.flips for s in scores] == [0, 1, 1]
        assert [s.flipped for s in scores] == [False, True, True]
        assert math.isnan(scores[0].pearson[0])
        expected_rho = stats.pearsonr(scores[2].values, [row[1] for row in scores[2].outputs]).statistic
        assert scores[2].pearson[0] == pytest.approx(expected_rho)
    (first, second) = result.summary()
    assert first.n_checkpoints == 3 and first.n_flipped == 2
    assert first.mean_score == pytest.approx(np.mean([s.score[0] for s in result.of_image(0)]))
    assert first.n_significant == sum(s.significant[0] for s in result.of_image(0)) == 2
    assert math.isnan(first.mean_pearson) and first.n_pearson == 2  # n/a: undefined at the constant checkpoint


def test_the_summary_mean_rho_is_the_mean_over_checkpoints_when_every_rho_is_defined(tmp_path, grey_images):
    brightness_checkpoints(tmp_path / "ck", [1, 3])
    result = PropertyTracker(BrightnessModel(0.5), tmp_path / "ck").track(
        grey_images, Brighten(steps=9), target=None, n_permutations=K
    )
    rows = summarise(result.scores)
    assert [(r.image, r.column) for r in rows] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    for r in rows:
        rhos = [s.pearson[r.column] for s in result.of_image(r.image)]
        assert r.mean_pearson == pytest.approx(np.mean(rhos))
    assert rows[0].mean_pearson == pytest.approx(-rows[1].mean_pearson)  # the two softmax columns mirror


def test_pearson_columns_are_scipys_per_column_and_nan_for_a_constant_one():
    rng = np.random.default_rng(0)
    values = np.linspace(0.0, 1.0, 9)
    outputs = rng.normal(size=(9, 4))
    outputs[:, 2] = 0.25  # constant: rho undefined
    outputs[:, 3] = 3 * values - 1  # exactly linear: rho 1
    rhos = pearson_columns(values, outputs)
    for c in (0, 1, 3):
        assert rhos[c] == pytest.approx(stats.pearsonr(values, outputs[:, c]).statistic, abs=1e-12)
    assert math.isnan(rhos[2]) and rhos[3] <= 1.0
    assert np.isnan(pearson_columns(np.zeros(9), outputs)).all()  # constant values
    # a batch (the images of one checkpoint) is each image on its own
    batch_values = np.stack([values, values**2, np.zeros(9)])
    batch = np.stack([outputs, outputs[::-1], outputs])
    together = pearson_columns(batch_values, batch)
    assert together.shape == (3, 4)
    for i in range(3):
        np.testing.assert_allclose(together[i], pearson_columns(batch_values[i], batch[i]), rtol=1e-13, atol=0)


def test_pearson_is_undefined_for_constant_outputs():
    assert math.isnan(pearson([0, 1, 2], [3, 3, 3]))
    assert pearson([0, 1, 2], [0, 2, 1]) == pytest.approx(stats.pearsonr([0, 1, 2], [0, 2, 1]).statistic)


def test_an_interrupted_track_continues_from_the_last_finished_checkpoint(tmp_path, grey_images):
    brightness_checkpoints(tmp_path / "ck", [1, 2, 3, 4])
    store = tmp_path / "out" / "store.jsonl"

    class StopAfter:
        def __init__(self, n):
            self.n = n

        def log(self, scores):
            self.n -= 1
            if self.n == 0:
                raise KeyboardInterrupt

        def close(self):
            pass

    def tracker():
        return PropertyTracker(BrightnessModel(0.5), tmp_path / "ck")

    with pytest.raises(KeyboardInterrupt):
        tracker().track(grey_images, Brighten(), target=1, n_permutations=K, keep=Keeping(store, [StopAfter(2)]))
    resumed = tracker().track(grey_images, Brighten(), target=1, n_permutations=K, keep=Keeping(store))
    assert (resumed.timing.resumed, resumed.timing.computed) == (2, 2)
    fresh = tracker().track(grey_images, Brighten(), target=1, n_permutations=K)
    assert resumed.scores == fresh.scores
    again = tracker().track(grey_images, Brighten(), target=1, n_permutations=K, keep=Keeping(store))
    assert (again.timing.resumed, again.timing.computed) == (4, 0)


def test_a_rewritten_checkpoint_is_scored_again(tmp_path, grey_images):
    folder = brightness_checkpoints(tmp_path / "ck", [1, 2])
    store = tmp_path / "store.jsonl"
    PropertyTracker(BrightnessModel(0.5), folder).track(
        grey_images, Brighten(), target=1, n_permutations=K, keep=Keeping(store)
    )
    torch.save(
        {"model_state_dict": {"scale": torch.tensor(30.0)}, "epoch": 1, "note": "retrained"}, folder / "ckpt_1.pt"
    )
    result = PropertyTracker(BrightnessModel(0.5), folder).track(
        grey_images, Brighten(), target=1, n_permutations=K, keep=Keeping(store)
    )
    assert (result.timing.resumed, result.timing.computed) == (1, 1)


def test_a_store_of_another_test_is_refused(tmp_path, grey_images):
    from propgrad.harness.store import SettingsMismatchError

    folder = brightness_checkpoints(tmp_path / "ck", [1, 2])
    store = tmp_path / "store.jsonl"
    PropertyTracker(BrightnessModel(0.5), folder).track(
        grey_images, Brighten(), target=1, n_permutations=K, keep=Keeping(store)
    )
    with pytest.raises(SettingsMismatchError, match="n_permutations"):
        PropertyTracker(BrightnessModel(0.5), folder).track(
            grey_images, Brighten(), target=1, n_permutations=K + 1, keep=Keeping(store)
        )


def test_ready_sequences_replace_the_source(tmp_path, grey_images):
    folder = brightness_checkpoints(tmp_path / "ck", [1, 2])
    sequences = [Brighten().generate(image) for image in grey_images]
    tracker = PropertyTracker(BrightnessModel(0.5), folder)
    given = tracker.track(grey_images, sequences=sequences, target=1, n_permutations=K)
    generated = tracker.track(grey_images, Brighten(), target=1, n_permutations=K)
    assert [s.score for s in given.scores] == [s.score for s in generated.scores]
    with pytest.raises(InvalidParameterError, match="one InterventionSequence per image"):
        tracker.track(grey_images, sequences=sequences[:1], target=1)
    with pytest.raises(InvalidParameterError, match="either a source or the ready sequences"):
        tracker.track(grey_images, Brighten(), sequences=sequences, target=1)


def test_the_placebo_test_runs_only_when_asked(tmp_path, grey_images):
    folder = brightness_checkpoints(tmp_path / "ck", [5])
    tracker = PropertyTracker(BrightnessModel(0.5), folder)
    plain = tracker.track(grey_images, Brighten(), target=1, n_permutations=K)
    assert plain.scores[0].p_placebo is None and plain.test.n_placebos == 0
    with_placebos = tracker.track(grey_images, Brighten(), target=1, n_permutations=K, n_placebos=9, alpha=0.2)
    assert with_placebos.test.n_placebos == 9
    assert all(s.p_placebo is not None and 0 < s.p_placebo[0] <= 1 for s in with_placebos.scores)


def test_a_model_that_is_not_a_module_is_refused(tmp_path):
    folder = brightness_checkpoints(tmp_path / "ck", [1])
    with pytest.raises(InvalidParameterError, match="not an nn.Module"):
        PropertyTracker(lambda: "model", folder)
    with pytest.raises(InvalidParameterError, match="nn.Module or a factory"):
        PropertyTracker(3, folder)
