"""``Explanation.effect_size`` is computed when first read, once, with the value it had when computed at once.

``explanation_of`` gives the effect size as a :class:`~propgrad.explain.result.Deferred`: an
explanation nobody asks for it (every checkpoint of ``propgrad track``) never computes it; reading
it, ``to_dict``, ``summary``, comparison, ``replace``, copying and pickling all see the value.
"""

from __future__ import annotations

import copy
import dataclasses
import pickle

import pytest
import torch

import propgrad.explain.explainer as explainer
from propgrad import PropertyGradient
from propgrad.explain.result import Deferred, Explanation
from propgrad.explain.scoring import PropertyAxis, sequence_effect_size
from propgrad.stats.null_mean import effect_size
from propgrad.stats.settings import test_settings
from propgrad.track import PropertyTracker
from tests.fakes import Brighten, BrightnessModel
from tests.track.checkpoint_files import TinyNet, write_checkpoints

IMAGES = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(4))


@pytest.fixture
def counted(monkeypatch):
    """The effect sizes explanation_of's explanations computed, as (call count list)."""
    calls: list[int] = []

    def counting(*args):
        calls.append(1)
        return sequence_effect_size(*args)

    monkeypatch.setattr(explainer, "sequence_effect_size", counting)
    return calls


def _explanations(target=0, **kwargs):
    return PropertyGradient(BrightnessModel(0.5)).attribute(
        IMAGES, Brighten(), target=target, n_permutations=99, n_placebos=0, **kwargs
    )


def test_the_effect_size_is_computed_on_first_read_once_and_equals_the_direct_one(counted):
    explanations = _explanations()
    assert counted == []  # nothing read yet: nothing computed
    for e in explanations:
        outputs = e.outputs[:, e.target].double()
        direct = effect_size(outputs, None, statistic="gradient", periodic=e.sequence.periodic)
        first = e.effect_size
        assert torch.equal(first, direct)  # the same value, to the last bit
        assert e.effect_size is first  # kept: not computed again
    assert len(counted) == len(explanations)


@pytest.mark.parametrize("target", [0, None])
def test_every_way_of_reading_an_explanation_sees_the_value(counted, target):
    (e, *_) = _explanations(target=target, settings=test_settings(n_permutations=99, per="unit"))
    axis = PropertyAxis.of(e.sequence, "unit")
    outputs = e.outputs.double() if target is None else e.outputs[:, target].double()
    expected = effect_size(outputs, axis.values, periodic=axis.periodic).tolist()
    assert e.to_dict()["effect_size"] == expected
    assert "that of a random order" in e.summary()
    for other in (pickle.loads(pickle.dumps(e)), copy.deepcopy(e), copy.copy(e), dataclasses.replace(e, source="x")):
        assert other.effect_size.tolist() == expected
        assert not any(isinstance(v, Deferred) for v in vars(other).values())  # no computation left pending
    assert len(counted) == 1


def test_a_pickled_explanation_holds_the_value_not_the_computation(counted):
    (e, *_) = _explanations()
    restored = pickle.loads(pickle.dumps(e))
    assert len(counted) == 1  # pickling computed it once
    assert restored.effect_size.tolist() == e.effect_size.tolist()
    assert len(counted) == 1


def test_the_explanation_stays_frozen_and_defaults_to_no_effect_size():
    (e, *_) = _explanations()
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.effect_size = torch.tensor(1.0)  # type: ignore[misc]
    bare = dataclasses.replace(e, effect_size=None)
    assert bare.effect_size is None and bare.to_dict()["effect_size"] is None
    assert Explanation.__dataclass_fields__["effect_size"].default is None
    given = dataclasses.replace(e, effect_size=Deferred(torch.tensor, 0.25))
    assert float(given.effect_size) == 0.25


def test_tracking_never_computes_an_effect_size(tmp_path, monkeypatch):
    def refuse(*args):
        raise AssertionError("the track's records do not use the effect size")

    monkeypatch.setattr(explainer, "sequence_effect_size", refuse)
    write_checkpoints(tmp_path / "ck", TinyNet, "torch", epochs=2)
    result = PropertyTracker(TinyNet, tmp_path / "ck").track(IMAGES, Brighten(steps=5), target=1, n_permutations=19)
    assert len(result.scores) == 4 and all(len(s.score) == 1 for s in result.scores)
