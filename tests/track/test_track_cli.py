"""``propgrad track``: its output folder, resuming, and one-line errors that leave ``--out`` untouched."""

from __future__ import annotations

import csv
import json
import sys

import pytest
import torch

from propgrad.cli import main
from propgrad.core.strict_json import loads_strict
from tests.track.checkpoint_files import TinyNet, write_checkpoints

MODEL = "tests.track.checkpoint_files:TinyNet"
QUICK = [
    "track",
    "--model",
    MODEL,
    "--image",
    "skimage:chelsea",
    "--size",
    "16",
    "--crop",
    "16",
    "--param",
    "steps=6",
    "--permutations",
    "99",
    "--no-progress",
]


def run(argv, capsys):
    code = main([*QUICK, *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def wide_net() -> TinyNet:
    return TinyNet(width=6)


def test_the_output_folder_holds_tidy_rows_strict_json_the_report_and_figures(tmp_path, capsys):
    written = write_checkpoints(tmp_path / "ck", TinyNet, "torch", epochs=[0, 1, 2, 10])
    out = tmp_path / "out"
    code, printed, err = run(["--checkpoints", str(tmp_path / "ck"), "--target", "1", "--out", str(out)], capsys)
    assert code == 0, err
    assert "mean E|∇X|" in printed and "#flips" in printed
    rows = list(csv.DictReader((out / "track.csv").open()))
    assert [float(r["epoch"]) for r in rows] == [0, 1, 2, 10]  # by the recorded epoch, not the name
    assert [int(r["step"]) for r in rows] == [w.step for w in written]
    assert {r["column"] for r in rows} == {"1"} and {r["image"] for r in rows} == {"0"}
    lines = [json.loads(line) for line in (out / "track.jsonl").read_text().splitlines()]
    assert len(lines) == 4 and len(lines[0]["outputs"]) == len(lines[0]["values"]) == 6
    assert [line["score"] for line in lines] == pytest.approx([float(r["score"]) for r in rows])
    record = loads_strict((out / "track.json").read_text())
    assert [c["epoch"] for c in record["checkpoints"]] == [0, 1, 2, 10]
    assert all(len(c["sha256"]) == 64 and c["size"] > 0 for c in record["checkpoints"])
    assert record["versions"]["torch"] == torch.__version__ and record["test"]["n_permutations"] == 99
    (summary,) = record["summary"]
    assert summary["n_checkpoints"] == 4
    assert summary["mean_score"] == pytest.approx(sum(float(r["score"]) for r in rows) / 4)
    assert summary["n_flipped"] == sum(r["flipped"] == "True" for r in rows)
    html = (out / "report.html").read_text()
    assert "Tab. 12" in html and "data:image/png;base64," in html
    for name in ("track_score.png", "track_behaviour.png", "track_score_vs_flips.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"


def test_a_rerun_reads_the_finished_checkpoints_back(tmp_path, capsys):
    write_checkpoints(tmp_path / "ck", TinyNet, "safetensors", epochs=3)
    out = tmp_path / "out"
    argv = ["--checkpoints", str(tmp_path / "ck"), "--out", str(out)]
    assert run(argv, capsys)[0] == 0
    first = (out / "track.csv").read_text()
    code, printed, _ = run(argv, capsys)
    assert code == 0 and "3 checkpoint(s) read back" in printed and "0 scored" in printed
    assert (out / "track.csv").read_text() == first
    code, _, err = run([*argv[:-2], "--out", str(out), "--permutations", "199"], capsys)
    assert code == 2 and "different settings" in err and "--fresh" in err
    code, printed, _ = run([*argv, "--fresh", "--permutations", "199"], capsys)
    assert code == 0 and "read back" not in printed


def _folder_without_checkpoints(tmp_path):
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "notes.txt").write_text("no weights here")


def _misfit(tmp_path):
    write_checkpoints(tmp_path / "ck", wide_net, "torch", epochs=2)


def _refused_pickle(tmp_path):
    (tmp_path / "ck").mkdir()
    for epoch in range(2):  # whole pickled models: only a full pickle (which runs code) rebuilds them
        torch.manual_seed(epoch)
        torch.save(TinyNet(), tmp_path / "ck" / f"model_epoch_{epoch}.pt")


def _repeated_epochs(tmp_path):
    (tmp_path / "ck").mkdir()
    for name in ("a.pt", "b.pt"):
        torch.save({"model_state_dict": TinyNet().state_dict(), "epoch": 3, "step": 30}, tmp_path / "ck" / name)


def _mixed_architectures(tmp_path):
    write_checkpoints(tmp_path / "ck", TinyNet, "torch", epochs=[0, 1])
    write_checkpoints(tmp_path / "ck", wide_net, "torch", epochs=[2])


def _truncated(tmp_path):
    written = write_checkpoints(tmp_path / "ck", TinyNet, "torch", epochs=3)
    data = written[2].path.read_bytes()
    written[2].path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_folder_without_checkpoints, "no checkpoint"),
        (_misfit, "does not fit"),
        (_refused_pickle, "--trust-checkpoint"),
        (_repeated_epochs, "epoch"),
        (_mixed_architectures, "different architectures"),
        (_truncated, "truncated"),
    ],
    ids=["no checkpoints", "misfit", "refused pickle", "repeated epochs", "mixed architectures", "truncated"],
)
def test_bad_checkpoints_give_one_line_and_leave_out_unwritten(tmp_path, capsys, make, message):
    make(tmp_path)
    out = tmp_path / "out"
    code, printed, err = run(["--checkpoints", str(tmp_path / "ck"), "--out", str(out)], capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("propgrad track: error: ")
    assert message in err.lower() or message in err
    assert not out.exists()


def test_an_existing_out_folder_is_left_as_it_was(tmp_path, capsys):
    _misfit(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    code, _, err = run(["--checkpoints", str(tmp_path / "ck"), "--out", str(out)], capsys)
    assert code == 2 and "does not fit" in err
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]


def test_trusting_a_pickle_loads_it(tmp_path, capsys):
    _refused_pickle(tmp_path)
    code, printed, err = run(["--checkpoints", str(tmp_path / "ck"), "--trust-checkpoint"], capsys)
    assert code == 0, err


def test_a_load_func_loads_what_propgrad_does_not_read(tmp_path, capsys, monkeypatch):
    (tmp_path / "ck").mkdir()
    for epoch in range(2):
        torch.manual_seed(epoch)
        torch.save([TinyNet().state_dict()], tmp_path / "ck" / f"weights_{epoch}.mine")
    (tmp_path / "my_loading.py").write_text(
        "import torch\n\ndef load(model, path):\n    model.load_state_dict(torch.load(path, weights_only=True)[0])\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    code, printed, err = run(["--checkpoints", str(tmp_path / "ck"), "--load-func", "my_loading:load"], capsys)
    assert code == 0, err
    code, _, err = run(["--checkpoints", str(tmp_path / "ck"), "--load-func", "my_loading"], capsys)
    assert code == 2 and "MODULE:FUNCTION" in err
    code, _, err = run(["--checkpoints", str(tmp_path / "ck"), "--load-func", "my_loading:nothing"], capsys)
    assert code == 2 and "no function 'nothing'" in err


def test_no_checkpoints_option_is_an_error(capsys):
    code, _, err = run([], capsys)
    assert code == 2 and "--checkpoints" in err


def test_a_missing_logging_package_names_the_extra(tmp_path, capsys, monkeypatch):
    write_checkpoints(tmp_path / "ck", TinyNet, "torch", epochs=1)
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    code, _, err = run(["--checkpoints", str(tmp_path / "ck"), "--tensorboard", str(tmp_path / "tb")], capsys)
    assert code == 2 and "pip install propgrad[track]" in err and err.count("\n") == 1
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)
    monkeypatch.setitem(sys.modules, "mlflow", None)
    code, _, err = run(["--checkpoints", str(tmp_path / "ck"), "--mlflow", f"file:{tmp_path / 'ml'}"], capsys)
    assert code == 2 and "pip install propgrad[track]" in err
