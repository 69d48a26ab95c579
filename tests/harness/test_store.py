"""The cell store on its own: checksums and field checks, replay of identities, retries, interrupted writes."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest

from propgrad.harness import timing
from propgrad.harness.record_checks import check_record, checksum
from propgrad.harness.store import (
    CellStore,
    CorruptStoreError,
    EmptiedStoreWarning,
    SettingsMismatchError,
    read_header,
)
from propgrad.harness.timing import Stopwatch, TimingCheckpoints


def baseline_cell(image: int, score: float | None = 0.5, error: str | None = None) -> dict[str, Any]:
    return {
        "kind": "baseline",
        "key": ["baseline", "s", "iv", "m", image, "b"],
        "image": image,
        "method": "b",
        "score": score,
        "half_score": None if score is None else score / 2,
        "error": error,
    }


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def rewrite(path: Path, records: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))


def test_every_line_has_a_checksum_and_loaded_records_do_not(tmp_path: Path) -> None:
    store = CellStore(tmp_path / "s.jsonl", {"a": 1})
    store.append([baseline_cell(0)])
    on_disk = lines(tmp_path / "s.jsonl")
    assert all(r["checksum"] == checksum(r) for r in on_disk)
    assert CellStore(tmp_path / "s.jsonl", {"a": 1}).get(["baseline", "s", "iv", "m", 0, "b"]) == baseline_cell(0)


def test_an_edited_score_is_an_error_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    CellStore(path, {"a": 1}).append([baseline_cell(0), baseline_cell(1)])
    records = lines(path)
    records[1]["score"] = 999.0  # edited by hand, checksum left as it was
    rewrite(path, records)
    with pytest.raises(CorruptStoreError, match=r"line 2: checksum mismatch"):
        CellStore(path, {"a": 1})
    records[1]["checksum"] = "0" * 16
    records[1]["score"] = 0.5
    rewrite(path, records)
    with pytest.raises(CorruptStoreError, match="line 2"):
        CellStore(path, {"a": 1})


def test_a_field_of_the_wrong_type_is_an_error_naming_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    CellStore(path, {"a": 1}).append([baseline_cell(0), baseline_cell(1)])
    records = lines(path)
    records[2]["score"] = "0.5"
    records[2]["checksum"] = checksum(records[2])  # a consistent but ill-typed record
    rewrite(path, records)
    with pytest.raises(CorruptStoreError, match=r"line 3: field 'score' of a baseline record must be"):
        CellStore(path, {"a": 1})
    del records[2]["method"]
    records[2]["score"] = 0.5
    records[2]["checksum"] = checksum(records[2])
    rewrite(path, records)
    with pytest.raises(CorruptStoreError, match=r"line 3: field 'method' of a baseline record is missing"):
        CellStore(path, {"a": 1})


def test_check_record_knows_the_property_fields() -> None:
    record = {"kind": "property", "key": ["property", "s", "i", "m", 0], "image": 0}
    record["checksum"] = checksum(record)
    assert "is missing" in (check_record(record) or "")


def test_truncated_final_line_is_still_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    CellStore(path, {"a": 1}).append([baseline_cell(0), baseline_cell(1)])
    text = path.read_text()
    path.write_text(text[: len(text) - 20])
    store = CellStore(path, {"a": 1})
    assert store.dropped_partial_line and len(store) == 1
    assert path.read_text().endswith("\n") and len(lines(path)) == 2


def test_an_interrupted_append_leaves_no_half_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import propgrad.harness.store as store_module

    path = tmp_path / "s.jsonl"
    store = CellStore(path, {"a": 1})
    store.append([baseline_cell(0)])
    before = path.read_bytes()
    real_write = store_module.os.write
    calls = []

    def write_then_interrupt(fd: int, data: Any) -> int:
        calls.append(1)
        if len(calls) == 1:
            return real_write(fd, bytes(data[:10]))  # a short write ...
        raise KeyboardInterrupt  # ... then SIGTERM arrives

    monkeypatch.setattr(store_module.os, "write", write_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        store.append([baseline_cell(1)])
    monkeypatch.undo()
    assert path.read_bytes() == before
    store.add_segment(1, {"run_s": 1.0})  # a later write (the interrupted session's timing) stays clean
    assert len(CellStore(path, {"a": 1}).segments()) == 1


def test_lines_written_in_full_stay_when_the_interrupt_comes_during_the_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import propgrad.harness.store as store_module

    path = tmp_path / "s.jsonl"
    store = CellStore(path, {"a": 1})
    store.append([baseline_cell(0)])

    def interrupted_fsync(fd: int) -> None:
        raise KeyboardInterrupt  # SIGTERM arrives while the complete lines are being synced

    monkeypatch.setattr(store_module.os, "fsync", interrupted_fsync)
    monkeypatch.setattr(store_module, "SYNC_SECONDS", 0.0)  # this append is synced
    with pytest.raises(KeyboardInterrupt):
        store.append([baseline_cell(1), baseline_cell(2)])
    monkeypatch.undo()
    again = CellStore(path, {"a": 1})  # what a rerun finds: every cell the run had written
    assert not again.dropped_partial_line
    assert [again.is_finished(baseline_cell(i)["key"]) for i in range(3)] == [True, True, True]


def test_appends_are_written_at_once_and_synced_at_most_every_sync_seconds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import propgrad.harness.store as store_module

    clock = [100.0]
    synced: list[int] = []
    monkeypatch.setattr(store_module.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(store_module.os, "fsync", lambda fd: synced.append(len(CellStore(path, {"a": 1}))))
    path = tmp_path / "s.jsonl"
    store = CellStore(path, {"a": 1})
    store.append([baseline_cell(0)])  # the first append is synced
    for i in range(1, 4):  # within SYNC_SECONDS of it: in the file, not synced
        clock[0] += 0.25
        store.append([baseline_cell(i)])
        assert len(CellStore(path, {"a": 1})) == i + 1
    clock[0] += 0.25  # SYNC_SECONDS after the first sync: synced, with everything before it
    store.append([baseline_cell(4)])
    store.add_segment(5, {"run_s": 1.0})  # the session's timing is always synced
    assert synced == [1, 5, 5]


def test_a_recorded_error_is_replaced_by_a_retry_and_the_last_line_wins(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    store = CellStore(path, {"a": 1})
    store.append([baseline_cell(0, None, "ValueError: broken"), baseline_cell(1)])
    assert not store.is_finished(baseline_cell(0)["key"]) and store.is_finished(baseline_cell(1)["key"])
    store.append([baseline_cell(0, 0.25)])
    with pytest.raises(ValueError, match="already stored"):
        store.append([baseline_cell(1)])
    again = CellStore(path, {"a": 1})
    assert again.get(baseline_cell(0)["key"])["score"] == 0.25 and len(again) == 2


def test_a_changed_identity_drops_the_cells_it_covers_also_on_reload(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    store = CellStore(path, {"a": 1})
    match = [[0, "baseline"], [5, "b"]]
    assert store.bind_identity(["identity", "baseline", "b"], {"version": "1"}, match) == 0
    other = {**baseline_cell(0), "key": ["baseline", "s", "iv", "m", 0, "c"], "method": "c"}
    store.append([baseline_cell(0), baseline_cell(1), other])
    assert store.bind_identity(["identity", "baseline", "b"], {"version": "1"}, match) == 0  # unchanged
    assert store.bind_identity(["identity", "baseline", "b"], {"version": "2"}, match) == 2
    assert len(store) == 1 and store.get(other["key"]) is not None
    store.append([baseline_cell(0, 0.75)])
    again = CellStore(path, {"a": 1})
    assert len(again) == 2 and again.get(baseline_cell(0)["key"])["score"] == 0.75
    assert again.identity(["identity", "baseline", "b"]) == {"version": "2"}


def test_store_kinds_cannot_be_appended_as_cells(tmp_path: Path) -> None:
    store = CellStore(tmp_path / "s.jsonl", {"a": 1})
    with pytest.raises(ValueError, match="store line kind"):
        store.append([{"kind": "identity", "key": ["identity", "x"]}])


def test_a_store_of_the_old_format_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps({"kind": "header", "format": 1, "settings_hash": "x", "settings": {"a": 1}}) + "\n")
    with pytest.raises(SettingsMismatchError, match="store format 1.*--fresh"):
        CellStore(path, {"a": 1})
    assert read_header(path)["settings"] == {"a": 1}
    assert read_header(tmp_path / "missing.jsonl") is None


def test_a_damaged_header_is_not_offered_deletion(tmp_path: Path) -> None:
    """Line 1 is the header: deleting it leaves no store, so the advice is --fresh alone."""
    path = tmp_path / "s.jsonl"
    CellStore(path, {"a": 1}).append([baseline_cell(0)])
    records = lines(path)
    records[0]["settings"] = {"a": 1, "edited": True}  # checksum left as it was
    rewrite(path, records)
    with pytest.raises(CorruptStoreError, match=r"line 1: checksum mismatch") as caught:
        CellStore(path, {"a": 1})
    message = str(caught.value)
    assert "Line 1 is the header" in message and "--fresh" in message
    assert "recompute the cell" not in message and "delete that line" not in message
    path.write_text("garbage\n" + path.read_text().split("\n", 1)[1])
    with pytest.raises(CorruptStoreError, match=r"line 1 is corrupt.*Line 1 is the header.*--fresh"):
        CellStore(path, {"a": 1})


def test_a_garbage_line_mid_file_offers_deleting_it_and_deleting_it_works(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    CellStore(path, {"a": 1}).append([baseline_cell(0), baseline_cell(1), baseline_cell(2)])
    text = path.read_text().splitlines()
    text[2] = "{garbage"  # the cell of image 1
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(CorruptStoreError, match=r"line 3 is corrupt.*delete that line to recompute the cell.*--fresh"):
        CellStore(path, {"a": 1})
    del text[2]  # what the message says
    path.write_text("\n".join(text) + "\n")
    store = CellStore(path, {"a": 1})
    assert len(store) == 2 and ["baseline", "s", "iv", "m", 1, "b"] not in store


def test_a_damaged_segment_line_is_not_called_a_cell(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    store = CellStore(path, {"a": 1})
    store.append([baseline_cell(0)])
    store.add_segment(1, {"run_s": 1.0})
    store.append([baseline_cell(1)])
    records = lines(path)
    records[2]["cells_computed"] = 7
    rewrite(path, records)
    with pytest.raises(CorruptStoreError, match=r"line 3: checksum mismatch.*only one session's timing is lost"):
        CellStore(path, {"a": 1})


def test_an_emptied_store_beside_results_says_that_it_starts_from_zero(tmp_path: Path) -> None:
    path = tmp_path / "cells.jsonl"
    CellStore(path, {"a": 1}).append([baseline_cell(0)])
    (tmp_path / "results.json").write_text("{}")
    path.write_text("")
    with pytest.warns(EmptiedStoreWarning, match=r"cells.jsonl exists but holds no complete line.*results.json"):
        store = CellStore(path, {"a": 1})
    assert len(store) == 0 and read_header(path) is not None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a new store, or one with its header, starts without a word
        CellStore(tmp_path / "new.jsonl", {"a": 1})
        CellStore(path, {"a": 1})


def test_a_tracked_session_that_is_killed_still_counts_its_cells_and_time(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    store = CellStore(path, {"a": 1})
    store.track_session(TimingCheckpoints(Stopwatch(), every_s=0.0), started="first")
    store.append([baseline_cell(0)])
    store.append([baseline_cell(1)])
    del store  # killed: no add_segment
    resumed = CellStore(path, {"a": 1})
    (killed,) = resumed.segments()
    assert killed["cells_computed"] == 2 and killed["interrupted"] is True and killed["started"] == "first"
    assert killed["timing"]["total_s"] >= 0
    resumed.track_session(TimingCheckpoints(Stopwatch(), every_s=0.0), started="second")
    resumed.append([baseline_cell(2)])
    resumed.add_segment(1, {"run_s": 5.0}, started="second", interrupted=False)
    segments = CellStore(path, {"a": 1}).segments()  # the final record replaces the checkpoints
    assert [(s["started"], s["cells_computed"], s["interrupted"]) for s in segments] == [
        ("first", 2, True),
        ("second", 1, False),
    ]
    assert segments[1]["timing"] == {"run_s": 5.0}


def test_timing_checkpoints_are_due_first_then_at_most_every_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(timing.time, "perf_counter", lambda: now[0])
    checkpoints = TimingCheckpoints(Stopwatch(), every_s=10.0)
    assert checkpoints.due() is not None
    now[0] += 9.0
    assert checkpoints.due() is None
    now[0] += 1.0
    assert checkpoints.due() is not None
