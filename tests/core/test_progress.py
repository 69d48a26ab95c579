"""Progress counters: tqdm in a terminal, periodic plain lines in a log, nothing when disabled."""

from __future__ import annotations

import pytest
from tqdm.auto import tqdm

from propgrad.core import progress as progress_module
from propgrad.core.progress import LOG_INTERVAL_S, LogLines, progress, progress_bar


class FakeClock:
    """A monotonic clock that advances by ``step`` seconds per reading."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_off_a_terminal_lines_come_every_interval_and_once_at_the_end(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(progress_module.time, "monotonic", FakeClock(1.0))  # one second per update
    bar = progress_bar(1000, "inference")  # capsys' stderr is not a terminal
    assert isinstance(bar, LogLines)
    with bar:
        for _ in range(1000):
            bar.update(1)
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert "\r" not in err
    # 1000 s of work: a line every 30 s, plus the final count
    assert len(lines) == 1000 // int(LOG_INTERVAL_S) + 1
    assert lines[-1].startswith("inference: 1000/1000")


def test_disabled_counters_print_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    with progress_bar(10, "quiet", enabled=False) as bar:
        for _ in range(10):
            bar.update(1)
    assert list(progress(range(5), "quiet", enabled=False)) == [0, 1, 2, 3, 4]
    assert capsys.readouterr().err == ""


def test_a_terminal_gets_a_tqdm_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress_module, "_stderr_is_terminal", lambda: True)
    bar = progress_bar(3, "terminal", disable=True)
    try:
        assert isinstance(bar, tqdm)
    finally:
        bar.close()


def test_progress_yields_every_item_and_counts_them(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(progress_module.time, "monotonic", FakeClock(0.0))  # no interval passes
    assert list(progress(["a", "b", "c"], "letters")) == ["a", "b", "c"]
    assert capsys.readouterr().err.splitlines() == ["letters: 3/3 (0 s)"]
