"""The benchmark's output folder: checked for writability, and locked for the length of a run.

Two runs writing into one ``--out`` would compute every cell twice and interleave their lines,
so a run holds an exclusive lock (the ``filelock`` package; ``.propgrad-benchmark.lock`` in the
folder) from before it reads the store until it has written its results; a second run fails at
once, naming the folder. The lock is released when the run ends, however it ends (the operating
system releases it if the process dies).
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from filelock import FileLock, Timeout

from propgrad.errors import PropgradError

LOCK_NAME = ".propgrad-benchmark.lock"


class OutputNotWritableError(PropgradError, ValueError):
    """The output folder (or its cell store) cannot be written."""


class OutputInUseError(PropgradError, ValueError):
    """Another run (a benchmark or a track) holds the lock of the output folder."""


def check_writable(out_dir: Path, files: tuple[str, ...] = ()) -> None:
    """Create ``out_dir`` if needed and check that files can be created in it and ``files`` appended to.

    Raises:
        OutputNotWritableError: With the folder and the operating system's reason.
    """
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".propgrad-write-check.", dir=out_dir)
        os.close(fd)
        os.unlink(probe)
        for name in files:
            path = out_dir / name
            if path.exists():
                os.close(os.open(path, os.O_WRONLY | os.O_APPEND))
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(out_dir) else ""
        raise OutputNotWritableError(
            f"cannot write to the output folder {out_dir}{where}: {reason}. Pass a writable --out."
        ) from None


@contextmanager
def locked_output(out_dir: Path) -> Iterator[Path]:
    """Hold the exclusive lock of ``out_dir`` inside the ``with`` block (yields the lock file's path).

    Raises:
        OutputInUseError: Another run (in any process) holds the lock.
    """
    path = Path(out_dir) / LOCK_NAME
    lock = FileLock(path, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise OutputInUseError(
            f"another propgrad run is using the output folder {out_dir} (it holds {path}); "
            "wait for it to finish, or pass another --out"
        ) from None
    try:
        yield path
    finally:
        lock.release()
