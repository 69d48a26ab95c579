"""The on-disk cache helpers: stable keys and atomic writes."""

from __future__ import annotations

import os
import stat

import pytest
import torch

from propgrad.atomic_files import atomic_write, write_json
from propgrad.cache import cache_key, load_tensors, save_tensors


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
