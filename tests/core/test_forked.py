"""propgrad.core.forked: jobs shared with a forked child from one queue, results in order, failures on both sides."""

from __future__ import annotations

import os
import signal
import time
from functools import partial
from pathlib import Path
from typing import Callable

import pytest

from propgrad.core.forked import ForkedJobError, run_split

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this platform")


def _where(k: int) -> tuple[int, int]:
    return k, os.getpid()


def _children() -> set[int]:
    """The pids of this process's child processes, zombies included (Linux)."""
    path = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children")
    return {int(p) for p in path.read_text().split()} if path.exists() else set()


def _wait_for(path: Path) -> None:
    deadline = time.monotonic() + 30
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared: the other process did not take the job that makes it")
        time.sleep(0.01)


def _waiting(flag: Path, action: Callable[[], object]) -> object:
    _wait_for(flag)
    return action()


def _flagging(flag: Path, action: Callable[[], object]) -> object:
    flag.touch()
    return action()


def _a_pair(tmp_path: Path, action: Callable[[], object]) -> list[Callable[[], object]]:
    """Two jobs the two processes must share: the first waits until the second has run, so whichever
    process takes the first, the other takes the second. Both then do ``action``."""
    flag = tmp_path / "second-job-ran"
    return [partial(_waiting, flag, action), partial(_flagging, flag, action)]


def _fail_in(pid_test: int, where: str) -> None:
    in_child = os.getpid() != pid_test
    if (where == "child") == in_child:
        raise ValueError(f"broken in the {where}")


def _ctrl_c_in_child(pid_test: int) -> None:
    if os.getpid() != pid_test:
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, in the child
        time.sleep(5)


def _step(k: int, wait: Path | None, flag: Path | None) -> tuple[int, int]:
    if flag is not None:
        flag.touch()
    if wait is not None:
        _wait_for(wait)
    return k, os.getpid()


def test_both_processes_take_jobs_from_one_queue_and_results_keep_their_order(tmp_path: Path) -> None:
    one, two = tmp_path / "1", tmp_path / "2"
    # job 0 waits for job 1 and job 1 for job 2, so the processes take them in turn: one process runs
    # jobs 0 and 2, the other job 1, whichever starts first (jobs dealt out in advance would hang)
    jobs = [partial(_step, 0, one, None), partial(_step, 1, two, one), partial(_step, 2, None, two)]
    results = run_split(jobs, workers=2)
    assert [k for k, _ in results] == [0, 1, 2]
    pids = [pid for _, pid in results]
    assert pids[0] == pids[2] != pids[1] and os.getpid() in pids


@pytest.mark.parametrize("workers, n_jobs", [(1, 5), (2, 1), (2, 0)])
def test_one_worker_or_fewer_than_two_jobs_run_here_in_order(workers: int, n_jobs: int) -> None:
    results = run_split([partial(_where, k) for k in range(n_jobs)], workers=workers)
    assert results == [(k, os.getpid()) for k in range(n_jobs)]


def test_more_jobs_than_one_queue_holds_run_in_queues_one_after_the_other(monkeypatch: pytest.MonkeyPatch) -> None:
    import propgrad.core.forked as forked

    monkeypatch.setattr(forked, "MAX_QUEUED", 4)
    results = run_split([partial(_where, k) for k in range(11)], workers=2)
    assert [k for k, _ in results] == list(range(11))


def test_a_job_failing_in_the_child_is_raised_with_its_traceback_and_the_child_is_reaped(tmp_path: Path) -> None:
    before = _children()
    with pytest.raises(ForkedJobError, match="ValueError: broken in the child"):
        run_split(_a_pair(tmp_path, partial(_fail_in, os.getpid(), "child")), workers=2)
    assert _children() == before


def test_a_job_failing_here_is_raised_and_the_child_is_stopped_and_reaped(tmp_path: Path) -> None:
    before = _children()
    with pytest.raises(ValueError, match="broken in the parent"):
        run_split(_a_pair(tmp_path, partial(_fail_in, os.getpid(), "parent")), workers=2)
    assert _children() == before


def test_ctrl_c_ends_the_child_at_once_without_running_the_parents_handlers(tmp_path: Path) -> None:
    before = _children()
    with pytest.raises(ForkedJobError, match="died without a result"):  # not a KeyboardInterrupt caught in it
        run_split(_a_pair(tmp_path, partial(_ctrl_c_in_child, os.getpid())), workers=2)
    assert _children() == before
