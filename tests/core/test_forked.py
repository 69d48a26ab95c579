"""propgrad.core.forked: every other job in a forked child, results in order, failures on both sides."""

from __future__ import annotations

import os
import signal
import time
from functools import partial
from pathlib import Path

import pytest

from propgrad.core.forked import ForkedJobError, run_split

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this platform")


def _where(k: int) -> tuple[int, int]:
    return k, os.getpid()


def _fail(message: str) -> None:
    raise ValueError(message)


def _children() -> set[int]:
    """The pids of this process's child processes, zombies included (Linux)."""
    path = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children")
    return {int(p) for p in path.read_text().split()} if path.exists() else set()


def test_odd_jobs_run_in_one_child_and_results_keep_their_order() -> None:
    results = run_split([partial(_where, k) for k in range(7)], workers=2)
    assert [k for k, _ in results] == list(range(7))
    here, there = {pid for k, pid in results if k % 2 == 0}, {pid for k, pid in results if k % 2 == 1}
    assert here == {os.getpid()} and len(there) == 1 and there != here


@pytest.mark.parametrize("workers, n_jobs", [(1, 5), (2, 1), (2, 0)])
def test_one_worker_or_fewer_than_two_jobs_run_here_in_order(workers: int, n_jobs: int) -> None:
    results = run_split([partial(_where, k) for k in range(n_jobs)], workers=workers)
    assert results == [(k, os.getpid()) for k in range(n_jobs)]


def test_a_job_failing_in_the_child_is_raised_with_its_traceback_and_the_child_is_reaped() -> None:
    before = _children()
    ran = []
    jobs = [lambda: ran.append("here"), partial(_fail, "broken figure"), lambda: ran.append("here too")]
    with pytest.raises(ForkedJobError, match="ValueError: broken figure"):
        run_split(jobs, workers=2)
    assert ran == ["here", "here too"]  # this process's jobs ran before the child's failure was raised
    assert _children() == before


def _interrupted() -> None:
    os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, in the child
    time.sleep(5)


def test_ctrl_c_ends_the_child_at_once_without_running_the_parents_handlers() -> None:
    before = _children()
    with pytest.raises(ForkedJobError, match="died without a result"):  # not a KeyboardInterrupt caught in it
        run_split([partial(_where, 0), _interrupted], workers=2)
    assert _children() == before


def test_a_job_failing_here_is_raised_and_the_child_is_stopped_and_reaped() -> None:
    before = _children()
    with pytest.raises(ValueError, match="broken here"):
        run_split([partial(_fail, "broken here"), partial(_where, 1)], workers=2)
    assert _children() == before
