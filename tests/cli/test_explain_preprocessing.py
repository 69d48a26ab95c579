"""Fixed-size models in ``propgrad explain``: ``--crop``, ``--normalize`` and a Hugging Face model's image processor.

The resize and the centre crop prepare the [0, 1] image the source intervenes on (so it intervenes
on what the model sees); the normalisation is the model's ``preprocess``, applied after the
intervention. A ``--model hf:PATH`` (``AutoModelForImageClassification``) brings its image
processor's resize, crop, mean and std. The Hugging Face models here are tiny ViTs with random
weights saved to a temporary folder: nothing is downloaded.
"""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import propgrad.cli.model_loading
import propgrad.explain.explainer
from propgrad.cli import main
from propgrad.cli.explain import parse_normalize
from propgrad.cli.model_loading import HfImageClassifier, ImagePreparation, load_model
from propgrad.core.images import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Normalize,
    center_crop,
    example_image,
    resize,
    resize_shorter_side,
)
from propgrad.errors import InputFileError, InvalidParameterError

QUICK = ["explain", "--test", "permutation", "--permutations", "50", "--no-progress", "--param", "steps=5"]
MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
NORMALIZE = "0.5,0.4,0.3/0.2,0.25,0.3"


class Recorder(nn.Module):
    """A two-output model that keeps every batch it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(5.0))
        self.inputs: list[torch.Tensor] = []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.inputs.append(images.detach().clone())
        m = images.mean(dim=(2, 3))
        return self.scale * torch.stack([m[:, 0] - m[:, 2], m[:, 2] - m[:, 0]], dim=1)


@pytest.fixture
def recorder(monkeypatch) -> Recorder:
    model = Recorder()
    monkeypatch.setattr(propgrad.cli.model_loading, "load_model", lambda *args, **kwargs: model)
    return model


@pytest.fixture
def explanations(monkeypatch) -> list:
    """Every Explanation ``attribute`` returned during the test."""
    returned: list = []
    original = propgrad.explain.explainer.PropertyGradient.attribute

    def spied(self, *args, **kwargs):
        returned.append(original(self, *args, **kwargs))
        return returned[-1]

    monkeypatch.setattr(propgrad.explain.explainer.PropertyGradient, "attribute", spied)
    return returned


def chelsea(size: int) -> torch.Tensor:
    return resize_shorter_side(example_image("chelsea"), size)


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main([*QUICK, *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2
    (line,) = [line for line in err.splitlines() if line.strip()]
    assert line.startswith("propgrad explain: error: ")
    for fragment in fragments:
        assert fragment in line, line


# --- the image helpers ---------------------------------------------------------------------------


def test_center_crop_takes_the_centre_rounding_the_offsets_down():
    image = torch.arange(2 * 6 * 9, dtype=torch.float32).reshape(2, 6, 9)
    assert torch.equal(center_crop(image, (3, 4)), image[:, 1:4, 2:6])  # offsets 3 // 2 and 5 // 2
    assert torch.equal(center_crop(image[None], 6), image[None, :, :, 1:7])
    assert center_crop(image, (6, 9)) is not None and torch.equal(center_crop(image, (6, 9)), image)


@pytest.mark.parametrize(
    ("size", "fragment"),
    [(7, "a 7 x 7 crop does not fit in the image of 6 x 9 pixels"), (0, "positive"), ((3, -1), "positive")],
)
def test_center_crop_refuses_crops_that_do_not_fit(size, fragment):
    with pytest.raises(InvalidParameterError, match=fragment):
        center_crop(torch.zeros(3, 6, 9), size, name="--crop 7")


def test_resize_shorter_side_keeps_the_aspect_ratio():
    assert resize_shorter_side(torch.rand(3, 300, 451), 40).shape == (3, 40, 60)
    assert resize_shorter_side(torch.rand(1, 3, 90, 30), 10).shape == (1, 3, 30, 10)
    with pytest.raises(InvalidParameterError, match="size must be a positive integer"):
        resize_shorter_side(torch.rand(3, 8, 8), 0)


def test_normalize_is_the_per_channel_affine_map():
    images = torch.rand(4, 3, 5, 7, dtype=torch.float64)
    out = Normalize(MEAN, STD)(images)
    expected = (images - torch.tensor(MEAN, dtype=torch.float64)[:, None, None]) / torch.tensor(
        STD, dtype=torch.float64
    )[:, None, None]
    assert out.dtype == torch.float64 and torch.allclose(out, expected)
    assert torch.allclose(Normalize(MEAN, STD)(images[0]), expected[0])


@pytest.mark.parametrize(
    ("mean", "std", "fragment"),
    [
        ((0.5, 0.5), STD, "mean must hold 3 finite numbers (one per RGB channel), got 2 values"),
        (MEAN, (0.2, 0.0, 0.3), "std must hold 3 positive numbers"),
        (MEAN, (0.2, -1.0, 0.3), "std must hold 3 positive numbers"),
        ((0.5, float("nan"), 0.5), STD, "mean must hold 3 finite numbers"),
        ("0.5", STD, "mean must hold 3 numbers"),
    ],
)
def test_normalize_refuses_bad_mean_and_std(mean, std, fragment):
    with pytest.raises(InvalidParameterError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        Normalize(mean, std)


def test_parse_normalize_reads_the_three_forms():
    mean, std = parse_normalize(NORMALIZE)
    assert mean == pytest.approx(MEAN) and std == pytest.approx(STD)
    assert parse_normalize(" ImageNet ") == (IMAGENET_MEAN, IMAGENET_STD)
    assert parse_normalize("none") == (None, None)


# --- --normalize and --crop in the command -------------------------------------------------------


def test_normalize_is_applied_inside_preprocess_after_the_intervention(recorder, explanations, capsys):
    code, _, err = run(["--size", "24", "--normalize", NORMALIZE, "--labels", "a,b"], capsys)
    assert code == 0, err
    manual = Normalize(MEAN, STD)
    # the first forward pass (checking --labels) sees the prepared image, normalised
    assert torch.allclose(recorder.inputs[0], manual(chelsea(24)[None]), atol=1e-6)
    (explanation,) = explanations
    frames = explanation.images  # the source intervened on [0, 1] images ...
    assert float(frames.min()) >= 0 and float(frames.max()) <= 1
    seen = torch.cat(recorder.inputs[1:]).flatten(1)  # ... and the model saw each of them normalised
    distance = torch.cdist(manual(frames).flatten(1).double(), seen.double())
    assert float(distance.min(dim=1).values.max()) < 1e-4


def test_the_reports_attribution_maps_see_the_normalised_model(recorder, monkeypatch, tmp_path, capsys):
    """The baselines attribute [0, 1] images, so the report's model is the normalisation followed by the model."""
    import propgrad.cli.explain_report

    given = {}

    def capture(out_dir, explanation, **kwargs):
        given.update(kwargs)
        return []

    monkeypatch.setattr(propgrad.cli.explain_report, "write_explain_report", capture)
    code, _, err = run(["--size", "24", "--normalize", NORMALIZE, "--out", str(tmp_path)], capsys)
    assert code == 0, err
    images = torch.rand(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(given["model"](images), recorder(Normalize(MEAN, STD)(images)))
    assert given["settings"]["image_preparation"]["mean"] == pytest.approx(list(MEAN))


def test_crop_after_size_is_the_usual_resize_then_centre_crop(recorder, explanations, capsys):
    code, _, err = run(["--size", "40", "--crop", "32", "--labels", "a,b"], capsys)
    assert code == 0, err
    expected = chelsea(40)[:, 4:36, 14:46]  # 40 x 60 -> the centre 32 x 32
    assert torch.allclose(recorder.inputs[0][0], expected)
    assert explanations[0].images.shape[-2:] == (32, 32)


def test_crop_alone_crops_the_default_resize(recorder, explanations, capsys):
    assert run(["--crop", "100"], capsys)[0] == 0
    assert explanations[0].images.shape[-2:] == (100, 100)


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["--size", "24", "--crop", "30"], ["--crop 30: a 30 x 30 crop does not fit in the image of 24 x 36 pixels"]),
        (["--crop", "-1"], ["--crop must be a positive number of pixels or 0 for none, got -1"]),
        (["--size", "-2"], ["--size must be a positive number of pixels or 0 for none, got -2"]),
        (["--normalize", "0.5,0.5,0.5"], ["--normalize '0.5,0.5,0.5': expected MEAN,MEAN,MEAN/STD,STD,STD"]),
        (["--normalize", "0.5,0.5/0.2,0.2,0.2"], ["mean must hold 3 finite numbers", "got 2 values"]),
        (["--normalize", "0.5,0.5,0.5/0.2,0.2,0.2,0.2"], ["std must hold 3 finite numbers", "got 4 values"]),
        (["--normalize", "0.5,0.5,0.5/0.2,0,0.2"], ["std must hold 3 positive numbers"]),
        (["--normalize", "0.5,x,0.5/0.2,0.2,0.2"], ["'x' is not a number"]),
        (
            ["--normalize", "a/b/c"],
            ["--normalize 'a/b/c': expected MEAN,MEAN,MEAN/STD,STD,STD", "'imagenet' or 'none'"],
        ),
        (["--model", "clip:some/model", "--normalize", "imagenet"], ["--normalize does not apply to --model 'clip:"]),
    ],
)
def test_bad_image_options_are_one_line_errors(argv, fragments, capsys):
    code, _, err = run(argv, capsys)
    assert_one_line_error(code, err, *fragments)


def test_image_options_are_checked_before_the_model_loads(monkeypatch, capsys):
    def no_model(*args, **kwargs):
        raise AssertionError("the model loaded before --normalize was checked")

    monkeypatch.setattr(propgrad.cli.model_loading, "load_model", no_model)
    code, _, err = run(["--normalize", "1,2,3/0,1,1"], capsys)
    assert_one_line_error(code, err, "std must hold 3 positive numbers")


# --- a Hugging Face image classifier and its processor -------------------------------------------


def _tiny_vit(folder, processor) -> None:
    transformers = pytest.importorskip("transformers")
    config = transformers.ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=3,
        id2label={0: "cat", 1: "dog", 2: "fox"},
        label2id={"cat": 0, "dog": 1, "fox": 2},
    )
    torch.manual_seed(0)
    transformers.ViTForImageClassification(config).save_pretrained(folder)
    if processor is not None:
        processor.save_pretrained(folder)


@pytest.fixture(scope="module")
def hf_models(tmp_path_factory) -> dict:
    """Tiny ViTs (32 x 32 inputs, 3 classes): a ViT processor (resize to 32 x 32), a CLIP-style one (shorter
    side 40, centre crop 32) and none."""
    transformers = pytest.importorskip("transformers")
    base = tmp_path_factory.mktemp("hf")
    processors = {
        "vit": transformers.ViTImageProcessor(size={"height": 32, "width": 32}, image_mean=MEAN, image_std=STD),
        "crop": transformers.CLIPImageProcessor(
            size={"shortest_edge": 40}, crop_size={"height": 32, "width": 32}, image_mean=MEAN, image_std=STD
        ),
        "bare": None,
    }
    for name, processor in processors.items():
        _tiny_vit(base / name, processor)
    return {name: base / name for name in processors}


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def test_a_vit_reads_its_processor_and_explains_a_non_square_image(hf_models, offline, explanations, tmp_path, capsys):
    argv = ["--model", f"hf:{hf_models['vit']}", "--image", "skimage:chelsea", "--out", str(tmp_path)]
    code, out, err = run([*argv, "--report-baselines", "none"], capsys)
    assert code == 0, err
    assert "cat" in out and "dog" in out and "fox" in out  # the config's id2label name the columns
    record = json.loads((tmp_path / "explanation.json").read_text())
    assert record["labels"] == ["cat", "dog", "fox"]
    assert record["settings"]["image_preparation"] == {
        "resize": [32, 32],
        "crop": None,
        "mean": pytest.approx(list(MEAN)),
        "std": pytest.approx(list(STD)),
    }
    (explanation,) = explanations
    assert explanation.images.shape[-2:] == (32, 32)  # the 300 x 451 photograph, resized as the processor does
    model = load_model(f"hf:{hf_models['vit']}")  # the same weights: the model saw each frame normalised
    with torch.no_grad():
        manual = torch.softmax(model(Normalize(MEAN, STD)(explanation.images)), dim=1)
    assert torch.allclose(explanation.outputs, manual, atol=1e-5)


def test_the_processors_normalisation_matches_hugging_faces_own(hf_models, offline):
    transformers = pytest.importorskip("transformers")
    model = load_model(f"hf:{hf_models['vit']}")
    assert isinstance(model, HfImageClassifier)
    prep = model.image_preparation
    assert prep == ImagePreparation(size=(32, 32), crop=None, mean=pytest.approx(MEAN), std=pytest.approx(STD))
    image = resize(example_image("chelsea"), (32, 32))
    processor = transformers.AutoImageProcessor.from_pretrained(hf_models["vit"])
    theirs = processor(
        images=image.permute(1, 2, 0).numpy(), do_resize=False, do_rescale=False, return_tensors="pt"
    ).pixel_values
    ours = Normalize(prep.mean, prep.std)(image[None])
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert model(ours).shape == (1, 3) and model.labels == ["cat", "dog", "fox"]


def test_a_processor_with_a_centre_crop_resizes_the_shorter_side_then_crops(hf_models, offline, explanations, capsys):
    code, _, err = run(["--model", f"hf:{hf_models['crop']}"], capsys)
    assert code == 0, err
    (explanation,) = explanations
    expected = chelsea(40)[:, 4:36, 14:46]
    assert torch.allclose(explanation.images[0], expected, atol=1e-6)  # alpha 0: the prepared image itself


def test_options_override_the_processor(hf_models, offline, explanations, capsys):
    code, _, err = run(["--model", f"hf:{hf_models['vit']}", "--size", "36", "--crop", "32"], capsys)
    assert code == 0, err
    assert torch.allclose(explanations[0].images[0], center_crop(chelsea(36), 32), atol=1e-6)


def test_a_model_without_a_processor_warns_and_takes_the_options(hf_models, offline, explanations, capsys):
    argv = ["--model", f"hf:{hf_models['bare']}", "--size", "32", "--crop", "32", "--normalize", "imagenet"]
    code, _, err = run(argv, capsys)
    assert code == 0, err
    assert "propgrad: warning: --model 'hf:" in err and "has no image processor" in err and "--normalize" in err
    assert explanations[0].images.shape[-2:] == (32, 32)


@pytest.mark.parametrize(
    ("spec", "error", "fragment"),
    [
        ("hf:", InvalidParameterError, "needs a folder or Hugging Face id after 'hf:'"),
        ("hf:/no/such/folder", InputFileError, "no such folder"),
    ],
)
def test_bad_hf_specs_are_named(spec, error, fragment):
    with pytest.raises(error, match=fragment):
        load_model(spec)


def test_hf_refuses_weights_and_a_folder_that_is_no_classifier(hf_models, tmp_path, offline):
    with pytest.raises(InvalidParameterError, match="--weights does not apply to --model hf:"):
        load_model(f"hf:{hf_models['vit']}", weights=tmp_path / "w.pt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidParameterError, match="cannot load a Hugging Face image classifier"):
        load_model(f"hf:{tmp_path / 'empty'}")


def test_labels_need_every_column_in_id2label():
    class Config:
        id2label = {0: "a", 2: "c"}

    class Model(nn.Module):
        config = Config()

    assert HfImageClassifier(Model()).labels is None
    Config.id2label = {1: "b", 0: "a"}
    assert HfImageClassifier(Model()).labels == ["a", "b"]
