"""The ``propgrad explain`` command and model loading."""

from __future__ import annotations

import json

import pytest
import torch

from propgrad.cli import main
from propgrad.cli.explain import parse_params
from propgrad.cli.model_loading import load_model
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
