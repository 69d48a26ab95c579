"""An append-only JSON Lines store of finished benchmark cells, so that runs can resume.

The first line is a header with the run's settings and their hash; every later line is one
finished record (``{"kind": ..., "key": [...], ...}``), written, flushed and fsync'd as soon as it
is finished. Loading tolerates a truncated or invalid *final* line (the process died while
writing it) and cuts it off the file, so the next append starts on a clean line. A store written
with different settings is refused instead of mixing results.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

from propgrad.cache import cache_key

STORE_FORMAT = 1


def settings_hash(settings: dict[str, Any]) -> str:
    """The stable hash of JSON-serialisable settings that a store is bound to."""
    return cache_key("propgrad-benchmark-store", STORE_FORMAT, settings)


class SettingsMismatchError(ValueError):
    """The output folder holds results of a run with different settings."""


def changed_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The keys whose values differ between two settings dicts (present in either), sorted."""
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


class CellStore:
    """Finished cells of one benchmark run, kept in memory and appended to a JSONL file.

    Args:
        path: The ``.jsonl`` file; created (with its header) if missing.
        settings: The settings the results depend on (JSON-serialisable).

    Raises:
        SettingsMismatchError: The file was written with different settings.
        ValueError: The file is not a propgrad cell store, or a line before the last is corrupt.
    """

    def __init__(self, path: Path, settings: dict[str, Any]) -> None:
        self.path = Path(path)
        self.settings = json.loads(json.dumps(settings, sort_keys=True))
        self.hash = settings_hash(self.settings)
        self._records: dict[tuple[Any, ...], dict[str, Any]] = {}
        self.n_loaded = 0
        self.dropped_partial_line = False
        if not (self.path.exists() and self._load()):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            header = {"kind": "header", "format": STORE_FORMAT, "settings_hash": self.hash, "settings": self.settings}
            with open(self.path, "w", encoding="utf-8") as fh:
                fh.write(json.dumps(header, sort_keys=True) + "\n")
                fh.flush()
                os.fsync(fh.fileno())

    def _load(self) -> bool:
        """Read an existing store; False if it holds not even a complete header (start anew)."""
        raw = self.path.read_bytes()
        pieces = raw.split(b"\n")
        complete, tail = pieces[:-1], pieces[-1]  # tail: bytes after the last newline
        if not complete:  # empty, or the very first write (the header) was cut short
            return False
        self.dropped_partial_line = bool(tail.strip())
        keep = len(complete)
        parsed: list[dict[str, Any]] = []
        for number, line in enumerate(complete):
            try:
                record = json.loads(line)
                if not isinstance(record, dict) or "kind" not in record or (number > 0 and "key" not in record):
                    raise ValueError("not a record")
            except ValueError:
                if number == len(complete) - 1 and number > 0 and not self.dropped_partial_line:
                    self.dropped_partial_line, keep = True, number
                    break
                raise ValueError(
                    f"{self.path} line {number + 1} is corrupt and is not the last line, so it is not "
                    "an interrupted write. Pass --fresh (or another --out) to start over."
                ) from None
            parsed.append(record)
        if not parsed:
            raise ValueError(f"{self.path} is not a propgrad benchmark cell store (no header line)")
        self._check_header(parsed[0])
        for record in parsed[1:]:
            self._records[tuple(record["key"])] = record
        if self.dropped_partial_line:
            good_end = sum(len(line) + 1 for line in complete[:keep])
            with open(self.path, "r+b") as fh:
                fh.truncate(good_end)
                fh.flush()
                os.fsync(fh.fileno())
        self.n_loaded = len(self._records)
        return True

    def _check_header(self, header: dict[str, Any]) -> None:
        if header.get("kind") != "header":
            raise ValueError(f"{self.path} is not a propgrad benchmark cell store (no header line)")
        if header.get("settings_hash") != self.hash:
            old = header.get("settings", {})
            diffs = changed_keys(old, self.settings)
            detail = "; ".join(f"{k}: {old.get(k)!r} -> {self.settings.get(k)!r}" for k in diffs[:6])
            raise SettingsMismatchError(
                f"{self.path.parent} holds results of a benchmark run with different settings "
                f"({detail or 'format changed'}). Pass another --out, or --fresh to discard them."
            )

    def __contains__(self, key: Iterable[Any]) -> bool:
        return tuple(key) in self._records

    def __len__(self) -> int:
        return len(self._records)

    def get(self, key: Iterable[Any]) -> dict[str, Any] | None:
        """The record stored under ``key``, or None."""
        return self._records.get(tuple(key))

    def records(self, kind: str | None = None) -> list[dict[str, Any]]:
        """All records (of one ``kind``), sorted by key."""
        chosen = [r for r in self._records.values() if kind is None or r["kind"] == kind]
        return sorted(chosen, key=lambda r: [str(k) if not isinstance(k, int) else f"{k:012d}" for k in r["key"]])

    def append(self, records: list[dict[str, Any]]) -> None:
        """Write finished records durably (one fsync per call), then keep them in memory.

        Each record needs ``kind`` (str) and ``key`` (list of str/int). A key already stored is
        an error: nothing is ever computed twice.
        """
        if not records:
            return
        lines = []
        for record in records:
            key = tuple(record["key"])
            if key in self._records:
                raise ValueError(f"cell {key} is already stored in {self.path}")
            lines.append(json.dumps(record, sort_keys=True, allow_nan=True))
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        for record in records:
            self._records[tuple(record["key"])] = json.loads(json.dumps(record))
