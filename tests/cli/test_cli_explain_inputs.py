"""``propgrad explain`` with bad inputs: each is one line, ``propgrad explain: error: ...``, exit code 2."""

from __future__ import annotations

import os
import pickle
import zipfile

import numpy as np
import pytest
import torch

from propgrad.cli import main
from propgrad.cli.explain import check_labels
from propgrad.cli.model_loading import load_model, read_checkpoint
from propgrad.example_model import ColourBalanceNet

QUICK = ["explain", "--permutations", "10", "--size", "16", "--no-progress"]


def run_explain(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main([*QUICK, *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("propgrad explain: error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


class Evil:
    def __reduce__(self):
        return (os.system, ("echo this must never run",))


@pytest.fixture
def checkpoints(tmp_path):
    good = tmp_path / "good.pt"
    torch.save(ColourBalanceNet().state_dict(), good)
    files = {"good": good}
    files["evil"] = tmp_path / "evil.pt"
    torch.save({"weights": Evil()}, files["evil"])
    files["truncated"] = tmp_path / "truncated.pt"
    files["truncated"].write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    files["png"] = tmp_path / "photo.png"
    from PIL import Image

    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(files["png"])
    files["empty"] = tmp_path / "empty.pt"
    files["empty"].write_bytes(b"")
    files["plain_pickle"] = tmp_path / "plain.pkl"
    files["plain_pickle"].write_bytes(pickle.dumps([1, 2, 3], protocol=4))
    files["list"] = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], files["list"])
    files["zip"] = tmp_path / "other.zip"
    with zipfile.ZipFile(files["zip"], "w") as archive:
        archive.writestr("readme.txt", "not a checkpoint")
    return files


@pytest.mark.parametrize(
    ("which", "fragments"),
    [
        ("evil", ["evil.pt' was refused: loading it would import", "system", "weights_only=True"]),
        ("truncated", ["truncated.pt' is not a PyTorch checkpoint: it is truncated or corrupted"]),
        ("png", ["photo.png' is not a PyTorch checkpoint: it is a PNG image"]),
        ("empty", ["empty.pt' is not a PyTorch checkpoint: the file is empty"]),
        ("plain_pickle", ["plain.pkl' is not a PyTorch checkpoint"]),
        ("list", ["list.pt' holds a list, not a state dict"]),
        ("zip", ["other.zip' is not a PyTorch checkpoint"]),
    ],
)
def test_weights_that_are_no_loadable_state_dict_are_one_line_errors_naming_the_file(
    checkpoints, which, fragments, capsys
):
    code, out, err = run_explain(["--weights", str(checkpoints[which])], capsys)
    assert_one_line_error(code, err, "--weights '", *fragments)
    assert "this must never run" not in out


def test_read_checkpoint_raises_value_errors_and_loads_good_files(checkpoints):
    for which in ("evil", "truncated", "png", "empty", "plain_pickle", "zip"):
        with pytest.raises(ValueError, match=str(checkpoints[which].name)):
            read_checkpoint(checkpoints[which])
    state = read_checkpoint(checkpoints["good"])
    assert set(state) == set(ColourBalanceNet().state_dict())


def test_a_folder_as_weights_is_named(tmp_path):
    with pytest.raises(ValueError, match="is a folder"):
        load_model("propgrad.example_model:ColourBalanceNet", tmp_path)


@pytest.mark.parametrize(
    ("labels", "fragments"),
    [
        ("warm", ["--labels gives 1 label (warm) but the model has 2 outputs"]),
        ("a,b,c", ["--labels gives 3 labels (a,b,c) but the model has 2 outputs"]),
        ("warm,", ["--labels has an empty name at position 2"]),
    ],
)
def test_labels_must_name_each_output_once(labels, fragments, capsys):
    code, _, err = run_explain(["--labels", labels], capsys)
    assert_one_line_error(code, err, *fragments)


def test_labels_matching_the_outputs_are_used(capsys):
    code, out, _ = run_explain(["--labels", "hot, cold"], capsys)
    assert code == 0 and "hot" in out and "cold" in out
    assert check_labels(["a", "b"], 2) == ["a", "b"]


@pytest.mark.parametrize(
    ("device", "fragments"),
    [
        ("bogus", ["--device must be one of the available devices ('cpu'", "got 'bogus'"]),
        pytest.param(
            "cuda",
            ["--device 'cuda' is not available", "available devices: 'cpu'"],
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA"),
        ),
        pytest.param(
            "cuda:3",
            ["--device 'cuda:3' is not available"],
            marks=pytest.mark.skipif(torch.cuda.device_count() > 3, reason="needs fewer than 4 GPUs"),
        ),
        ("mps:nope", ["--device must be one of the available devices"]),
    ],
)
def test_devices_that_do_not_exist_are_one_line_errors(device, fragments, capsys):
    code, _, err = run_explain(["--device", device], capsys)
    assert_one_line_error(code, err, *fragments)


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["--seed", "-1"], ["seed must be an integer in [0, 2**63 - 1]"]),
        (["--alpha", "1.5"], ["alpha must be a number in (0, 1), got 1.5"]),
        (["--permutations", "1000000000000"], ["n_permutations must be an integer in [1, 10000000]"]),
        (["--param", "steps=1000000000"], ["steps must be an integer in [2, 10000]"]),
    ],
)
def test_bad_settings_are_one_line_errors(argv, fragments, capsys):
    code, _, err = run_explain(argv, capsys)
    assert_one_line_error(code, err, *fragments)


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["--report-baselines", "nosuch"], ["--report-baselines nosuch needs --out FOLDER", "report.html"]),
        (["--report-baselines", "occlusion"], ["--report-baselines occlusion needs --out"]),
        (["--report-baselines", "nosuch", "--out", "OUT"], ["unknown baseline 'nosuch'", "Available baselines"]),
        (["--report-baselines", "none", "occlusion", "--out", "OUT"], ["'none' cannot be combined"]),
    ],
)
def test_report_baselines_are_checked_before_any_work(argv, fragments, capsys, tmp_path, monkeypatch):
    """Without --out no report is written, so --report-baselines would be ignored without a word."""
    import propgrad.explain.explainer

    def no_test(*args, **kwargs):
        raise AssertionError("the explanation ran before --report-baselines was checked")

    monkeypatch.setattr(propgrad.explain.explainer.PropertyGradient, "attribute", no_test)
    argv = [str(tmp_path / "out") if a == "OUT" else a for a in argv]
    code, _, err = run_explain(argv, capsys)
    assert_one_line_error(code, err, *fragments)
    assert not (tmp_path / "out").exists()
