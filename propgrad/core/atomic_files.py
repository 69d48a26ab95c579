"""Atomic file writes: a temporary file in the same folder, then a rename.

A reader never sees a half-written file and an interrupted write leaves the old file in place.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` and then rename the temporary file to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: Path, data: Any) -> Path:
    """Write strict JSON atomically (keys sorted, indented): NaN and ±inf become null, and a dict's
    ``null_reasons`` says why (:mod:`propgrad.core.strict_json`)."""
    from propgrad.core.strict_json import dumps_strict

    return atomic_write(path, lambda tmp: tmp.write_text(dumps_strict(data, indent=2, sort_keys=True)))


def write_text(path: Path, text: str) -> Path:
    """Write UTF-8 text atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
