"""What every suite's validity checks share: the check record and readers of a run's results.

A benchmark on which every method scores the same, or on which the property score wins only by
construction, shows nothing. A suite states what its flip tables must show to mean something as
checks on a run's ``results.json``, each with the measured numbers, so anyone can rerun them on
their own results: a suite's :meth:`~propgrad.suites.base.BenchmarkSuite.validity_checks` (the fur
suite's are in :mod:`propgrad.suites.fur_validity`), run by ``propgrad validate RUN``. This module reads the results
as plain JSON data: suites sit below the harness and do not import it.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from propgrad.errors import InvalidParameterError

REFERENCE_METHODS = ("property_score", "output_reference")
"""Methods in the flip tables that are not attribution baselines."""


@dataclass(frozen=True)
class Check:
    """One validity check: what it asks, whether it passed, and the numbers behind it."""

    name: str
    passed: bool
    detail: str

    def line(self) -> str:
        """``PASS name: detail`` (or ``FAIL``) for the terminal."""
        return f"{'PASS' if self.passed else 'FAIL'} {self.name}: {self.detail}"


def checked_thresholds(suite: str, given: Mapping[str, Any] | None, declared: Mapping[str, float]) -> dict[str, float]:
    """The thresholds a suite's checks use: ``declared`` (the defaults) with ``given`` over them.

    Args:
        suite: The suite's name (for the message).
        given: Thresholds the caller sets by name (None: the defaults).
        declared: Every threshold the suite's checks take, with its default.

    Returns:
        Every declared threshold, as a float.

    Raises:
        InvalidParameterError: A name the suite does not declare (naming those it does), or a
            value that is not a finite number.
    """
    from propgrad.core.validation import check_number
    from propgrad.errors import InvalidParameterError

    given = dict(given or {})
    unknown = sorted(set(given) - set(declared))
    if unknown:
        names = ", ".join(declared) if declared else "none: it states no validity checks"
        raise InvalidParameterError(
            f"suite {suite!r} has no validity threshold {', '.join(map(repr, unknown))}; its thresholds: {names}"
        )
    return {name: check_number(given.get(name, default), f"threshold {name}") for name, default in declared.items()}


def summary_block(results: Mapping[str, Any], suite: str, intervention: str) -> Mapping[str, Any]:
    """The summary tables of one (suite, intervention) in a run's results.

    Raises:
        ValueError: The results hold no such block (naming the suites they do hold).
    """
    try:
        return results["summary"][suite][intervention]
    except KeyError:
        raise InvalidParameterError(
            f"results hold no {suite!r} / {intervention!r} block; run `propgrad benchmark "
            f"--suite {suite}` first (found suites: {sorted(results.get('summary', {}))})"
        ) from None


def property_records(
    results: Mapping[str, Any], suite: str, intervention: str, model: str
) -> dict[int, Mapping[str, Any]]:
    """The per-image property records of one (suite, intervention, model), keyed by image index.

    Records are read from ``results["records"]`` by their key
    ``["property", suite, intervention, model, image]``.

    Raises:
        ValueError: The results hold no such record, or two records for one image.
    """
    found: dict[int, Mapping[str, Any]] = {}
    for record in results.get("records", []):
        key = record.get("key", [])
        if record.get("kind") != "property" or list(key[:4]) != ["property", suite, intervention, model]:
            continue
        image = int(key[4])
        if image in found:
            raise InvalidParameterError(
                f"two property records for {suite!r} / {intervention!r} / {model!r}, image {image}"
            )
        found[image] = record
    if not found:
        raise InvalidParameterError(f"results hold no property records for {suite!r} / {intervention!r} / {model!r}")
    return found


def best_baseline(row: Mapping[str, Mapping[str, Any]]) -> tuple[str, float] | None:
    """The attribution baseline with the highest mean accuracy in one flip-table row (None if none)."""
    scored = [
        (m, e["accuracy_mean"])
        for m, e in row.items()
        if m not in REFERENCE_METHODS and e.get("available") and e.get("accuracy_mean") is not None
    ]
    return max(scored, key=lambda item: item[1]) if scored else None


def report_runs(
    paths: Sequence[Path], evaluate: Callable[[Mapping[str, Any]], tuple[Sequence[Check], Sequence[str]]]
) -> int:
    """Print the checks and notes ``evaluate`` gives for each run's ``results.json``; the validity scripts' body.

    Over several runs, also how many passed each check. Returns the exit code: 0 when every check
    of every run passed, 1 when one failed, 2 when a file cannot be read or checked.
    """
    runs = []
    for path in paths:
        try:
            results = json.loads(Path(path).read_text(encoding="utf-8"))
            checks, info = evaluate(results)
        except (OSError, ValueError) as exc:
            print(f"error: cannot check {path}: {exc}", file=sys.stderr)
            return 2
        settings = results.get("settings", {})
        print(f"{path}: quick={settings.get('quick')} seed={settings.get('seed')}")
        for line in [c.line() for c in checks] + list(info):
            print(line)
        runs.append(checks)
    if len(runs) > 1:
        print(f"\nover {len(runs)} runs:")
        for k, check in enumerate(runs[0]):
            print(f"{sum(run[k].passed for run in runs)}/{len(runs)} passed: {check.name}")
    return 0 if all(c.passed for run in runs for c in run) else 1
