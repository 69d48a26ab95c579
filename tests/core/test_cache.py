"""The on-disk cache helpers: stable keys, atomic writes, content hashes and rebuilding damaged entries."""

from __future__ import annotations

import os
import stat

import pytest
import torch

from propgrad.core.atomic_files import atomic_write, write_json
from propgrad.core.cache import CacheRebuildWarning, cache_key, file_sha256, load_tensors, save_tensors
from propgrad.suites.cached import CachedSuite
from propgrad.suites.training import TrainingConfig


def test_cache_key_is_stable_and_sensitive():
    t = torch.arange(6.0)
    assert cache_key("fur", {"a": 1, "b": [1, 2]}, t) == cache_key("fur", {"b": [1, 2], "a": 1}, t.clone())
    assert cache_key("fur", {"a": 1}, t) != cache_key("fur", {"a": 2}, t)
    assert cache_key("fur", t) != cache_key("fur", t + 1)
    with pytest.raises(TypeError, match="cannot encode"):
        cache_key(object())


def test_atomic_write_leaves_nothing_behind_on_failure(tmp_path):
    target = tmp_path / "results.json"
    write_json(target, {"ok": 1})

    def broken(tmp):
        tmp.write_text("half written")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, broken)
    assert target.read_text().strip().startswith("{") and '"ok": 1' in target.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_written_files_get_ordinary_permissions(tmp_path):
    mode = stat.S_IMODE(write_json(tmp_path / "x.json", {}).stat().st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask


def test_tensors_round_trip_and_corrupt_entries_read_as_missing(tmp_path):
    path = save_tensors(tmp_path / "t.pt", {"w": torch.ones(2, 3)})
    assert torch.equal(load_tensors(path)["w"], torch.ones(2, 3))
    path.write_bytes(b"garbage")
    assert load_tensors(path) is None
    assert load_tensors(tmp_path / "missing.pt") is None


def test_tensor_entries_carry_a_content_hash_that_catches_damage(tmp_path):
    from propgrad.core.cache import hash_path, load_tensors_checked

    path = save_tensors(tmp_path / "t.pt", {"w": torch.arange(4096.0)})
    assert hash_path(path).read_text().split() == [file_sha256(path), "t.pt"]
    assert load_tensors_checked(path).problem is None
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a flipped byte inside the tensor data: the file still loads
    path.write_bytes(bytes(data))
    loaded = load_tensors_checked(path)
    assert loaded.tensors is None and "content hash differs" in loaded.problem
    path.write_bytes(bytes(data[: len(data) // 3]))  # truncated
    assert "content hash differs" in load_tensors_checked(path).problem
    hash_path(path).unlink()  # an entry of an older propgrad: no hash, checked by loading
    assert "cannot be read" in load_tensors_checked(path).problem
    legacy = tmp_path / "legacy.pt"
    torch.save({"w": torch.ones(2)}, legacy)
    assert load_tensors_checked(legacy).problem is None and hash_path(legacy).exists()


class TinySuite(CachedSuite):
    """A cached suite small enough to train in a moment."""

    name = "tiny"
    class_names = ("bright", "dark")
    interventions = ("none",)
    training_splits = ("only",)

    def training_config(self) -> TrainingConfig:
        return TrainingConfig(epochs=1, batch_size=8, dim=4, depth=1, kernel_size=3, patch_size=4)

    def settings(self):
        return self.settings_base()

    def training_data(self, split):
        gen = self.generator(f"train/{split}")
        labels = torch.randint(0, 2, (16,), generator=gen)
        return (1.0 - labels.float())[:, None, None, None].expand(-1, 3, 8, 8).clone(), labels

    def make_test_data(self):
        images, labels = self.training_data("test")
        return {"images": images, "labels": labels}

    def evaluation_data(self):
        return {"test": self.test_set()}

    def intervene(self, intervention, index):
        raise NotImplementedError


def test_a_damaged_cached_model_is_retrained_with_a_warning_saying_why(tmp_path):
    first = TinySuite(cache_dir=tmp_path)
    first.models()
    assert first.training_seconds  # trained on the cold cache, silently
    model_file = first.cache_path / "model_only.pt"
    assert (first.cache_path / "model_only.pt.sha256").exists()
    TinySuite(cache_dir=tmp_path).models()  # a warm cache loads without a word
    model_file.write_bytes(model_file.read_bytes()[:100])  # truncated
    again = TinySuite(cache_dir=tmp_path)
    with pytest.warns(CacheRebuildWarning, match=r"tiny: the cached .*model_only.pt is unusable: .*; retraining it"):
        again.models()
    assert again.training_seconds and load_tensors(model_file) is not None
