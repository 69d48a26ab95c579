"""The ``propgrad explain`` command and model loading."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys

import pytest
import torch

from propgrad.cli import main
from propgrad.cli.explain import parse_params
from propgrad.cli.model_loading import load_model
from propgrad.errors import (
    InputFileError,
    InvalidParameterError,
    ModelOutputError,
    ParameterTypeError,
    PropgradError,
)
from propgrad.example_model import ColourBalanceNet
from propgrad.plugins import UnknownNameError


def test_explain_on_the_bundled_example_prints_and_saves(tmp_path, capsys):
    code = main(
        [
            "explain",
            "--permutations",
            "300",
            "--size",
            "48",
            "--no-progress",
            "--param",
            "scale=0.5",
            "--param",
            "steps=11",
            "--out",
            str(tmp_path),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "alpha_patch" in out and "warm" in out and "p =" in out and "decision flips" in out
    record = json.loads((tmp_path / "explanation.json").read_text())
    assert len(record["values"]) == 11 and record["labels"] == ["warm", "cool"]
    # by default the size-aware verdict comes first, with the practical size and the one-line reading
    assert record["placebo"] is not None and record["verdict"] is not None and record["reading"]
    assert record["reading"] in out and "placebo test" in out and "permutation test" in out
    assert "largest change" in out
    assert (tmp_path / "explanation.png").stat().st_size > 0
    assert (tmp_path / "explanation_filmstrip.png").stat().st_size > 0


def test_explain_with_torchscript_model_and_vignette(tmp_path, capsys):
    scripted = torch.jit.script(ColourBalanceNet())
    path = tmp_path / "model.pt"
    scripted.save(str(path))
    code = main(
        [
            "explain",
            "--model",
            str(path),
            "--source",
            "gaussian_vignette",
            "--size",
            "32",
            "--permutations",
            "100",
            "--target",
            "1",
            "--no-progress",
        ]
    )
    assert code == 0
    assert "gaussian_vignette" in capsys.readouterr().out


def test_weights_load_with_weights_only(tmp_path):
    model = ColourBalanceNet()
    with torch.no_grad():
        model.head.bias.fill_(3.0)
    torch.save(model.state_dict(), tmp_path / "w.pt")
    loaded = load_model("propgrad.example_model:ColourBalanceNet", tmp_path / "w.pt")
    assert torch.equal(loaded.head.bias, torch.full((2,), 3.0))
    torch.save({"not": "matching"}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="does not fit the model"):
        load_model("propgrad.example_model:ColourBalanceNet", tmp_path / "bad.pt")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model", "no_such_module_xyz:f"], "cannot import module"),
        (["--model", "propgrad.example_model:nothing"], "has no attribute 'nothing'"),
        (["--model", "missing_model.pt"], "no such TorchScript file"),
        (["--image", "/no/such/image.png"], "image.png"),
        (["--source", "gausian_vignette"], "gaussian_vignette"),
        (["--param", "steps"], "KEY=VALUE"),
        (["--param", "steps=1"], "steps"),
        (["--target", "7"], "target 7 is out of range"),
    ],
)
def test_bad_arguments_give_clean_errors(argv, message, capsys):
    code = main(["explain", "--permutations", "10", "--size", "16", "--no-progress", *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err


def test_param_values_are_python_literals():
    assert parse_params(["steps=5", "position=(1, 2)", "name=duck", "scale=0.5"]) == {
        "steps": 5,
        "position": (1, 2),
        "name": "duck",
        "scale": 0.5,
    }


def test_summary_prints_tiny_scores_with_significant_digits():
    """A tiny score (here about 5e-08) must not print as 0.00000 next to its p-value (`propgrad explain`)."""
    import propgrad

    def tiny_model(x):
        return 1e-6 * x.mean(dim=(1, 2, 3))[:, None]  # outputs change by ~1e-7 per step

    image = torch.full((3, 16, 16), 0.8)
    explanation = propgrad.PropertyGradient(tiny_model, output_transform="none").attribute(
        image, source="gaussian_vignette", n_permutations=200, source_params={"steps": 8}
    )
    score = float(explanation.score.reshape(-1)[0])
    assert 1e-9 < score < 1e-5
    text = explanation.summary(["dim"])
    assert f"E|grad| = {score:.4g} per step" in text
    assert "E|grad| = 0.00000" not in text and "e-0" in text


def _command_raising(monkeypatch, exc):
    """Make `propgrad plugins` raise ``exc`` (the parser is built per call, so it picks this up)."""
    import propgrad.cli.plugins

    def run(args):
        raise exc

    monkeypatch.setattr(propgrad.cli.plugins, "run", run)


class SettingsError(PropgradError):
    """A user error of a kind the CLI does not list: recognised through the PropgradError base."""


@pytest.mark.parametrize(
    ("exc", "message"),
    [
        (InvalidParameterError("first line\n  second line"), "first line second line"),
        (ParameterTypeError("steps must be an int"), "steps must be an int"),
        (InputFileError("no such file: x.png"), "no such file: x.png"),
        (UnknownNameError("unknown source 'x'"), "unknown source 'x'"),
        (ModelOutputError("the model returned NaN"), "the model returned NaN"),
        (SettingsError("--out is not writable\n(read-only)"), "--out is not writable (read-only)"),
    ],
)
def test_user_errors_print_one_line_without_traceback(monkeypatch, capsys, exc, message):
    _command_raising(monkeypatch, exc)
    assert main(["plugins"]) == 2
    assert capsys.readouterr().err == f"propgrad plugins: error: {message}\n"


def test_debug_flag_adds_the_traceback_to_a_user_error(monkeypatch, capsys):
    _command_raising(monkeypatch, InvalidParameterError("bad --param"))
    for argv in (["--debug", "plugins"], ["plugins", "--debug"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("Traceback (most recent call last):") and "InvalidParameterError: bad --param" in err
        assert err.splitlines()[-1] == "propgrad plugins: error: bad --param"


@pytest.mark.parametrize(
    "exc",
    [
        RuntimeError("internal invariant broken"),
        ValueError("operands could not be broadcast together"),  # plain: raised by a bug, not by a check
        TypeError("unsupported operand type(s)"),
        KeyError("missing"),
        FileNotFoundError("cache/model.pt"),
    ],
)
def test_unexpected_exceptions_are_bugs_and_keep_their_traceback(monkeypatch, capsys, exc):
    _command_raising(monkeypatch, exc)
    with pytest.raises(type(exc)):  # not reported as a user error: Python prints its traceback
        main(["plugins"])
    assert "error:" not in capsys.readouterr().err


BUGGY_MODEL = """
from torch import nn


class Buggy(nn.Module):
    def forward(self, x):
        raise ValueError("a bug inside forward: shapes (3,) and (4,) do not match")


def build():
    return Buggy()
"""


def test_a_value_error_from_a_bug_in_the_models_forward_shows_its_traceback(tmp_path):
    (tmp_path / "buggy_model_module.py").write_text(BUGGY_MODEL)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    argv = ["explain", "--model", "buggy_model_module:build", "--permutations", "10", "--size", "16", "--no-progress"]
    out = subprocess.run(
        [sys.executable, "-c", "import sys; from propgrad.cli import main; sys.exit(main())", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 1, out.stderr
    assert "Traceback (most recent call last):" in out.stderr and 'buggy_model_module.py", line 7' in out.stderr
    assert out.stderr.rstrip().endswith("ValueError: a bug inside forward: shapes (3,) and (4,) do not match")
    assert "error:" not in out.stderr


def test_the_command_line_freezes_the_garbage_collector_and_a_call_from_python_does_not(capsys):
    before = gc.get_freeze_count()
    assert main(["plugins"]) == 0
    assert gc.get_freeze_count() == before
    code = "import gc, sys; from propgrad.cli import main; code = main(); print(gc.get_freeze_count()); sys.exit(code)"
    out = subprocess.run([sys.executable, "-c", code, "plugins"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.split()[-1]) > 50_000  # torch's and propgrad's modules, imported by the parser


@pytest.mark.parametrize(("param", "fragment"), [("steps", "KEY=VALUE"), ("steps=1", "steps"), ("nosuch=1", "nosuch")])
def test_a_bad_param_is_still_one_line(param, fragment, capsys):
    assert main(["explain", "--permutations", "10", "--size", "16", "--no-progress", "--param", param]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("propgrad explain: error: ") and fragment in line
