"""How often tracking reads each checkpoint file: once to find, order and check it, once to load it.

Discovery reads a torch file's step, epoch and tensor shapes in one pass (a plain state dict's zip
from its pickle alone, :func:`propgrad.track.checkpoint_reading.read_torch_summary`), keeps the
shapes on the :class:`~propgrad.track.checkpoints.Checkpoint`, and the architecture check uses them
unless the file changed; loading reads the tensors once. The skimmed pickle must give exactly what
torch's own weights-only reading gives.
"""

from __future__ import annotations

import os
import warnings
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

from propgrad.errors import PropgradWarning
from propgrad.track import PropertyTracker
from propgrad.track import checkpoint_reading as reading
from propgrad.track.checkpoints import (
    CheckpointError,
    check_same_architecture,
    find_checkpoints,
    load_checkpoint,
    read_shapes,
)
from tests.fakes import Brighten
from tests.track.checkpoint_files import KINDS, TinyNet, randomised, write_checkpoints


class Reads:
    """Counts, per file, the full reads (:func:`read_torch_file`: torch's weights-only unpickler, twice for a file
    naming objects it does not rebuild) and the skims of the pickle alone."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.full: list[str] = []
        self.skims: list[str] = []
        read_file, skim = reading.read_torch_file, reading._skim_torch_zip

        def counted_read(path, *args, **kwargs):
            self.full.append(Path(path).name)
            return read_file(path, *args, **kwargs)

        def counted_skim(path):
            self.skims.append(Path(path).name)
            return skim(path)

        monkeypatch.setattr(reading, "read_torch_file", counted_read)
        monkeypatch.setattr(reading, "_skim_torch_zip", counted_skim)

    def per_file(self) -> dict[str, tuple[int, int]]:
        """``name -> (full reads, skims)``."""
        return {n: (self.full.count(n), self.skims.count(n)) for n in sorted(set(self.full) | set(self.skims))}


def test_tracking_reads_a_plain_checkpoint_once_to_find_it_and_once_to_load_it(tmp_path, monkeypatch):
    write_checkpoints(tmp_path / "ck", TinyNet, "torch", epochs=3)
    reads = Reads(monkeypatch)
    tracker = PropertyTracker(TinyNet, tmp_path / "ck")  # finds, orders and checks the architecture
    names = [c.path.name for c in tracker.checkpoints]
    assert reads.per_file() == {name: (0, 1) for name in names}  # one skim each, no full read
    result = tracker.track(torch.rand(1, 3, 8, 8), Brighten(steps=4), target=0, n_permutations=19)
    assert reads.per_file() == {name: (1, 1) for name in names}  # loading: one full read each
    assert [s.checkpoint.epoch for s in result.scores] == [0, 1, 2]


def test_a_checkpoint_the_skim_does_not_read_is_still_read_once_to_find_and_check_it(tmp_path, monkeypatch):
    written = write_checkpoints(tmp_path / "ck", TinyNet, "lightning", epochs=2)  # Lightning's objects: a full read
    reads = Reads(monkeypatch)
    found = find_checkpoints(tmp_path / "ck")
    check_same_architecture(found)
    assert reads.per_file() == {w.path.name: (1, 1) for w in written}
    for checkpoint, w in zip(found, written):
        assert read_shapes(checkpoint) == {"model." + k: tuple(v.shape) for k, v in w.state.items()}
    assert reads.per_file() == {w.path.name: (1, 1) for w in written}  # the shapes were kept, not read again


def _torch_files(folder: Path) -> list[tuple[str, Path]]:
    files = []
    for kind in KINDS:
        for w in write_checkpoints(folder / kind, TinyNet, kind, epochs=1):
            path = w.path / "pytorch_model.bin" if w.path.is_dir() else w.path
            if path.is_file() and path.suffix != ".safetensors":
                files.append((kind, path))
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))  # a 0-d long tensor (num_batches_tracked)
    torch.save({"model": net.state_dict(), "global_step": 7, "cfg": {"a": [1, 2.5, "x"]}}, folder / "bn.pt")
    files.append(("bn", folder / "bn.pt"))
    params = {k: nn.Parameter(v) if v.is_floating_point() else v for k, v in net.state_dict().items()}
    torch.save(params, folder / "parameters.pt")
    files.append(("parameters", folder / "parameters.pt"))
    torch.save({"state_dict": net.state_dict(), "epoch": torch.tensor(3)}, folder / "tensor_epoch.pt")
    files.append(("tensor-epoch", folder / "tensor_epoch.pt"))
    torch.save(net.state_dict(), folder / "legacy.pt", _use_new_zipfile_serialization=False)
    files.append(("legacy", folder / "legacy.pt"))
    sgd = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    net(torch.rand(2, 3, 5, 5)).sum().backward()
    sgd.step()  # momentum buffers: tensors outside the state dict
    torch.save({"model_state_dict": net.state_dict(), "optimizer": sgd.state_dict(), "epoch": 1}, folder / "opt.pt")
    files.append(("optimizer-state", folder / "opt.pt"))
    return files


SKIMMED = {"torch", "torch-bare", "dataparallel", "paper", "hf-trainer-bin", "bn", "parameters"}


def test_the_skim_gives_what_the_full_weights_only_read_gives(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy format's and Lightning's own warnings
        for kind, path in _torch_files(tmp_path):
            state, metadata = reading.read_torch_state(path)
            expected = (metadata, {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)})
            skimmed = reading._skim_torch_zip(path)
            assert (skimmed is not None) == (kind in SKIMMED), kind  # the others hold more than a state dict
            assert reading.read_torch_summary(path) == expected, kind
            if skimmed is not None:
                assert skimmed == expected, kind


def test_a_damaged_file_is_still_refused_when_found(tmp_path):
    write_checkpoints(tmp_path / "ck", TinyNet, "torch", epochs=2)
    path = tmp_path / "ck" / "ckpt_1.pt"
    with zipfile.ZipFile(path) as archive:
        records = {i.filename: archive.read(i) for i in archive.infolist()}
    dropped = next(name for name in records if name.endswith("/data/0"))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:  # the same file without one tensor's bytes
        for name, data in records.items():
            if name != dropped:
                archive.writestr(name, data)
    assert reading._skim_torch_zip(path) is None
    with pytest.raises(CheckpointError, match="ckpt_1.pt"):
        find_checkpoints(tmp_path / "ck")


def test_a_file_changed_after_it_was_found_is_read_again(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PropgradWarning)  # bare state dicts record no epoch
        write_checkpoints(tmp_path / "ck", TinyNet, "torch-bare", epochs=2)
        found = find_checkpoints(tmp_path / "ck")
    check_same_architecture(found)
    wider = nn.Sequential(nn.Linear(3, 7))
    torch.save(randomised(lambda: wider, 0).state_dict(), found[1].path)  # another architecture, same name
    stamp = found[1].path.stat()
    os.utime(found[1].path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 10**9))
    assert read_shapes(found[1]) == {"0.weight": (7, 3), "0.bias": (7,)}
    with pytest.raises(CheckpointError, match="different architectures"):
        check_same_architecture(found)
    model = TinyNet()
    load_checkpoint(model, found[0])  # the unchanged one still loads
