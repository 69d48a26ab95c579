"""Zero-shot models with several descriptors per class: the forward wrapper, per-class aggregation, plots, CLI.

Fakes with answers known by arithmetic: the image encoder is the mean colour of the image (an
embedding in R^3), the text encoder a fixed table of vectors, so every cosine similarity is a
numpy one-liner. The Hugging Face path uses a tiny ``CLIPModel`` with random weights built
offline by :func:`propgrad.testing.tiny_clip`.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

import propgrad
from propgrad.core.atomic_files import write_json
from propgrad.core.plotting import curve_extrema, format_angle_axis
from propgrad.errors import InvalidParameterError
from propgrad.explain.zero_shot import (
    ClassGrouping,
    ClipPreprocess,
    ZeroShotClassifier,
    check_descriptors,
    embeddings_of,
    load_descriptors,
)
from propgrad.sources.base import InterventionSequence, InterventionSource
from propgrad.testing import tiny_clip

DESCRIPTORS = {
    "red thing": ["red", "crimson", "scarlet"],
    "green thing": ["green", "lime", "olive"],
    "blue thing": ["blue", "navy", "azure"],
}


def text_vector(text: str) -> np.ndarray:
    """A fixed vector in R^3 per text: the class's colour axis plus a small text-specific tilt."""
    base = {"red": 0, "crimson": 0, "scarlet": 0, "green": 1, "lime": 1, "olive": 1, "blue": 2, "navy": 2}
    axis = np.zeros(3)
    axis[base.get(text, 2)] = 1.0
    rng = np.random.default_rng(sum(map(ord, text)))
    return axis + 0.3 * rng.standard_normal(3)


def encode_text(texts: list[str]) -> torch.Tensor:
    return torch.tensor(np.stack([text_vector(t) for t in texts]), dtype=torch.float32)


def mean_colour(images: torch.Tensor) -> torch.Tensor:
    return images.mean(dim=(2, 3))


def numpy_cosine(images: torch.Tensor, texts: list[str]) -> np.ndarray:
    img = images.double().mean(dim=(2, 3)).numpy()
    txt = np.stack([text_vector(t) for t in texts])
    img = img / np.linalg.norm(img, axis=1, keepdims=True)
    txt = txt / np.linalg.norm(txt, axis=1, keepdims=True)
    return img @ txt.T


class Rotate(InterventionSource):
    """Rotates an image in plane over a full turn (periodic, degrees), with torch's affine grid."""

    name = "rotate_test"
    description = "in-plane rotation for tests"
    property_name = "angle"
    unit = "degree"

    def __init__(self, steps: int = 36) -> None:
        self.steps = steps

    def generate(self, image, *, seed=0, show_progress=False):
        angles = torch.arange(self.steps, dtype=torch.float32) * (360.0 / self.steps)
        theta = torch.deg2rad(angles)
        cos, sin = torch.cos(theta), torch.sin(theta)
        zeros = torch.zeros_like(cos)
        affine = torch.stack([torch.stack([cos, -sin, zeros], 1), torch.stack([sin, cos, zeros], 1)], 1)
        grid = torch.nn.functional.affine_grid(affine, (self.steps, *image.shape), align_corners=False)
        frames = torch.nn.functional.grid_sample(image.expand(self.steps, *image.shape), grid, align_corners=False)
        return InterventionSequence(frames.clamp(0, 1), angles, "angle", "degree", periodic=True)


def two_colour_image(size: int = 24) -> torch.Tensor:
    """Red on the left, blue on the right: rotating it moves the mean colour of the visible disc."""
    image = torch.zeros(3, size, size)
    image[0, :, : size // 2] = 0.9
    image[2, :, size // 2 :] = 0.6
    image[1, : size // 3] = 0.5
    return image + 0.05


# --- descriptors and grouping -------------------------------------------------------------------------------


def test_the_grouping_of_descriptors_is_class_major_with_labels_and_column_classes():
    model = ZeroShotClassifier.from_text_encoder(mean_colour, encode_text, DESCRIPTORS)
    assert model.class_names == tuple(DESCRIPTORS)
    assert model.column_labels == tuple(t for texts in DESCRIPTORS.values() for t in texts)
    assert model.column_classes.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert model.class_grouping.columns == ((0, 1, 2), (3, 4, 5), (6, 7, 8))
    assert model.class_grouping.n_descriptors == 3


@pytest.mark.parametrize(
    ("descriptors", "error", "fragments"),
    [
        ({"a": ["x"], "b": ["y", "z"]}, ValueError, ["different lengths", "'a': 1", "'b': 2"]),
        ({"a": [], "b": []}, ValueError, ["class 'a'", "empty list"]),
        ({}, ValueError, ["descriptors is empty"]),
        ({"a": "x"}, TypeError, ["class 'a'", "list of descriptors"]),
        ({"a": ["x", ""]}, ValueError, ["class 'a'", "non-empty string"]),
        ({"": ["x"]}, ValueError, ["class names"]),
        (["a", "b"], TypeError, ["descriptors must map each class name"]),
    ],
)
def test_bad_descriptors_are_clear_errors_naming_the_argument(descriptors, error, fragments):
    with pytest.raises(error) as info:
        check_descriptors(descriptors)
    for fragment in fragments:
        assert fragment in str(info.value)
    with pytest.raises(error):  # and the wrapper refuses them before encoding anything
        ZeroShotClassifier.from_text_encoder(mean_colour, encode_text, descriptors)


def test_descriptor_files_are_read_and_checked(tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(DESCRIPTORS))
    assert load_descriptors(good) == DESCRIPTORS
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json.*not valid JSON"):
        load_descriptors(bad)
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_descriptors(tmp_path / "missing.json")
    bad.write_text(json.dumps({"a": ["x"], "b": ["y", "z"]}))
    with pytest.raises(ValueError, match="--descriptors 'x.json': descriptor lists have different lengths"):
        load_descriptors(bad, "--descriptors 'x.json'")


# --- the forward wrapper ------------------------------------------------------------------------------------


def test_the_wrapper_returns_the_cosine_similarity_of_every_image_with_every_descriptor():
    images = torch.rand(7, 3, 10, 12, generator=torch.Generator().manual_seed(0))
    model = ZeroShotClassifier.from_text_encoder(mean_colour, encode_text, DESCRIPTORS)
    texts = list(model.column_labels)
    np.testing.assert_allclose(model(images).numpy(), numpy_cosine(images, texts), atol=1e-6)


def test_images_and_texts_are_encoded_in_chunks():
    seen_images, seen_texts = [], []

    def image_encoder(images):
        seen_images.append(images.shape[0])
        return mean_colour(images)

    def text_encoder(texts):
        seen_texts.append(len(texts))
        return encode_text(texts)

    model = ZeroShotClassifier.from_text_encoder(
        image_encoder, text_encoder, DESCRIPTORS, batch_size=3, text_batch_size=4
    )
    assert seen_texts == [4, 4, 1]
    images = torch.rand(8, 3, 6, 6, generator=torch.Generator().manual_seed(1))
    out = model(images)
    assert seen_images == [3, 3, 2]
    np.testing.assert_allclose(out.numpy(), numpy_cosine(images, list(model.column_labels)), atol=1e-6)


def test_precomputed_text_embeddings_in_both_layouts():
    texts = [t for ts in DESCRIPTORS.values() for t in ts]
    flat = encode_text(texts)
    images = torch.rand(4, 3, 5, 5, generator=torch.Generator().manual_seed(2))
    a = ZeroShotClassifier(mean_colour, flat, DESCRIPTORS)
    b = ZeroShotClassifier(mean_colour, flat.reshape(3, 3, 3), DESCRIPTORS)
    torch.testing.assert_close(a(images), b(images))
    np.testing.assert_allclose(a(images).numpy(), numpy_cosine(images, texts), atol=1e-6)
    unnamed = ZeroShotClassifier(mean_colour, flat.reshape(3, 3, 3))
    assert unnamed.class_names == ("class 0", "class 1", "class 2")
    assert unnamed.column_labels[4] == "class 1 / descriptor 1"
    one_each = ZeroShotClassifier(mean_colour, flat)
    assert one_each.class_grouping.n_classes == 9 and one_each.class_grouping.n_descriptors == 1
    with pytest.raises(ValueError, match="descriptors names 3 classes × 3 descriptors = 9 texts.*shape \\(8, 3\\)"):
        ZeroShotClassifier(mean_colour, flat[:8], DESCRIPTORS)
    with pytest.raises(ValueError, match="text_embeddings must be a tensor"):
        ZeroShotClassifier(mean_colour, flat[0], DESCRIPTORS)


def test_an_encoder_returning_the_wrong_shape_is_named():
    with pytest.raises(ValueError, match=r"encode_text must return embeddings of shape \(4, embedding_dim\)"):
        ZeroShotClassifier.from_text_encoder(mean_colour, lambda t: encode_text(t)[:-1], DESCRIPTORS, text_batch_size=4)
    model = ZeroShotClassifier.from_text_encoder(lambda x: mean_colour(x)[:, :2], encode_text, DESCRIPTORS)
    with pytest.raises(ValueError, match=r"encode_image must return embeddings of shape \(2, 3\), got \(2, 2\)"):
        model(torch.rand(2, 3, 4, 4))
    model = ZeroShotClassifier.from_text_encoder(lambda x: [1, 2], encode_text, DESCRIPTORS)
    with pytest.raises(ValueError, match="encode_image must return a tensor of embeddings.*got list"):
        model(torch.rand(2, 3, 4, 4))
    with pytest.raises(TypeError, match="encode_text must be callable"):
        ZeroShotClassifier.from_text_encoder(mean_colour, "not a function", DESCRIPTORS)


def test_output_objects_and_tensors_both_give_embeddings():
    class Output:  # what transformers 5 returns from get_image_features
        def __init__(self, pooled):
            self.last_hidden_state = torch.zeros(2, 5, 7)
            self.pooler_output = pooled

    pooled = torch.rand(2, 3)
    assert embeddings_of(pooled, "x") is pooled
    assert embeddings_of(Output(pooled), "x") is pooled
    model = ZeroShotClassifier.from_text_encoder(
        lambda x: Output(mean_colour(x)), lambda t: Output(encode_text(t)), DESCRIPTORS
    )
    images = torch.rand(3, 3, 4, 4)
    np.testing.assert_allclose(model(images).numpy(), numpy_cosine(images, list(model.column_labels)), atol=1e-6)


class OpenClipLike(nn.Module):
    """What an open_clip model offers: encode_image and encode_text methods (here with a BatchNorm)."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(3)
        self.proj = nn.Linear(3, 3, bias=False)
        with torch.no_grad():
            self.proj.weight.copy_(torch.eye(3))

    def encode_image(self, images):
        return self.proj(mean_colour(images))

    def encode_text(self, tokens):
        return self.proj(tokens)


def test_an_open_clip_style_model_plugs_in_by_its_bound_methods_and_is_registered():
    net = OpenClipLike()
    model = ZeroShotClassifier.from_text_encoder(
        net.encode_image, lambda texts: net.encode_text(encode_text(texts)), DESCRIPTORS
    )
    assert model.encoder is net  # .to(), .eval() and the device checks reach it
    assert net.training  # encoding the texts left its mode as it was
    explanation = propgrad.PropertyGradient(model).attribute(
        two_colour_image(), source=Rotate(steps=12), n_permutations=50
    )
    assert net.training
    frames = explanation.images
    np.testing.assert_allclose(explanation.outputs.numpy(), numpy_cosine(frames, list(model.column_labels)), atol=1e-5)


# --- aggregation per class through the API -------------------------------------------------------------------


def _numpy_gradient_score(curves: np.ndarray) -> np.ndarray:
    """E|dF/dx| per step: the mean absolute second-order finite difference (numpy.gradient)."""
    return np.abs(np.gradient(curves, axis=0)).mean(axis=0)


def test_the_per_class_aggregation_equals_a_numpy_recomputation_from_the_descriptor_outputs():
    model = ZeroShotClassifier.from_text_encoder(mean_colour, encode_text, DESCRIPTORS)
    image = two_colour_image(32)
    e = propgrad.PropertyGradient(model).attribute(
        image, source="alpha_patch", source_params={"steps": 15}, n_permutations=200, seed=3
    )
    c = e.classes
    assert c is not None
    outputs = e.outputs.double().numpy()  # (N, 9): raw cosine similarities, no softmax
    np.testing.assert_allclose(outputs, numpy_cosine(e.images, list(model.column_labels)), atol=1e-5)
    grouped = outputs.reshape(len(outputs), 3, 3)  # class-major
    np.testing.assert_allclose(c.mean.numpy(), grouped.mean(axis=2), atol=1e-12)
    np.testing.assert_allclose(c.std.numpy(), grouped.std(axis=2), atol=1e-12)
    assert c.top_class.tolist() == grouped.mean(axis=2).argmax(axis=1).tolist()
    original = e.original_outputs.double().numpy().reshape(3, 3)
    np.testing.assert_allclose(c.original_mean.numpy(), original.mean(axis=1), atol=1e-12)
    assert c.original_top_class == int(original.mean(axis=1).argmax())
    # scores: of the class-mean curves (Tab. 15) and of every descriptor (the explanation's columns), (K, D)
    np.testing.assert_allclose(c.score.numpy(), _numpy_gradient_score(grouped.mean(axis=2)), rtol=1e-9)
    np.testing.assert_allclose(c.descriptor_score.numpy(), _numpy_gradient_score(outputs).reshape(3, 3), rtol=1e-5)
    np.testing.assert_allclose(c.descriptor_p_value.numpy(), e.p_value.numpy().reshape(3, 3))
    assert c.descriptor_significant.tolist() == e.significant.reshape(3, 3).tolist()
    np.testing.assert_allclose(c.descriptor_score_mean.numpy(), c.descriptor_score.numpy().mean(axis=1))
    np.testing.assert_allclose(c.descriptor_score_std.numpy(), c.descriptor_score.numpy().std(axis=1))
    assert c.n_significant_descriptors.tolist() == e.significant.reshape(3, 3).sum(1).tolist()
    # the class tests use the explanation's settings: the same p-value as testing the mean curves directly
    direct = propgrad.permutation_test(torch.from_numpy(grouped.mean(axis=2)), n_permutations=200, seed=3)
    torch.testing.assert_close(c.p_value, direct.p_value)


def test_the_class_aggregation_of_a_periodic_rotation_and_its_record():
    model = ZeroShotClassifier.from_text_encoder(mean_colour, encode_text, DESCRIPTORS)
    e = propgrad.PropertyGradient(model).attribute(two_colour_image(), source=Rotate(steps=24), n_permutations=100)
    c = e.classes
    grouped = e.outputs.double().numpy().reshape(24, 3, 3)
    means = grouped.mean(axis=2)
    # periodic: the central difference wraps around (the step after the last is the first)
    wrapped = (np.roll(means, -1, axis=0) - np.roll(means, 1, axis=0)) / 2
    np.testing.assert_allclose(c.score.numpy(), np.abs(wrapped).mean(axis=0), rtol=1e-9)
    record = json.loads(json.dumps(e.to_dict()))
    assert record["classes"]["class_names"] == list(DESCRIPTORS)
    assert record["classes"]["descriptors"] == list(DESCRIPTORS.values())
    assert np.allclose(record["classes"]["mean"], means)
    assert record["classes"]["top_class"] == means.argmax(axis=1).tolist()
    text = e.summary()
    assert "per class (3 classes x 3 descriptors" in text
    assert "highest mean similarity along the sequence" in text
    for name in DESCRIPTORS:
        assert name in text


def test_with_a_target_only_that_descriptor_is_scored_and_the_classes_still_are(tmp_path):
    model = ZeroShotClassifier.from_text_encoder(mean_colour, encode_text, DESCRIPTORS)
    e = propgrad.PropertyGradient(model).attribute(two_colour_image(), source=Rotate(steps=12), target=4)
    table = e.classes.descriptor_score
    assert torch.isnan(table).sum() == 8 and float(table[1, 1]) == pytest.approx(float(e.score))
    assert e.classes.score.shape == (3,)
    assert "not scored" in e.summary()
    record = json.loads(write_json(tmp_path / "e.json", e.to_dict()).read_text())  # strict JSON: NaN is null
    assert record["classes"]["descriptor_score"][0][0] is None
    assert record["classes"]["descriptor_score"][1][1] == pytest.approx(float(e.score))


def test_a_class_grouping_given_by_the_user_and_its_bad_forms():
    def model(x):  # four outputs: two per class
        m = x.mean(dim=(2, 3))
        return torch.stack([m[:, 0], m[:, 0] * 2, m[:, 2], m[:, 1]], dim=1)

    pg = propgrad.PropertyGradient(model, output_transform="none", classes={"warm": [0, 1], "cold": [2, 3]})
    e = pg.attribute(two_colour_image(), source=Rotate(steps=12), n_permutations=50)
    out = e.outputs.double().numpy()
    np.testing.assert_allclose(e.classes.mean.numpy(), np.stack([out[:, :2].mean(1), out[:, 2:].mean(1)], 1))
    assert propgrad.PropertyGradient(model).output_transform == "softmax"  # a plain model keeps the default
    with pytest.raises(ValueError, match="different numbers of columns"):
        propgrad.PropertyGradient(model, classes={"a": [0], "b": [1, 2]})
    with pytest.raises(ValueError, match="column twice"):
        propgrad.PropertyGradient(model, classes={"a": [0, 1], "b": [1, 2]})
    with pytest.raises(TypeError, match="classes must be None, a ClassGrouping or a mapping"):
        propgrad.PropertyGradient(model, classes=[0, 1])
    too_far = propgrad.PropertyGradient(model, output_transform="none", classes={"a": [0, 1], "b": [2, 7]})
    with pytest.raises(ValueError, match="groups output column 7, but the model has 4 output columns"):
        too_far.attribute(two_colour_image(), source=Rotate(steps=6), n_permutations=10)


def test_many_columns_at_once_through_the_api():
    """200 classes x 10 descriptors = 2,000 columns, few permutations: shapes, batching and the aggregation."""
    k, d = 200, 10
    rng = np.random.default_rng(0)
    table = torch.tensor(rng.standard_normal((k, d, 3)), dtype=torch.float32)
    descriptors = {f"class {i}": [f"class {i} text {j}" for j in range(d)] for i in range(k)}
    batches = []

    def encoder(images):
        batches.append(images.shape[0])
        return mean_colour(images)

    model = ZeroShotClassifier(encoder, table, descriptors, batch_size=8)
    e = propgrad.PropertyGradient(model, batch_size=16).attribute(
        two_colour_image(), source=Rotate(steps=36), n_permutations=20
    )
    assert e.outputs.shape == (36, k * d) and e.score.shape == (k * d,)
    assert max(batches) <= 8  # the wrapper's chunks bound the encoder's batch
    c = e.classes
    grouped = e.outputs.double().reshape(36, k, d)
    torch.testing.assert_close(c.mean, grouped.mean(-1))
    torch.testing.assert_close(c.std, grouped.std(-1, unbiased=False))
    assert c.descriptor_score.shape == (k, d) and c.score.shape == (k,)
    torch.testing.assert_close(c.descriptor_score, e.score.double().reshape(k, d))
    assert "... 190 more classes" in e.summary()


# --- Hugging Face CLIP ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_clip_path(tmp_path_factory):
    pytest.importorskip("transformers")
    return tiny_clip(tmp_path_factory.mktemp("clip") / "tiny")


def test_a_hugging_face_clip_loaded_from_a_folder_gives_its_own_cosine_similarities(tiny_clip_path):
    transformers = pytest.importorskip("transformers")
    model = ZeroShotClassifier.from_pretrained(tiny_clip_path, DESCRIPTORS)
    hf = transformers.CLIPModel.from_pretrained(tiny_clip_path).eval()
    processor = transformers.AutoProcessor.from_pretrained(tiny_clip_path)
    pixels = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    tokens = processor.tokenizer(list(model.column_labels), padding=True, return_tensors="pt")
    with torch.no_grad():
        reference = hf(**tokens, pixel_values=pixels).logits_per_image / hf.logit_scale.exp()
        preprocess, model.preprocess = model.preprocess, None  # the same pixels into both
        ours = model(pixels)
    model.preprocess = preprocess
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-4)
    assert ours.shape == (3, 9)


def test_clip_preprocessing_on_tensors_matches_the_processor(tiny_clip_path):
    transformers = pytest.importorskip("transformers")
    from PIL import Image

    processor = transformers.AutoProcessor.from_pretrained(tiny_clip_path)
    pre = ClipPreprocess.from_processor(processor)
    assert pre.size == 32 and pre.crop_size == (32, 32) and pre.mode == "bicubic"
    y, x = torch.meshgrid(torch.linspace(0, 1, 48), torch.linspace(0, 1, 64), indexing="ij")
    image = torch.stack([x, y, (x + y) / 2])  # smooth: interpolation differences stay small
    pil = Image.fromarray((image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    reference = processor(images=[pil], return_tensors="pt")["pixel_values"]
    ours = pre(image[None])
    assert ours.shape == reference.shape == (1, 3, 32, 32)
    assert float((ours - reference).abs().mean()) < 0.01  # 8-bit rounding and PIL's bicubic against torch's
    assert float((ours - reference).abs().max()) < 0.05
    wide = pre(torch.rand(2, 3, 20, 90))  # shorter side to 32, centre crop
    assert wide.shape == (2, 3, 32, 32)


def test_an_unloadable_clip_folder_is_a_clear_error(tmp_path):
    pytest.importorskip("transformers")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="cannot load a CLIP model and processor from"):
        ZeroShotClassifier.from_pretrained(tmp_path / "empty", DESCRIPTORS)


# --- plots ---------------------------------------------------------------------------------------------------


def test_extrema_of_a_periodic_curve_wrap_around_and_stay_apart():
    angles = torch.arange(0, 360, 5.0)
    curve = torch.cos(torch.deg2rad(2 * angles)) + 0.1 * torch.cos(torch.deg2rad(angles))
    maxima, minima = curve_extrema(curve, 2, periodic=True)
    assert [float(angles[i]) for i in maxima] == [0.0, 180.0]
    assert sorted(float(angles[i]) for i in minima) == [90.0, 270.0]
    monotone = torch.linspace(0, 1, 20)
    assert curve_extrema(monotone, 3) == ([19], [0])  # no further local extrema


def test_a_periodic_angle_axis_spans_a_full_turn_in_degrees():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 359], [0, 1])
    format_angle_axis(ax, torch.arange(0, 360, 1.0), periodic=True, unit="degree")
    assert ax.get_xlim() == (0.0, 360.0)
    assert list(ax.get_xticks()) == [45.0 * k for k in range(9)]
    fig.canvas.draw()
    assert [t.get_text() for t in ax.get_xticklabels()][:3] == ["0°", "45°", "90°"]
    assert not matplotlib.rcParams["text.usetex"]
    plt.close(fig)


def test_the_class_plot_marks_the_true_class_and_shows_its_frames(tmp_path):
    model = ZeroShotClassifier.from_text_encoder(mean_colour, encode_text, DESCRIPTORS)
    e = propgrad.PropertyGradient(model).attribute(two_colour_image(), source=Rotate(steps=36), n_permutations=50)
    fig = e.plot_classes("blue thing", n_extrema=2)
    titles = [ax.get_title() for ax in fig.axes]
    assert any("(true class)" in t or "mean ± std" in t for t in titles)
    frames = [ax for ax in fig.axes if ax.images]
    maxima, minima = curve_extrema(e.classes.mean[:, 2], 2, periodic=True)
    assert len(frames) == len(maxima) + len(minima)
    assert frames[0].get_title().startswith("A: max")
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend[0] == "blue thing (true class)"
    paths = e.save(tmp_path, true_class="blue thing")
    assert (tmp_path / "explanation_classes.png") in paths
    with pytest.raises(ValueError, match="true_class 'dog' is not one of the 3 classes"):
        e.plot_classes("dog")


def test_a_grouping_gives_class_means_and_population_standard_deviations():
    g = ClassGrouping.from_descriptors(DESCRIPTORS)
    x = torch.arange(18.0).reshape(2, 9)
    mean, std = g.mean_std(x)
    assert mean.tolist() == [[1.0, 4.0, 7.0], [10.0, 13.0, 16.0]]
    assert torch.allclose(std, torch.full((2, 3), math.sqrt(2 / 3)))


# --- the command line ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def descriptors_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("descriptors") / "descriptors.json"
    path.write_text(json.dumps(DESCRIPTORS))
    return path


def _explain(argv, capsys):
    from propgrad.cli import main

    code = main(["explain", "--no-progress", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.slow
def test_cli_explains_a_clip_folder_with_descriptors_end_to_end(tiny_clip_path, descriptors_file, tmp_path, capsys):
    code, out, err = _explain(
        [
            "--model",
            f"clip:{tiny_clip_path}",
            "--descriptors",
            str(descriptors_file),
            "--source",
            "alpha_patch",
            "--param",
            "steps=9",
            "--size",
            "32",
            "--permutations",
            "50",
            "--true-class",
            "blue thing",
            "--out",
            str(tmp_path),
        ],
        capsys,
    )
    assert code == 0, err
    assert "per class (3 classes x 3 descriptors" in out and "crimson" in out
    record = json.loads((tmp_path / "explanation.json").read_text())
    assert record["labels"] == [t for ts in DESCRIPTORS.values() for t in ts]
    classes = record["classes"]
    assert classes["class_names"] == list(DESCRIPTORS)
    outputs = np.array(record["outputs"])  # raw cosine similarities: no softmax for a zero-shot model
    assert outputs.min() < 0 or outputs.sum(axis=1).max() > 1.01
    np.testing.assert_allclose(classes["mean"], outputs.reshape(len(outputs), 3, 3).mean(axis=2), atol=1e-6)
    assert (tmp_path / "explanation_classes.png").stat().st_size > 0


@pytest.mark.slow
def test_cli_explains_turntable_frames_with_a_clip_model(tiny_clip_path, descriptors_file, tmp_path, capsys):
    from propgrad.core.images import save_image

    frames = Rotate(steps=12).generate(two_colour_image(32))
    folder = tmp_path / "turntable"
    folder.mkdir()
    for frame, angle in zip(frames.images, frames.values.tolist()):
        save_image(folder / f"toy_{int(angle):03d}.png", frame)
    code, out, err = _explain(
        [
            "--model",
            f"clip:{tiny_clip_path}",
            "--descriptors",
            str(descriptors_file),
            "--source",
            "frames",
            "--param",
            f"path={folder}",
            "--image",
            str(folder / "toy_000.png"),
            "--size",
            "0",
            "--permutations",
            "50",
        ],
        capsys,
    )
    assert code == 0, err
    assert "periodic" in out and "per class" in out


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["--descriptors", "{d}"], ["--descriptors is for zero-shot models", "--model clip:PATH_OR_ID"]),
        (["--model", "clip:{clip}"], ["needs --descriptors FILE.json"]),
        (["--model", "clip:", "--descriptors", "{d}"], ["needs a folder or Hugging Face id"]),
        (["--model", "clip:{clip}", "--descriptors", "{bad}"], ["--descriptors", "different lengths"]),
        (["--model", "clip:{clip}", "--descriptors", "{missing}"], ["--descriptors", "no such file"]),
        (["--model", "clip:{clip}", "--descriptors", "{d}", "--true-class", "dog"], ["--true-class 'dog'"]),
        (["--true-class", "dog"], ["--true-class needs a model with classes"]),
    ],
)
def test_cli_refuses_bad_zero_shot_arguments_in_one_line(
    argv, fragments, tiny_clip_path, descriptors_file, tmp_path, capsys
):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"a": ["x"], "b": ["y", "z"]}))
    names = {"d": descriptors_file, "clip": tiny_clip_path, "bad": bad, "missing": tmp_path / "missing.json"}
    code, _, err = _explain([arg.format(**names) for arg in argv] + ["--permutations", "10"], capsys)
    assert code == 2
    assert err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err


@pytest.mark.slow
def test_cli_explains_a_rendered_rotation_with_a_clip_model(tiny_clip_path, descriptors_file, tmp_path, capsys):
    meshes = pytest.importorskip("propgrad_rendered_rotation.meshes")
    mesh = meshes.write_mesh("animal", tmp_path / "animal.ply")
    renderer = pytest.importorskip("propgrad_rendered_rotation.renderer")
    try:
        renderer.RotationRenderer  # noqa: B018 - the class exists; a context is made on first render
        from propgrad_rendered_rotation import RenderedRotationSource

        RenderedRotationSource(str(mesh), step=90, image_size=16).reference_image()
    except renderer.RenderingError as exc:  # no off-screen OpenGL context on this machine
        pytest.skip(f"rendered_rotation cannot render here: {exc}")
    code, out, err = _explain(
        [
            "--model",
            f"clip:{tiny_clip_path}",
            "--descriptors",
            str(descriptors_file),
            "--source",
            "rendered_rotation",
            "--param",
            f"mesh={mesh}",
            "--param",
            "step=10",
            "--param",
            "image_size=32",
            "--permutations",
            "50",
            "--out",
            str(tmp_path / "out"),
        ],
        capsys,
    )
    assert code == 0, err
    assert "36 steps (0 to 350 degree, periodic)" in out
    assert "per class (3 classes x 3 descriptors" in out
    record = json.loads((tmp_path / "out" / "explanation.json").read_text())
    assert record["periodic"] and len(record["classes"]["top_class"]) == 36


@pytest.mark.parametrize(
    ("rows", "named"),
    [([4], r"1 all-zero row\(s\).*: 4 \('lime'\);"), ([0, 8], r"2 all-zero .*: 0 \('red'\), 8 \('azure'\);")],
)
def test_all_zero_text_embeddings_are_refused_naming_the_descriptor(rows, named):
    """Normalised, an all-zero text embedding is 0: every image's similarity with it, and every explanation, flat."""
    texts = [t for ts in DESCRIPTORS.values() for t in ts]
    flat = encode_text(texts)
    flat[rows] = 0.0
    with pytest.raises(InvalidParameterError, match=named):
        ZeroShotClassifier(mean_colour, flat, DESCRIPTORS)
    with pytest.raises(ValueError, match="all-zero row"):
        ZeroShotClassifier(mean_colour, flat.reshape(3, 3, 3), DESCRIPTORS)

    def zero_for(texts_in):
        out = encode_text(texts_in)
        out[[i for i, t in enumerate(texts_in) if t == "lime"]] = 0.0
        return out

    with pytest.raises(ValueError, match=r"1 all-zero row\(s\).*4 \('lime'\).*Check the text encoder"):
        ZeroShotClassifier.from_text_encoder(mean_colour, zero_for, DESCRIPTORS)
