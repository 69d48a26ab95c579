"""Do two benchmark runs hold the same records? (``results.json`` of each, timing ignored.)

Compares every property and baseline record of two ``propgrad benchmark`` runs field by field,
for example the default run before and after a refactoring that must not change results. Fields
only one run has (such as a checksum added by a newer store format) are listed, not compared.
The models are compared by their weights hash (``versions.model_weights``): runs on other
models are named model by model, since their records are expected to differ. Exits 1 when a
record is missing from one run, a shared field differs, or a model's weights differ.

Usage::

    python benchmarks/compare_results.py BEFORE/results.json AFTER/results.json
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any


def records_by_key(results: dict[str, Any]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The property and baseline records of a results.json, by their key."""
    return {tuple(r["key"]): r for r in results["records"] if r["kind"] in ("property", "baseline")}


def model_weights(results: dict[str, Any]) -> dict[str, str] | None:
    """Each model's weights hash by ``"suite/model"``; None when the run did not record them (older runs)."""
    recorded = results.get("versions", {}).get("model_weights")
    if not isinstance(recorded, dict):
        return None
    return {f"{suite}/{model}": digest for suite, models in recorded.items() for model, digest in models.items()}


def compare_models(before: dict[str, Any], after: dict[str, Any]) -> list[str] | None:
    """One line per model whose weights differ (or that only one run has); None if a run has no hashes."""
    old, new = model_weights(before), model_weights(after)
    if old is None or new is None:
        return None
    lines = []
    for name in sorted(set(old) | set(new)):
        if old.get(name) != new.get(name):
            lines.append(f"{name}: weights {old.get(name, 'absent')} -> {new.get(name, 'absent')}")
    return lines


def relative_difference(a: Any, b: Any) -> float | None:
    """|a - b| / max(|a|, |b|) for two numbers, None for anything else."""
    if isinstance(a, bool) or isinstance(b, bool) or not all(isinstance(x, (int, float)) for x in (a, b)):
        return None
    scale = max(abs(a), abs(b))
    return 0.0 if scale == 0 else abs(a - b) / scale if math.isfinite(scale) else math.inf


def compare(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Counts of identical and differing records, and the largest relative difference per field."""
    old, new = records_by_key(before), records_by_key(after)
    shared = sorted(set(old) & set(new), key=str)
    differing, worst, only_new_fields = 0, {}, set()
    for key in shared:
        a, b = old[key], new[key]
        only_new_fields |= set(b) - set(a)
        fields = sorted(set(a) & set(b))
        changed = [f for f in fields if a[f] != b[f]]
        differing += bool(changed)
        for f in changed:
            label = f"{a['kind']}/{a.get('method', '')}/{f}".replace("//", "/")
            rel = relative_difference(a[f], b[f])
            worst[label] = max(worst.get(label, 0.0), math.inf if rel is None else rel)
    return {
        "records_before": len(old),
        "records_after": len(new),
        "only_before": len(set(old) - set(new)),
        "only_after": len(set(new) - set(old)),
        "identical": len(shared) - differing,
        "differing": differing,
        "largest_relative_difference": worst,
        "fields_only_after": sorted(only_new_fields),
        "models_differing": compare_models(before, after),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", type=Path, help="results.json of the first run")
    parser.add_argument("after", type=Path, help="results.json of the second run")
    args = parser.parse_args(argv)
    report = compare(*(json.loads(p.read_text(encoding="utf-8")) for p in (args.before, args.after)))
    print(
        f"{report['records_before']} records before, {report['records_after']} after; "
        f"{report['identical']} identical, {report['differing']} differing, "
        f"{report['only_before']} only before, {report['only_after']} only after"
    )
    for field, rel in sorted(report["largest_relative_difference"].items()):
        print(f"  {field}: largest relative difference {rel:.3g}")
    if report["fields_only_after"]:
        print(f"  fields only after (not compared): {', '.join(report['fields_only_after'])}")
    models = report["models_differing"]
    if models is None:
        print("models: not compared (a run has no versions.model_weights)")
    elif models:
        print(f"different models ({len(models)}): the two runs did not use the same weights")
        for line in models:
            print(f"  {line}")
    else:
        print("models: the same weights in both runs")
    return 1 if report["differing"] or report["only_before"] or report["only_after"] or models else 0


if __name__ == "__main__":
    raise SystemExit(main())
