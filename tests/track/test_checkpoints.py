"""Finding, ordering, reading and loading checkpoints (propgrad.track.checkpoints) in every format users have."""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import sys
import types
import warnings
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from propgrad.errors import InputFileError, PropgradError, PropgradWarning
from propgrad.track.checkpoint_reading import OpaqueObject, read_torch_file
from propgrad.track.checkpoints import (
    Checkpoint,
    CheckpointError,
    check_fits,
    check_same_architecture,
    find_checkpoints,
    load_checkpoint,
    read_shapes,
    read_state_dict,
)
from tests.track.checkpoint_files import KINDS, TinyNet, lightning_checkpoint, randomised, tiny_vit, write_checkpoints

IMAGES = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))


def outputs(model: nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(IMAGES)


def same_state(model: nn.Module, state: dict[str, torch.Tensor]) -> bool:
    own = model.state_dict()
    return set(own) == set(state) and all(torch.equal(own[k], state[k]) for k in own)


# --- every format: found, ordered, loaded (round trip: the loaded model computes what the saved one did)


@pytest.mark.parametrize("kind", KINDS)
def test_every_format_round_trips_in_training_order(tmp_path, kind):
    written = write_checkpoints(tmp_path, TinyNet, kind, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PropgradWarning)  # the bare state dicts record no step: said in another test
        found = find_checkpoints(tmp_path)
    assert [c.path for c in found] == [w.path for w in written]
    expected_kind = {"hf-trainer-bin": "hf-trainer", "torch-bare": "torch", "dataparallel": "torch"}.get(kind, kind)
    assert {c.kind for c in found} == {expected_kind}
    for checkpoint, saved in zip(found, written):
        model = load_checkpoint(TinyNet(), checkpoint)
        assert same_state(model, saved.state)
        reference = TinyNet()
        reference.load_state_dict(saved.state)
        assert torch.equal(outputs(model), outputs(reference))
    # the three checkpoints are really different models: a loader that always loaded the first would fail
    assert not torch.equal(outputs(load_checkpoint(TinyNet(), found[0])), outputs(load_checkpoint(TinyNet(), found[2])))


@pytest.mark.parametrize(
    ("kind", "steps", "epochs"),
    [
        ("hf-trainer", [100, 200, 300], [1.0, 2.0, 3.0]),
        ("lightning", [100, 200, 300], [0, 1, 2]),
        ("safetensors", [100, 200, 300], [0, 1, 2]),
        ("torch", [100, 200, 300], [0, 1, 2]),
        ("paper", [None] * 3, [0, 1, 2]),  # the epoch from the names epoch_<E>.pt
    ],
)
def test_step_and_epoch_come_from_the_files(tmp_path, kind, steps, epochs):
    write_checkpoints(tmp_path, TinyNet, kind, 3)
    found = find_checkpoints(tmp_path)
    assert [c.step for c in found] == steps
    assert [c.epoch for c in found] == epochs
    assert {c.ordered_by for c in found} == {"name" if kind == "paper" else "metadata"}


def test_hf_trainer_folder_with_a_transformers_model_loads_with_from_pretrained(tmp_path):
    written = write_checkpoints(tmp_path, tiny_vit, "hf-trainer", 2)
    found = find_checkpoints(tmp_path)
    assert (found[1].path / "config.json").is_file()
    model = tiny_vit()
    loaded = load_checkpoint(model, found[1])
    assert loaded is not model and type(loaded) is type(model)
    assert same_state(loaded, written[1].state)
    pixels = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    reference = tiny_vit()
    reference.load_state_dict(written[1].state)
    with torch.no_grad():
        assert torch.equal(loaded(pixel_values=pixels).logits, reference(pixel_values=pixels).logits)
    assert not loaded.training


def test_hf_trainer_folder_that_does_not_fit_the_transformers_model_is_refused(tmp_path):
    write_checkpoints(tmp_path, lambda: tiny_vit(num_labels=5), "hf-trainer", 1)
    with pytest.raises(
        CheckpointError,
        match=r"checkpoint-100' does not fit the model: 'classifier.bias' has shape \(5,\) in the checkpoint",
    ):
        load_checkpoint(tiny_vit(num_labels=2), find_checkpoints(tmp_path)[0])


def test_hf_trainer_weights_load_into_a_wrapper_of_the_model(tmp_path):
    """A model holding the Hugging Face model as ``.model`` (as ``--model hf:`` gives): its prefix is added."""

    class Wrapper(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = TinyNet()

    written = write_checkpoints(tmp_path, TinyNet, "hf-trainer", 1)
    wrapper = load_checkpoint(Wrapper(), find_checkpoints(tmp_path)[0])
    assert same_state(wrapper.model, written[0].state)


def test_sharded_hf_folder_loads_every_shard(tmp_path):
    folder = tmp_path / "checkpoint-40"
    folder.mkdir()
    state = randomised(TinyNet, 3).state_dict()
    keys = sorted(state)
    save_file({k: state[k].contiguous() for k in keys[:2]}, folder / "model-00001-of-00002.safetensors")
    save_file({k: state[k].contiguous() for k in keys[2:]}, folder / "model-00002-of-00002.safetensors")
    weight_map = {k: f"model-0000{1 if i < 2 else 2}-of-00002.safetensors" for i, k in enumerate(keys)}
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}), encoding="utf-8")
    (checkpoint,) = find_checkpoints(tmp_path)
    assert (checkpoint.step, checkpoint.epoch, checkpoint.ordered_by) == (40, None, "name")
    assert same_state(load_checkpoint(TinyNet(), checkpoint), state)
    assert read_shapes(checkpoint) == {k: tuple(v.shape) for k, v in state.items()}


# --- ordering


def test_order_is_numeric_from_the_metadata_never_string_order(tmp_path):
    written = write_checkpoints(tmp_path, TinyNet, "hf-trainer", 12, steps_per_epoch=100)
    names = [c.name for c in find_checkpoints(tmp_path)]
    assert names == [f"checkpoint-{100 * (e + 1)}" for e in range(12)]
    assert sorted(names) != names  # string order would put checkpoint-1000 before checkpoint-200
    assert [c.path for c in find_checkpoints(str(tmp_path / "checkpoint-*"))] == [w.path for w in written]


def test_metadata_wins_over_the_names(tmp_path):
    """Files named against their training order are ordered by what they record."""
    for name, epoch in (("a_first_name.pt", 2), ("b_second_name.pt", 0), ("c_third_name.pt", 1)):
        torch.save({"model_state_dict": TinyNet().state_dict(), "epoch": epoch}, tmp_path / name)
    found = find_checkpoints(tmp_path)
    assert [c.name for c in found] == ["b_second_name.pt", "c_third_name.pt", "a_first_name.pt"]
    assert [c.epoch for c in found] == [0, 1, 2]
    # the same files given explicitly in another order: still training order
    given = find_checkpoints(
        [tmp_path / "c_third_name.pt", tmp_path / "a_first_name.pt", tmp_path / "b_second_name.pt"]
    )
    assert [c.epoch for c in given] == [0, 1, 2]


def test_epoch_then_step_orders_lightning_checkpoints_within_an_epoch(tmp_path):
    state = TinyNet().state_dict()
    for epoch, step in ((1, 150), (0, 50), (1, 100), (0, 100), (2, 200)):
        torch.save(lightning_checkpoint(state, epoch, step), tmp_path / f"epoch={epoch}-step={step}.ckpt")
    found = find_checkpoints(tmp_path)
    assert [(c.epoch, c.step) for c in found] == [(0, 50), (0, 100), (1, 100), (1, 150), (2, 200)]


def test_without_any_step_or_epoch_names_give_natural_order_and_a_warning(tmp_path):
    for n in (10, 9, 100):
        torch.save(TinyNet().state_dict(), tmp_path / f"model_{n}.pt")
    with pytest.warns(PropgradWarning, match="record no step or epoch.*ordered by the numbers in their names"):
        found = find_checkpoints(tmp_path)
    assert [c.name for c in found] == ["model_9.pt", "model_10.pt", "model_100.pt"]
    assert {c.ordered_by for c in found} == {"name order"}
    explicit = [tmp_path / "model_100.pt", tmp_path / "model_9.pt", tmp_path / "model_10.pt"]
    with pytest.warns(PropgradWarning, match="taken in the order given"):
        given = find_checkpoints(explicit)
    assert [c.path for c in given] == explicit
    assert {c.ordered_by for c in given} == {"given order"}


def test_same_named_files_of_a_glob_are_in_natural_path_order_with_names_that_tell_them_apart(tmp_path):
    written = write_checkpoints(tmp_path, TinyNet, "hf-trainer", 11)
    with pytest.warns(PropgradWarning, match="ordered by the numbers in their names"):
        found = find_checkpoints(str(tmp_path / "checkpoint-*" / "model.safetensors"))
    assert [c.path.parent for c in found] == [w.path for w in written]  # checkpoint-1000 after checkpoint-900
    assert [c.name for c in found][8:] == [f"checkpoint-{s}/model.safetensors" for s in (900, 1000, 1100)]


def test_lightning_last_ckpt_copy_is_left_out_but_a_symlink_or_copy_is_never_counted_twice(tmp_path):
    written = write_checkpoints(tmp_path, TinyNet, "lightning", 3)
    shutil.copy(written[-1].path, tmp_path / "last.ckpt")
    (tmp_path / "best.ckpt").symlink_to(written[1].path.name)
    assert [c.path for c in find_checkpoints(tmp_path)] == [w.path for w in written]


def test_single_file_and_single_trainer_folder(tmp_path):
    written = write_checkpoints(tmp_path, TinyNet, "hf-trainer", 2)
    (only,) = find_checkpoints(written[1].path)
    assert (only.name, only.step, only.epoch) == ("checkpoint-200", 200, 2.0)
    files = write_checkpoints(tmp_path / "st", TinyNet, "safetensors", 2)
    (single,) = find_checkpoints(str(files[0].path))
    assert (single.kind, single.step) == ("safetensors", 100)


def test_trainer_output_folder_uses_its_checkpoint_folders_not_the_final_model(tmp_path):
    written = write_checkpoints(tmp_path, TinyNet, "hf-trainer", 2)
    save_file({k: v.contiguous() for k, v in TinyNet().state_dict().items()}, tmp_path / "model.safetensors")
    assert [c.path for c in find_checkpoints(tmp_path)] == [w.path for w in written]


def test_hidden_and_unrelated_files_are_ignored(tmp_path):
    written = write_checkpoints(tmp_path, TinyNet, "torch", 2)
    (tmp_path / ".ckpt_5.pt.abc.tmp").write_bytes(b"half written")  # an interrupted atomic save
    (tmp_path / "notes.txt").write_text("lr 0.01", encoding="utf-8")
    assert [c.path for c in find_checkpoints(tmp_path)] == [w.path for w in written]


# --- prefixes


def test_dataparallel_module_prefix_is_stripped(tmp_path):
    written = write_checkpoints(tmp_path, TinyNet, "dataparallel", 1)
    (checkpoint,) = find_checkpoints(tmp_path)
    state, _ = read_state_dict(checkpoint)
    assert all(k.startswith("module.") for k in state)  # as stored
    assert same_state(load_checkpoint(TinyNet(), checkpoint), written[0].state)


def test_lightning_attribute_prefix_is_stripped_whatever_the_attribute_name(tmp_path):
    saved = randomised(TinyNet, 7).state_dict()
    torch.save(lightning_checkpoint(saved, 0, 10, prefix="net."), tmp_path / "epoch=0-step=10.ckpt")
    (checkpoint,) = find_checkpoints(tmp_path)
    assert checkpoint.kind == "lightning"
    assert same_state(load_checkpoint(TinyNet(), checkpoint), saved)


def test_a_model_whose_own_keys_carry_the_prefix_keeps_it(tmp_path):
    """Stripping is model-aware: a model with a ``model.`` attribute loads Lightning keys as they are."""

    class Holder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = TinyNet()

    saved = randomised(TinyNet, 8).state_dict()
    torch.save(lightning_checkpoint(saved, 0, 10), tmp_path / "epoch=0-step=10.ckpt")
    holder = load_checkpoint(Holder(), find_checkpoints(tmp_path)[0])
    assert same_state(holder.model, saved)


def test_a_prefix_in_a_plain_torch_file_is_suggested_not_guessed(tmp_path):
    saved = TinyNet().state_dict()
    torch.save({"state_dict": {f"backbone.{k}": v for k, v in saved.items()}, "epoch": 1}, tmp_path / "a.pt")
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(TinyNet(), find_checkpoints(tmp_path)[0])
    message = str(caught.value)
    assert "\n" not in message
    assert f"{len(saved)} missing keys ('conv.bias', 'conv.weight', 'head.bias', ...)" in message
    assert f"{len(saved)} unexpected keys ('backbone.conv.bias'" in message
    assert "every checkpoint key starts with 'backbone.': strip that prefix" in message


# --- bad input: one-line CheckpointErrors


def assert_one_line(exc: BaseException, *fragments: str) -> None:
    text = str(exc)
    assert "\n" not in text, text
    assert isinstance(exc, PropgradError)
    for fragment in fragments:
        assert fragment in text, text


def test_folder_without_checkpoints_names_the_patterns(tmp_path):
    (tmp_path / "readme.txt").write_text("nothing here", encoding="utf-8")
    with pytest.raises(CheckpointError) as caught:
        find_checkpoints(tmp_path)
    assert_one_line(caught.value, "holds no checkpoints", "checkpoint-<step>/", "*.ckpt", "*.safetensors", "*.pt")


def test_glob_matching_nothing_and_a_missing_path(tmp_path):
    with pytest.raises(CheckpointError) as caught:
        find_checkpoints(str(tmp_path / "epoch=*.ckpt"))
    assert_one_line(caught.value, "matches no checkpoint file")
    with pytest.raises(InputFileError) as missing:
        find_checkpoints(tmp_path / "nowhere")
    assert_one_line(missing.value, "no such file or folder")


def test_repeated_epochs_name_both_files(tmp_path):
    write_checkpoints(tmp_path / "run", TinyNet, "torch", 3)
    shutil.copy(tmp_path / "run" / "ckpt_1.pt", tmp_path / "run" / "ckpt_1_again.pt")
    with pytest.raises(CheckpointError) as caught:
        find_checkpoints(tmp_path / "run")
    assert_one_line(
        caught.value, "'ckpt_1.pt' and 'ckpt_1_again.pt' both record epoch 1 and step 200", "one training run"
    )


def test_repeated_names_epochs_too(tmp_path):
    write_checkpoints(tmp_path / "a", TinyNet, "paper", 2)
    write_checkpoints(tmp_path / "b", TinyNet, "paper", 2)
    with pytest.raises(CheckpointError, match="'a/epoch_0.pt' and 'b/epoch_0.pt' both record epoch 0"):
        find_checkpoints([tmp_path / "a", tmp_path / "b"])


def test_only_some_checkpoints_recording_a_step_cannot_be_ordered(tmp_path):
    write_checkpoints(tmp_path, TinyNet, "torch", 2)
    torch.save(TinyNet().state_dict(), tmp_path / "final.pt")
    with pytest.raises(CheckpointError) as caught:
        find_checkpoints(tmp_path)
    assert_one_line(caught.value, "cannot be ordered", "'final.pt' records neither")


def test_a_folder_mixing_architectures_names_the_two_checkpoints(tmp_path):
    write_checkpoints(tmp_path, TinyNet, "safetensors", 2)
    write_checkpoints(tmp_path, lambda: TinyNet(width=6), "safetensors", [2])
    found = find_checkpoints(tmp_path)
    with pytest.raises(CheckpointError) as caught:
        check_same_architecture(found)
    assert_one_line(
        caught.value, "'step_100.safetensors' and 'step_300.safetensors' hold different architectures", "'conv.bias'"
    )
    check_same_architecture(found[:2])  # one architecture: fine


def test_mixed_architectures_with_other_keys(tmp_path):
    torch.save({"epoch": 0, "state_dict": TinyNet().state_dict()}, tmp_path / "a.pt")
    torch.save({"epoch": 1, "state_dict": nn.Linear(2, 2).state_dict()}, tmp_path / "b.pt")
    with pytest.raises(CheckpointError, match=r"'b.pt' lacks 9 of its keys .* and has 2 others \('bias', 'weight'\)"):
        check_same_architecture(find_checkpoints(tmp_path))


def test_a_checkpoint_of_another_shape_names_the_key_and_both_shapes(tmp_path):
    write_checkpoints(tmp_path, lambda: TinyNet(width=6), "torch", 1)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(TinyNet(width=4), find_checkpoints(tmp_path)[0])
    assert_one_line(caught.value, "'conv.bias' has shape (6,) in the checkpoint and (4,) in the model", "more keys")


class Evil:
    def __reduce__(self):
        return (os.system, ("echo this must never run > /dev/null",))


class Shout:
    """Unpickling this calls ``print``: harmless, but code the file names."""

    def __reduce__(self):
        return (print, ("UNPICKLING RAN CODE",))


@pytest.fixture
def bad_files(tmp_path):
    good = tmp_path / "good.pt"
    torch.save(TinyNet().state_dict(), good)
    files = {}
    files["truncated"] = tmp_path / "truncated.pt"
    files["truncated"].write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    files["empty"] = tmp_path / "empty.pt"
    files["empty"].write_bytes(b"")
    files["image"] = tmp_path / "photo.pt"
    files["image"].write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    files["plain"] = tmp_path / "plain.pt"
    files["plain"].write_bytes(pickle.dumps([1, 2, 3], protocol=4))
    files["zip"] = tmp_path / "other.pt"
    with zipfile.ZipFile(files["zip"], "w") as archive:
        archive.writestr("readme.txt", "not a checkpoint")
    files["list"] = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], files["list"])
    files["no state"] = tmp_path / "nostate.pt"
    torch.save({"epoch": 3, "lr": 0.1}, files["no state"])
    files["torchscript"] = tmp_path / "scripted.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated, its files are still around
        torch.jit.save(torch.jit.script(TinyNet()), files["torchscript"])
    files["safetensors"] = tmp_path / "cut.safetensors"
    save_file({"a": torch.zeros(10)}, tmp_path / "whole.safetensors")
    files["safetensors"].write_bytes((tmp_path / "whole.safetensors").read_bytes()[:20])
    files["empty safetensors"] = tmp_path / "empty.safetensors"
    files["empty safetensors"].write_bytes(b"")
    return files


@pytest.mark.parametrize(
    ("which", "fragments"),
    [
        ("truncated", ["truncated.pt' is not a PyTorch checkpoint: it is truncated or corrupted"]),
        ("empty", ["empty.pt' is not a PyTorch checkpoint: the file is empty"]),
        ("image", ["photo.pt' is not a PyTorch checkpoint: it is a PNG image"]),
        ("plain", ["plain.pt' is not a PyTorch checkpoint: it is a pickle that weights_only=True cannot read"]),
        ("zip", ["other.pt' is not a PyTorch checkpoint: it is a zip archive, but not one torch.save wrote"]),
        ("list", ["list.pt' holds a list, not a state dict"]),
        ("no state", ["nostate.pt' holds a dict with keys 'epoch', 'lr' but no state dict", "--load-func"]),
        ("torchscript", ["scripted.pt' is not a PyTorch checkpoint: it is a TorchScript model", "load_func"]),
        ("safetensors", ["cut.safetensors' is not a readable safetensors file"]),
        ("empty safetensors", ["empty.safetensors' is not a readable safetensors file: the file is empty"]),
    ],
)
def test_unreadable_files_are_one_line_errors_naming_the_file(bad_files, which, fragments):
    with pytest.raises(CheckpointError) as caught:
        find_checkpoints([bad_files[which]])
    assert_one_line(caught.value, *fragments)


def test_a_pickle_that_would_run_code_is_refused_and_names_the_trust_flag(tmp_path, capfd):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": TinyNet().state_dict(), "epoch": 0, "x": Evil()}, path)
    with pytest.raises(CheckpointError) as caught:
        find_checkpoints(path)
    assert_one_line(caught.value, "evil.pt' was refused", "system", "--trust-checkpoint", "trust=True")


def test_a_whole_pickled_model_needs_trust_and_then_loads(tmp_path):
    saved = randomised(TinyNet, 4)
    torch.save(saved, tmp_path / "whole.pt")
    with pytest.raises(CheckpointError) as caught:
        find_checkpoints(tmp_path / "whole.pt")
    assert_one_line(caught.value, "holds a pickled tests.track.checkpoint_files.TinyNet object", "--trust-checkpoint")
    (checkpoint,) = find_checkpoints(tmp_path / "whole.pt", trust=True)
    assert same_state(load_checkpoint(TinyNet(), checkpoint, trust=True), saved.state_dict())


def test_weights_are_read_without_running_code_the_file_names_and_trust_runs_it(tmp_path, capfd):
    saved = randomised(TinyNet, 5).state_dict()
    path = tmp_path / "shout.pt"
    torch.save({"state_dict": saved, "epoch": 2, "note": Shout()}, path)
    (checkpoint,) = find_checkpoints(path)
    state, metadata = read_state_dict(checkpoint)
    assert "UNPICKLING RAN CODE" not in capfd.readouterr().out
    assert metadata["opaque_objects"] == ["builtins.print"]
    assert same_state(load_checkpoint(TinyNet(), checkpoint), saved)
    load_checkpoint(TinyNet(), checkpoint, trust=True)
    assert "UNPICKLING RAN CODE" not in capfd.readouterr().out  # trust is a last resort, not needed here
    loaded, opaque = read_torch_file(path)
    assert isinstance(loaded["note"], OpaqueObject) and opaque == ("builtins.print",)


def test_lightning_file_refused_by_weights_only_is_read_safely(tmp_path):
    written = write_checkpoints(tmp_path, TinyNet, "lightning", 1)
    with pytest.raises(Exception, match="Weights only load failed"):
        torch.load(written[0].path, weights_only=True)  # what makes this format need care
    state, metadata = read_state_dict(find_checkpoints(tmp_path)[0])
    assert set(metadata["opaque_objects"]) == {
        "argparse.Namespace",
        "pathlib.PurePosixPath",
        "torch.nn.modules.loss.CrossEntropyLoss",
    }
    assert (metadata["epoch"], metadata["step"], metadata["pytorch-lightning_version"]) == (0, 100, "2.5.1")
    assert all(k.startswith("model.") for k in state)


def test_classes_of_libraries_that_are_not_installed_are_never_imported(tmp_path, monkeypatch):
    """A Lightning file names lightning's classes; reading it needs no lightning (nothing is imported)."""
    module = types.ModuleType("lightning_not_installed_callbacks")

    class EarlyStoppingState:
        def __init__(self) -> None:
            self.patience = 3

    EarlyStoppingState.__module__ = module.__name__
    EarlyStoppingState.__qualname__ = "EarlyStoppingState"
    module.EarlyStoppingState = EarlyStoppingState
    monkeypatch.setitem(sys.modules, module.__name__, module)
    saved = randomised(TinyNet, 6).state_dict()
    checkpoint = lightning_checkpoint(saved, 4, 50)
    checkpoint["callbacks"]["EarlyStopping"] = EarlyStoppingState()
    torch.save(checkpoint, tmp_path / "epoch=4-step=50.ckpt")
    monkeypatch.delitem(sys.modules, module.__name__)
    (found,) = find_checkpoints(tmp_path)
    assert same_state(load_checkpoint(TinyNet(), found), saved)
    assert module.__name__ not in sys.modules


def test_dict_and_list_subclasses_of_code_that_is_not_installed_become_plain_containers(tmp_path, monkeypatch):
    module = types.ModuleType("lightning_fabric_not_installed")

    class AttributeDict(dict):
        pass

    class Tags(list):
        pass

    for cls in (AttributeDict, Tags):
        cls.__module__, cls.__qualname__ = module.__name__, cls.__name__
        setattr(module, cls.__name__, cls)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    saved = randomised(TinyNet, 10).state_dict()
    checkpoint = lightning_checkpoint(saved, 1, 20)
    checkpoint["hyper_parameters"] = AttributeDict(lr=0.1, tags=Tags(["fur", "bias"]))
    torch.save(checkpoint, tmp_path / "epoch=1-step=20.ckpt")
    monkeypatch.delitem(sys.modules, module.__name__)
    with pytest.raises(Exception, match="Weights only load failed"):
        torch.load(tmp_path / "epoch=1-step=20.ckpt", weights_only=True)
    (found,) = find_checkpoints(tmp_path)
    state, metadata = read_state_dict(found)
    assert metadata["hyper_parameters"] == {"lr": 0.1, "tags": ["fur", "bias"]}
    assert same_state(load_checkpoint(TinyNet(), found), saved)


def test_trusting_a_pickle_of_code_that_is_not_installed_says_so(tmp_path, monkeypatch):
    module = types.ModuleType("research_code_not_installed")

    class Net(TinyNet):
        pass

    Net.__module__ = module.__name__
    Net.__qualname__ = "Net"
    module.Net = Net
    monkeypatch.setitem(sys.modules, module.__name__, module)
    torch.save({"model": Net(), "epoch": 1}, tmp_path / "net.pt")
    monkeypatch.delitem(sys.modules, module.__name__)
    with pytest.raises(CheckpointError) as refused:
        find_checkpoints(tmp_path)
    assert_one_line(refused.value, "holds a pickled research_code_not_installed.Net object", "--trust-checkpoint")
    with pytest.raises(CheckpointError) as caught:
        find_checkpoints(tmp_path, trust=True)
    assert_one_line(caught.value, "cannot be unpickled even when trusted: ModuleNotFoundError", "research_code")


def test_legacy_non_zip_torch_files_are_read_too(tmp_path, capfd):
    saved = randomised(TinyNet, 9).state_dict()
    torch.save(
        {"state_dict": saved, "args": argparse.Namespace(lr=0.1), "epoch": 3, "note": Shout()},
        tmp_path / "old.pt",
        _use_new_zipfile_serialization=False,
    )
    (checkpoint,) = find_checkpoints(tmp_path)
    assert checkpoint.epoch == 3
    assert same_state(load_checkpoint(TinyNet(), checkpoint), saved)
    assert read_state_dict(checkpoint)[1]["opaque_objects"] == ["argparse.Namespace", "builtins.print"]
    assert "UNPICKLING RAN CODE" not in capfd.readouterr().out


def test_trainer_folder_without_weights_or_with_a_broken_state(tmp_path):
    (tmp_path / "checkpoint-10").mkdir()
    (tmp_path / "checkpoint-10" / "optimizer.pt").write_bytes(b"")
    with pytest.raises(CheckpointError) as caught:
        find_checkpoints(tmp_path)
    assert_one_line(caught.value, "checkpoint-10' holds no model weights", "model.safetensors")
    write_checkpoints(tmp_path / "run", TinyNet, "hf-trainer", 1)
    (tmp_path / "run" / "checkpoint-100" / "trainer_state.json").write_text("{global_step: 1", encoding="utf-8")
    with pytest.raises(CheckpointError, match="trainer_state.json' is not valid JSON"):
        find_checkpoints(tmp_path / "run")


# --- load_func (TracInCP style) and check_fits


def test_load_func_replaces_all_loading_and_files_are_not_opened(tmp_path):
    for epoch in (2, 10, 1):
        (tmp_path / f"weights-epoch{epoch}.custom").write_text(str(epoch), encoding="utf-8")
    calls = []

    def load_func(model: nn.Module, path: Path) -> float:
        calls.append(path.name)
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.fill_(float(path.read_text(encoding="utf-8")))
        return 0.01  # TracInCP's load functions return the learning rate

    found = find_checkpoints(tmp_path, load_func=load_func)
    assert [c.name for c in found] == ["weights-epoch1.custom", "weights-epoch2.custom", "weights-epoch10.custom"]
    assert {c.kind for c in found} == {"custom"}
    model = TinyNet()
    assert load_checkpoint(model, found[2], load_func=load_func) is model
    assert calls == ["weights-epoch10.custom"]
    assert model.head.weight[0, 0].item() == 10.0
    check_same_architecture(found)  # nothing to compare: the load function's business
    with pytest.raises(CheckpointError, match="read by its load_func"):
        read_state_dict(found[0])


def test_a_model_that_is_no_module_needs_a_load_func(tmp_path):
    write_checkpoints(tmp_path, TinyNet, "torch", 1)
    with pytest.raises(CheckpointError, match="loads into an nn.Module, not a function; .* a load_func"):
        load_checkpoint(lambda images: images, find_checkpoints(tmp_path)[0])  # type: ignore[arg-type]


def test_safetensors_without_metadata_take_the_epoch_from_the_name(tmp_path):
    for epoch in (3, 12):
        state = randomised(TinyNet, epoch).state_dict()
        save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / f"weights_epoch-{epoch}.safetensors")
    found = find_checkpoints(tmp_path)
    assert [(c.epoch, c.step, c.ordered_by) for c in found] == [(3, None, "name"), (12, None, "name")]
    assert same_state(load_checkpoint(TinyNet(), found[1]), randomised(TinyNet, 12).state_dict())


def test_load_func_may_return_a_new_model(tmp_path):
    write_checkpoints(tmp_path, TinyNet, "torch", 1)
    replacement = TinyNet()
    assert load_checkpoint(TinyNet(), find_checkpoints(tmp_path)[0], load_func=lambda m, p: replacement) is replacement


def test_check_fits_accepts_a_fitting_state_and_counts_what_does_not(tmp_path):
    model = TinyNet()
    checkpoint = Checkpoint(tmp_path / "x.pt", "torch", 1, None, "x.pt")
    check_fits(model, model.state_dict(), checkpoint)
    state = dict(model.state_dict())
    del state["head.weight"]
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError) as caught:
        check_fits(model, state, checkpoint)
    assert_one_line(caught.value, "'x.pt' does not fit the model: 1 missing keys ('head.weight')", "1 unexpected keys")


def test_a_model_wrapper_prefix_is_suggested(tmp_path):
    class Wrapper(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = TinyNet()

    checkpoint = Checkpoint(tmp_path / "x.pt", "torch", 1, None, "x.pt")
    with pytest.raises(CheckpointError, match="every model key starts with 'inner.'.*load it into model.inner"):
        check_fits(Wrapper(), TinyNet().state_dict(), checkpoint)
