"""Independent jobs that hold the GIL, shared between this process and one forked child.

Drawing a figure with matplotlib is Python code from start to end, so threads cannot share it out,
and the default benchmark spends several seconds on its figures with one core idle.
:func:`run_split` shares the jobs with a child process forked for them: the child starts with the
parent's memory (the records, the figures' data, the imported modules), so nothing is pickled on the
way in, and it sends back only its jobs' results. Both take the next job from one queue (the jobs'
indexes in a pipe, which hands each to one reader) when they finish one, so neither waits while the
other has several left: the default run's figures take 0.3 to 1.6 s each.

The child runs the jobs and exits (:func:`os._exit`: none of the parent's exit handlers run twice).
Fork copies only the calling thread, so a job must not wait on one of the parent's other threads
(a thread pool, torch's intra-op threads): the jobs given here draw figures from numbers in memory
with matplotlib and numpy, and write files.
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import traceback
import warnings
from typing import Callable, Iterable, Sequence, TypeVar

T = TypeVar("T")
_STOPPING = {signal.SIGINT, signal.SIGTERM}
_INDEX = struct.Struct("<I")
MAX_QUEUED = 1024
"""Most jobs in one queue: their indexes fill one page of the pipe, which every pipe holds, so writing never blocks."""


class ForkedJobError(RuntimeError):
    """A job that ran in the forked child raised; the message holds the child's traceback."""


def run_split(jobs: Sequence[Callable[[], T]], workers: int) -> list[T]:
    """The results of ``jobs``, in order, run by this process and a forked child, each taking the next job in turn.

    With ``workers`` below 2, fewer than two jobs, or no :func:`os.fork` (Windows), every job runs
    here, in order. More than :data:`MAX_QUEUED` jobs are run that many at a time. Results must be picklable.

    Raises:
        ForkedJobError: A job in the child raised (after this process ran the jobs left).
        Exception: What a job run here raised (the child is stopped and reaped first).
    """
    if workers < 2 or len(jobs) < 2 or not hasattr(os, "fork"):
        return [job() for job in jobs]
    if len(jobs) > MAX_QUEUED:
        parts = [jobs[start : start + MAX_QUEUED] for start in range(0, len(jobs), MAX_QUEUED)]
        return [result for part in parts for result in run_split(part, workers)]
    queue_fd, queue_write = os.pipe()
    os.write(queue_write, b"".join(_INDEX.pack(k) for k in range(len(jobs))))  # one page at most: never blocks
    os.close(queue_write)
    read_fd, write_fd = os.pipe()
    # Ctrl-C and SIGTERM wait until the child has its own handlers: raised in it, the parent's (the
    # command line's handler) would unwind into the parent's code, which must run only once
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, _STOPPING)
    try:
        with warnings.catch_warnings():
            # Python 3.12+ warns about fork in a process with threads (the module doc says why these jobs may)
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
    except BaseException:  # no child (fork failed)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        for fd in (queue_fd, read_fd, write_fd):
            os.close(fd)
        raise
    if pid == 0:  # the child: never returns
        _run_child(jobs, queue_fd, read_fd, write_fd, mask)
    finished = False
    try:
        os.close(write_fd)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a Ctrl-C that came meanwhile is raised now
        here = _run_queued(jobs, queue_fd)
        payload = _read_all(read_fd)
        finished = True
    finally:
        os.close(queue_fd)
        os.close(read_fd)
        if not finished:  # a job here raised, or an interrupt: the child's results are not wanted
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    status, value = pickle.loads(payload) if payload else ("error", "the child process died without a result")
    if status != "ok":
        raise ForkedJobError(f"a job in the forked child process failed:\n{value}")
    results = {**here, **value}
    return [results[k] for k in range(len(jobs))]


def _run_queued(jobs: Sequence[Callable[[], T]], queue_fd: int) -> dict[int, T]:
    """Run the jobs whose indexes this process takes from the queue, until it is empty; their results by index."""
    done = {}
    while index := os.read(queue_fd, _INDEX.size):  # a pipe gives each index to one reader
        (k,) = _INDEX.unpack(index)
        done[k] = jobs[k]()
    return done


def _run_child(
    jobs: Sequence[Callable[[], T]], queue_fd: int, read_fd: int, write_fd: int, mask: Iterable[int]
) -> None:
    """Run jobs from the queue, send ``("ok", results by index)`` or ``("error", traceback)`` down ``write_fd``, exit.

    Ctrl-C and SIGTERM end the child at once (their default action), with the signal mask it was forked
    with (``mask``) restored; the parent reports a child that died without a result.
    """
    code = 1
    try:
        for stopping in _STOPPING:
            signal.signal(stopping, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        os.close(read_fd)
        try:
            result: tuple[str, object] = ("ok", _run_queued(jobs, queue_fd))
            data = pickle.dumps(result)
        except BaseException:  # noqa: BLE001 - reported to the parent, which raises it
            data = pickle.dumps(("error", traceback.format_exc()))
        view = memoryview(data)
        while view:
            view = view[os.write(write_fd, view) :]
        code = 0
    finally:
        os._exit(code)


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)
