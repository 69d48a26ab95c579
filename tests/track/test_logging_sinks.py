"""TensorBoard and MLflow logging of a track, read back with each library's own reader."""

from __future__ import annotations

import csv

import pytest
import torch

from propgrad.cli import main
from propgrad.track import Keeping, PropertyTracker
from propgrad.track.logging_sinks import MlflowSink, TensorBoardSink, metric_values
from tests.fakes import Brighten, BrightnessModel
from tests.track.checkpoint_files import TinyNet, write_checkpoints


def _track(tmp_path, sinks):
    folder = tmp_path / "ck"
    folder.mkdir()
    for epoch, scale in enumerate([1.0, 4.0, 9.0]):
        torch.save(
            {"model_state_dict": {"scale": torch.tensor(scale)}, "epoch": epoch, "step": 50 * (epoch + 1)},
            folder / f"ckpt_{epoch}.pt",
        )
    images = torch.stack([torch.full((3, 8, 8), 0.3), torch.full((3, 8, 8), 0.6)])
    result = PropertyTracker(BrightnessModel(0.5), folder).track(
        images, Brighten(), target=1, n_permutations=49, keep=Keeping(sinks=sinks)
    )
    for sink in sinks:
        sink.close()
    return result


def test_tensorboard_scalars_read_back_with_event_accumulator(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = _track(tmp_path, [TensorBoardSink(tmp_path / "tb")])
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    for image in (0, 1):
        scores = result.of_image(image)
        logged = events.Scalars(f"brightness/image{image}/score")
        assert [e.step for e in logged] == [50, 100, 150]
        assert [e.value for e in logged] == pytest.approx([s.score[0] for s in scores], rel=1e-6)
        assert [e.value for e in events.Scalars(f"brightness/image{image}/flips")] == [s.flips for s in scores]
        assert [e.value for e in events.Scalars(f"brightness/image{image}/p")] == pytest.approx(
            [s.p[0] for s in scores]
        )


def test_mlflow_metrics_read_back_with_the_client_from_a_local_file_store(tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    uri = (tmp_path / "mlruns").as_uri()
    sink = MlflowSink(uri, experiment="tests", params={"model": "brightness"})
    result = _track(tmp_path, [sink])
    client = MlflowClient(tracking_uri=uri)
    for image in (0, 1):
        history = sorted(client.get_metric_history(sink.run_id, f"brightness/image{image}/score"), key=lambda m: m.step)
        assert [m.step for m in history] == [50, 100, 150]
        assert [m.value for m in history] == pytest.approx([s.score[0] for s in result.of_image(image)])
    run = client.get_run(sink.run_id)
    assert run.data.params["model"] == "brightness" and run.info.status == "FINISHED"


def test_several_scored_columns_are_filed_apart():
    from propgrad.track.records import CheckpointInfo, CheckpointScore

    info = CheckpointInfo("c", "/c", "torch", None, 2.0, 2, "k")
    score = CheckpointScore(
        info,
        1,
        "hair colour",
        "s",
        "per step",
        [0, 1],
        [0.1, 0.2],
        [0.5, 0.01],
        None,
        [False, True],
        None,
        None,
        1,
        True,
        0,
        [0.6, 0.4],
        [0, 1],
        [[0.6, 0.4], [0.3, 0.7]],
        [-1.0, 1.0],
    )
    pairs = dict(metric_values(score))
    assert pairs == {
        "hair colour/image1/column0/score": 0.1,
        "hair colour/image1/column0/p": 0.5,
        "hair colour/image1/column1/score": 0.2,
        "hair colour/image1/column1/p": 0.01,
        "hair colour/image1/flips": 1.0,
    }
    assert info.global_step == 2  # no step recorded: its place in the order


def test_the_command_logs_to_both(tmp_path, capsys):
    pytest.importorskip("tensorboard")
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    written = write_checkpoints(tmp_path / "ck", TinyNet, "torch", epochs=2)
    uri = (tmp_path / "mlruns").as_uri()
    argv = ["track", "--model", "tests.track.checkpoint_files:TinyNet", "--image", "skimage:chelsea", "--size", "16"]
    argv += ["--crop", "16", "--param", "steps=5", "--permutations", "49", "--target", "0", "--no-progress"]
    argv += ["--checkpoints", str(tmp_path / "ck"), "--tensorboard", str(tmp_path / "tb"), "--mlflow", uri]
    argv += ["--out", str(tmp_path / "out")]
    assert main(argv) == 0
    rows = list(csv.DictReader((tmp_path / "out" / "track.csv").open()))
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    (tag,) = [t for t in events.Tags()["scalars"] if t.endswith("/score")]
    assert [e.step for e in events.Scalars(tag)] == [w.step for w in written]
    assert [e.value for e in events.Scalars(tag)] == pytest.approx([float(r["score"]) for r in rows], rel=1e-6)
    client = MlflowClient(tracking_uri=uri)
    (experiment,) = [e for e in client.search_experiments() if e.name == "propgrad-track"]
    (run,) = client.search_runs([experiment.experiment_id])
    history = client.get_metric_history(run.info.run_id, tag)
    assert sorted(m.value for m in history) == pytest.approx(sorted(float(r["score"]) for r in rows))
