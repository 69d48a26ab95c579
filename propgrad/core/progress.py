"""Progress bars that behave in a terminal and in a log file.

In a terminal, :func:`progress_bar` is a tqdm bar. When stderr is not a terminal (CI logs,
``> file``, a batch scheduler) a redrawn bar would write thousands of ``\\r`` updates, so it prints a
plain line at most every :data:`LOG_INTERVAL_S` seconds and one when the work is done.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, TypeVar

from tqdm.auto import tqdm

LOG_INTERVAL_S = 30.0
T = TypeVar("T")


class LogLines:
    """The part of tqdm's interface the project uses, writing periodic plain lines to stderr.

    Args:
        total: Number of units of work (None: unknown).
        desc: What is being counted.
        interval: Seconds between two lines.
    """

    def __init__(self, total: int | None, desc: str, interval: float = LOG_INTERVAL_S) -> None:
        self.total, self.desc, self.interval = total, desc, interval
        self.n = 0
        self._start = self._last = time.monotonic()
        self._closed = False

    def update(self, n: int = 1) -> None:
        """Count ``n`` more units; print a line when ``interval`` seconds have passed."""
        self.n += n
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._print(now)

    def set_postfix(self, **kwargs: Any) -> None:
        """Accepted for tqdm compatibility; log lines carry counts only."""

    def close(self) -> None:
        """Print the final count once (if any work was counted)."""
        if not self._closed and self.n:
            self._print(time.monotonic())
        self._closed = True

    def _print(self, now: float) -> None:
        of = f"/{self.total}" if self.total is not None else ""
        print(f"{self.desc}: {self.n}{of} ({now - self._start:.0f} s)", file=sys.stderr, flush=True)

    def __enter__(self) -> LogLines:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Silent(LogLines):
    def update(self, n: int = 1) -> None:
        self.n += n

    def close(self) -> None:
        self._closed = True


def progress_bar(total: int | None, desc: str, *, enabled: bool = True, **tqdm_kwargs: Any) -> Any:
    """A progress counter: tqdm in a terminal, periodic plain lines otherwise, nothing when disabled.

    Args:
        total: Number of units of work.
        desc: Label.
        enabled: False gives a counter that prints nothing.
        **tqdm_kwargs: Passed to tqdm in a terminal (``position``, ``leave`` ...).

    Returns:
        An object with ``update(n)``, ``set_postfix(**kw)``, ``close()`` and context-manager use.
    """
    if not enabled:
        return _Silent(total, desc)
    if _stderr_is_terminal():
        return tqdm(total=total, desc=desc, **tqdm_kwargs)
    return LogLines(total, desc)


def progress(iterable: Iterable[T], desc: str, *, enabled: bool = True, **tqdm_kwargs: Any) -> Iterator[T]:
    """Iterate over ``iterable`` with a :func:`progress_bar` counting its items."""
    total = len(iterable) if hasattr(iterable, "__len__") else None  # type: ignore[arg-type]
    with progress_bar(total, desc, enabled=enabled, **tqdm_kwargs) as bar:
        for item in iterable:
            yield item
            bar.update(1)


def _stderr_is_terminal() -> bool:
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):  # replaced or closed stream
        return False


@contextmanager
def hf_progress_bars(transformers: Any, show: bool) -> Iterator[None]:
    """transformers' own progress bars (loading weights, downloads) shown only with ``show``, restored after.

    Args:
        transformers: The imported ``transformers`` module (the caller imports it, with its own
            message when it is missing).
        show: Leave the bars as they are; False turns them off for the block.
    """
    hf_logging = transformers.utils.logging
    enabled = hf_logging.is_progress_bar_enabled()
    if not show:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()
