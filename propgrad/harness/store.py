"""An append-only JSON Lines store of finished benchmark cells, so that runs can resume.

Line 1 is the header: the run's settings and their hash (a store written with other settings is
refused instead of mixing results). Every later line is one of

- a *cell* (``{"kind": "property" | "baseline" | ..., "key": [...], ...}``), a finished result;
- an *identity* (``kind="identity"``): what produced a group of cells (a plugin's class,
  distribution, version and settings, or a model's weights hash) and which keys it covers
  (``match``, ``[position, value]`` pairs);
- a *segment* (``kind="segment"``): the timing of one session that computed cells, written with
  its cells at checkpoints while it runs (so a killed session still counts) and once more when it
  ends; the last segment of a session (its key) is the one that counts.

Loading replays the file in order: a later identity that differs from the earlier one of the
same key drops the cells it covers that were stored before it (they were produced by something
else, so they are recomputed), and a later cell replaces an earlier one with the same key (a
retried failure). Every line carries a checksum and its fields are checked
(:mod:`propgrad.harness.record_checks`); a damaged line is an error naming it, except a
truncated or invalid *final* line (the process died while writing it), which is cut off so the
next append starts on a clean line. An append that fails half-way (an interrupt) is cut off too.

Each append is in the file when :meth:`CellStore.append` returns, so a process that dies (Ctrl-C,
SIGKILL, an exception) loses none of it. Making it durable against a crash of the machine (a power
cut) is an fsync, and the default benchmark appends about six times a second: the store syncs an
append only when :data:`SYNC_SECONDS` have passed since its last sync (a group commit, which makes
the appends before it durable too), and always with identities and session timing. A machine crash
then loses at most the cells appended in the :data:`SYNC_SECONDS` after the last sync; a rerun
computes them again.

The header is written atomically, so an existing store without one was emptied by hand: the run
starts from zero and says so (:class:`EmptiedStoreWarning`).
"""

from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path
from typing import Any, Iterable, Sequence

from propgrad.core.atomic_files import atomic_write
from propgrad.core.cache import cache_key
from propgrad.errors import PropgradError, PropgradWarning
from propgrad.harness.record_checks import CHECKSUM_FIELD, check_record, checksum
from propgrad.harness.timing import TimingCheckpoints

STORE_FORMAT = 3
SYNC_SECONDS = 1.0
"""Seconds after an fsync during which appends are written but not synced (see the module doc)."""
HEADER, IDENTITY, SEGMENT = "header", "identity", "segment"
META_KINDS = frozenset({HEADER, IDENTITY, SEGMENT})
_FRESH_HINT = "Pass --fresh (or another --out) to start over"


def settings_hash(settings: dict[str, Any]) -> str:
    """The stable hash of JSON-serialisable settings that a store is bound to."""
    return cache_key("propgrad-benchmark-store", STORE_FORMAT, settings)


class SettingsMismatchError(PropgradError, ValueError):
    """The output folder holds results of a run with different settings."""


class CorruptStoreError(PropgradError, ValueError):
    """A line of the cell store (not the final, interrupted one) is damaged or was edited."""


class EmptiedStoreWarning(PropgradWarning):
    """The cell store exists but holds no complete line: the run starts from zero."""


def changed_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The keys whose values differ between two settings dicts (present in either), sorted."""
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def read_header(path: Path) -> dict[str, Any] | None:
    """The header of the store at ``path`` (without verifying the rest), or None if there is none."""
    try:
        with open(path, "rb") as fh:
            line = fh.readline()
        header = json.loads(line)
    except (OSError, ValueError):
        return None
    return header if isinstance(header, dict) and header.get("kind") == HEADER else None


def _matches(key: tuple[Any, ...], match: Sequence[Sequence[Any]]) -> bool:
    return all(len(key) > pos and key[pos] == value for pos, value in match)


class CellStore:
    """Finished cells of one benchmark run, kept in memory and appended to a JSONL file.

    Args:
        path: The ``.jsonl`` file; created (with its header) if missing.
        settings: The settings the results depend on (JSON-serialisable).

    Attributes:
        n_loaded: Cells found when the store was opened.
        n_appended: Cells appended since (recomputed and retried ones included).
        dropped_partial_line: Whether an interrupted final line was cut off.

    Raises:
        SettingsMismatchError: The file was written with different settings or store format.
        CorruptStoreError: A line before the last is damaged, edited or has wrong fields.
        ValueError: The file is not a propgrad cell store.
    """

    def __init__(self, path: Path, settings: dict[str, Any]) -> None:
        self.path = Path(path)
        self.settings = json.loads(json.dumps(settings, sort_keys=True))
        self.hash = settings_hash(self.settings)
        self._records: dict[tuple[Any, ...], dict[str, Any]] = {}
        self._identities: dict[tuple[Any, ...], dict[str, Any]] = {}
        self._segments: dict[tuple[Any, ...], dict[str, Any]] = {}  # by key: a session's last record wins
        self._session: tuple[list[Any], TimingCheckpoints, dict[str, Any]] | None = None
        self.n_loaded = 0
        self.n_appended = 0
        self.dropped_partial_line = False
        self._synced_at: float | None = None  # time.monotonic() of the last fsync
        existed = self.path.exists()
        if not (existed and self._load()):
            if existed:
                self._warn_emptied()
            header = {"kind": HEADER, "format": STORE_FORMAT, "settings_hash": self.hash, "settings": self.settings}
            header[CHECKSUM_FIELD] = checksum(header)
            line = json.dumps(header, sort_keys=True) + "\n"
            atomic_write(self.path, lambda tmp: tmp.write_text(line, encoding="utf-8"))

    def _warn_emptied(self) -> None:
        """Say that an existing store without a complete line (emptied by hand) makes the run start from zero.

        The header is written atomically, so a store the run wrote never holds less than it.
        """
        beside = sorted(p.name for p in self.path.parent.glob("*") if p.is_file() and p.suffix in (".json", ".csv"))
        outputs = f"; {', '.join(beside)} beside it came from the lost cells and will be replaced" if beside else ""
        warnings.warn(
            f"{self.path} exists but holds no complete line (it was emptied or cut short), so every cell is "
            f"computed again{outputs}",
            EmptiedStoreWarning,
            stacklevel=3,
        )

    # -- loading -----------------------------------------------------------------------------
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
                if not isinstance(record, dict) or "kind" not in record:
                    raise ValueError("not a record")  # control flow: caught just below
            except ValueError:
                if number == len(complete) - 1 and number > 0 and not self.dropped_partial_line:
                    self.dropped_partial_line, keep = True, number
                    break
                raise CorruptStoreError(
                    f"{self.path} line {number + 1} is corrupt and is not the last line, so it "
                    f"is not an interrupted write. {_advice(number, None)}"
                ) from None
            parsed.append(record)
        self._check_header(parsed[0])
        for number, record in enumerate(parsed):
            problem = check_record(record, first=number == 0)
            if problem is not None:
                raise CorruptStoreError(f"{self.path} line {number + 1}: {problem}. {_advice(number, record)}")
        for record in parsed[1:]:
            self._replay(_without_checksum(record))
        if self.dropped_partial_line:
            good_end = sum(len(line) + 1 for line in complete[:keep])
            with open(self.path, "r+b") as fh:
                fh.truncate(good_end)
                fh.flush()
                os.fsync(fh.fileno())
        self.n_loaded = len(self._records)
        return True

    def _check_header(self, header: dict[str, Any]) -> None:
        if header.get("kind") != HEADER:
            raise CorruptStoreError(
                f"{self.path} is not a propgrad benchmark cell store (line 1 is no header). {_FRESH_HINT}."
            )
        if header.get("format") != STORE_FORMAT:
            raise SettingsMismatchError(
                f"{self.path} was written by another version of propgrad (store format "
                f"{header.get('format')!r}, this one reads {STORE_FORMAT}). Pass another --out, or --fresh "
                "to discard its results."
            )
        if header.get("settings_hash") != self.hash:
            old = header.get("settings", {})
            diffs = changed_keys(old, self.settings)
            detail = "; ".join(f"{k}: {old.get(k)!r} -> {self.settings.get(k)!r}" for k in diffs[:6])
            raise SettingsMismatchError(
                f"{self.path.parent} holds results of a benchmark run with different settings "
                f"({detail or 'settings hash differs'}). Pass another --out, or --fresh to discard them."
            )

    def _replay(self, record: dict[str, Any]) -> int:
        """Apply one line in file order; returns the number of cells an identity change dropped."""
        key = tuple(record["key"])
        if record["kind"] == SEGMENT:
            self._segments[key] = record
            return 0
        if record["kind"] != IDENTITY:
            self._records[key] = record
            return 0
        previous = self._identities.get(key)
        self._identities[key] = record
        if previous is None or previous["identity"] == record["identity"]:
            return 0
        stale = [k for k in self._records if _matches(k, record["match"])]
        for k in stale:
            del self._records[k]
        return len(stale)

    # -- reading -----------------------------------------------------------------------------
    def __contains__(self, key: Iterable[Any]) -> bool:
        return tuple(key) in self._records

    def __len__(self) -> int:
        return len(self._records)

    def get(self, key: Iterable[Any]) -> dict[str, Any] | None:
        """The cell stored under ``key``, or None."""
        return self._records.get(tuple(key))

    def is_finished(self, key: Iterable[Any]) -> bool:
        """Whether ``key`` holds a cell that needs no more work (stored, and not a recorded error)."""
        record = self._records.get(tuple(key))
        return record is not None and record.get("error") is None

    def records(self, kind: str | None = None) -> list[dict[str, Any]]:
        """All cells (of one ``kind``), sorted by key."""
        chosen = [r for r in self._records.values() if kind is None or r["kind"] == kind]
        return sorted(chosen, key=lambda r: [str(k) if not isinstance(k, int) else f"{k:012d}" for k in r["key"]])

    def identity(self, key: Iterable[Any]) -> dict[str, Any] | None:
        """The identity stored last under ``key`` (see :meth:`bind_identity`), or None."""
        record = self._identities.get(tuple(key))
        return None if record is None else record["identity"]

    def segments(self) -> list[dict[str, Any]]:
        """The timing segments, one per session (its last record), in the order the sessions began."""
        return list(self._segments.values())

    # -- writing -----------------------------------------------------------------------------
    def append(self, records: list[dict[str, Any]]) -> None:
        """Write finished cells at once (synced as the module doc says), then keep them in memory.

        Each record needs ``kind`` (str, not a store kind) and ``key`` (list of str/int). A key
        already stored is an error (nothing is computed twice), unless its stored cell records an
        ``error``: a retry replaces it (the newer line wins on load).
        """
        if not records:
            return
        for record in records:
            if record.get("kind") in META_KINDS:  # internal: a bug in the harness if reached
                raise ValueError(f"{record['kind']!r} is a store line kind, not a cell kind")
            key = tuple(record["key"])
            if self.is_finished(key):  # internal: a bug in the harness if reached
                raise ValueError(f"cell {key} is already stored in {self.path}")
        checkpoint = self._checkpoint(self.n_appended + len(records))
        self._write(records + ([checkpoint] if checkpoint else []), sync=checkpoint is not None)
        self.n_appended += len(records)
        if checkpoint:
            self._replay(checkpoint)

    def bind_identity(self, key: Sequence[Any], identity: dict[str, Any], match: Sequence[Sequence[Any]]) -> int:
        """Record what produces the cells whose keys ``match``; a changed identity drops those cells.

        Args:
            key: The identity's key, e.g. ``["identity", "baseline", "lime"]``.
            identity: JSON-serialisable description (class, distribution, version, settings ...).
            match: ``[position, value]`` pairs a cell key must all satisfy to be covered.

        Returns:
            How many stored cells were dropped (0 if the identity is new or unchanged).
        """
        identity = json.loads(json.dumps(identity, sort_keys=True))
        if self.identity(key) == identity:
            return 0
        record = {"kind": IDENTITY, "key": list(key), "identity": identity, "match": [list(m) for m in match]}
        self._write([record])
        return self._replay(record)

    def track_session(self, checkpoints: TimingCheckpoints, **info: Any) -> None:
        """Write this session's timing with the cells it appends, whenever ``checkpoints`` says it is due.

        A session killed without a chance to call :meth:`add_segment` (SIGKILL, a power cut) then
        still counts the cells and time up to its last checkpoint (``interrupted`` true); the
        segment :meth:`add_segment` writes at the end replaces the checkpoints.

        Args:
            checkpoints: When, and what timing, to write (:class:`~propgrad.harness.timing.TimingCheckpoints`).
            **info: Fields of every checkpoint (such as ``started``).
        """
        self._session = ([SEGMENT, len(self._segments)], checkpoints, dict(info))

    def _checkpoint(self, cells_computed: int) -> dict[str, Any] | None:
        """The tracked session's segment record if a checkpoint is due, else None."""
        if self._session is None:
            return None
        key, checkpoints, info = self._session
        timing = checkpoints.due()
        if timing is None:
            return None
        return {
            "kind": SEGMENT,
            "key": key,
            "cells_computed": int(cells_computed),
            "timing": timing,
            **info,
            "interrupted": True,
        }

    def add_segment(self, cells_computed: int, timing: dict[str, float], **info: Any) -> None:
        """Record the timing of one session that computed ``cells_computed`` cells (replacing its checkpoints)."""
        key = self._session[0] if self._session is not None else [SEGMENT, len(self._segments)]
        record = {"kind": SEGMENT, "key": key, "cells_computed": int(cells_computed), "timing": dict(timing), **info}
        self._session = None
        self._write([record])
        self._replay(record)

    def _write(self, records: list[dict[str, Any]], sync: bool = True) -> None:
        """Append lines with checksums; a write that fails half-way is cut off again.

        The file is synced when ``sync`` is true, or when :data:`SYNC_SECONDS` have passed since
        the last sync (or none was made), which makes every earlier line durable too. Only an
        incomplete write is cut off: lines written in full stay when an interrupt (Ctrl-C, SIGTERM)
        arrives during the fsync, as they would had it come a moment later.
        """
        stored = []
        for record in records:
            body = json.loads(json.dumps(record, allow_nan=True))
            body.pop(CHECKSUM_FIELD, None)
            stored.append(body)
        lines = [json.dumps({**r, CHECKSUM_FIELD: checksum(r)}, sort_keys=True, allow_nan=True) for r in stored]
        data = memoryview(("\n".join(lines) + "\n").encode("utf-8"))
        fd = os.open(self.path, os.O_WRONLY)
        try:
            start = os.lseek(fd, 0, os.SEEK_END)
            try:
                while data:
                    data = data[os.write(fd, data) :]
                now = time.monotonic()
                if sync or self._synced_at is None or now - self._synced_at >= SYNC_SECONDS:
                    os.fsync(fd)
                    self._synced_at = now
            except BaseException:  # an interrupt mid-write must not leave half a line before the next
                if data:
                    os.ftruncate(fd, start)
                raise
        finally:
            os.close(fd)
        for record in stored:
            if record["kind"] not in META_KINDS:
                self._records[tuple(record["key"])] = record


def _advice(number: int, record: Any) -> str:
    """What to do about the damaged line ``number`` (0-based) holding ``record`` (None: it is not JSON)."""
    if number == 0:
        return (
            "Line 1 is the header (the settings the results belong to), so deleting it does not help; "
            f"{_FRESH_HINT[0].lower()}{_FRESH_HINT[1:]}."
        )
    kind = record.get("kind") if isinstance(record, dict) else None
    what = {
        IDENTITY: "delete that line (the next run records the identity again; the cells before it are kept)",
        SEGMENT: "delete that line: only one session's timing is lost",
    }.get(kind, "delete that line to recompute the cell on it (the lines after it are kept)")
    return f"To keep the other results, {what}; or {_FRESH_HINT[0].lower()}{_FRESH_HINT[1:]}."


def _without_checksum(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != CHECKSUM_FIELD}
