"""The ``propgrad explain`` command and model loading."""

from __future__ import annotations

import json

import pytest
import torch

from propgrad.cli import main
from propgrad.cli.explain import parse_params
from propgrad.cli.model_loading import load_model
from propgrad.errors import PropgradError
from propgrad.example_model import ColourBalanceNet


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
        (ValueError("first line\n  second line"), "first line second line"),
        (FileNotFoundError("no such file: x.png"), "no such file: x.png"),
        (LookupError("unknown source 'x'"), "unknown source 'x'"),
        (TypeError("steps must be an int"), "steps must be an int"),
        (SettingsError("--out is not writable\n(read-only)"), "--out is not writable (read-only)"),
    ],
)
def test_user_errors_print_one_line_without_traceback(monkeypatch, capsys, exc, message):
    _command_raising(monkeypatch, exc)
    assert main(["plugins"]) == 2
    assert capsys.readouterr().err == f"propgrad plugins: error: {message}\n"


def test_debug_flag_adds_the_traceback_to_a_user_error(monkeypatch, capsys):
    _command_raising(monkeypatch, ValueError("bad --param"))
    for argv in (["--debug", "plugins"], ["plugins", "--debug"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("Traceback (most recent call last):") and "ValueError: bad --param" in err
        assert err.splitlines()[-1] == "propgrad plugins: error: bad --param"


def test_unexpected_exceptions_are_bugs_and_keep_their_traceback(monkeypatch, capsys):
    _command_raising(monkeypatch, RuntimeError("internal invariant broken"))
    with pytest.raises(RuntimeError, match="internal invariant broken"):  # not reported as a user error
        main(["plugins"])
    assert "error:" not in capsys.readouterr().err
