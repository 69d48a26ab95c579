"""Quantus metric columns of the benchmark (``propgrad benchmark --quantus-metrics ...``).

For every suite, model and baseline, each requested Quantus metric (by its class name, one of
:data:`propgrad.explain.quantus.SUPPORTED_METRICS` that needs no segmentation mask) is computed by
:func:`propgrad.explain.quantus.evaluate` on the same pool images the flip tables use, explaining the same
class (the model's decision on the original image) with the same baseline objects. The result per
cell is the mean and standard deviation over the images; a metric that fails is recorded with
its error and never stops the run. These scores are recomputed by every run (they are not kept in
the resumable cell store).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from propgrad.baselines.base import AttributionBaseline
from propgrad.core.forward import model_device, run_model
from propgrad.explain.quantus import NEEDS_MASK, QuantusExplainer, QuantusMetricError, evaluate, metric_class

#: Images per Quantus call (a metric's cost grows with its batch; the scores do not depend on it).
QUANTUS_BATCH = 8


def check_benchmark_metrics(names: Sequence[str]) -> tuple[str, ...]:
    """The metric names, checked: supported by propgrad, no repeats, and usable without masks.

    Raises:
        QuantusMetricError: For an unknown, unsupported or mask-needing name (listing the usable ones).
    """
    names = tuple(names)
    usable = [name for name in _supported() if name not in NEEDS_MASK]
    for name in names:
        if name in NEEDS_MASK:
            raise QuantusMetricError(
                f"Quantus metric {name!r} needs segmentation masks (s_batch), which the benchmark's test images "
                f"do not have; usable: {', '.join(usable)}"
            )
        try:
            metric_class(name)
        except QuantusMetricError as exc:
            raise QuantusMetricError(f"--quantus-metrics: {exc}") from None
    if len(set(names)) != len(names):
        raise QuantusMetricError(f"quantus_metrics must not repeat a name, got {list(names)}")
    return names


def quantus_scores(
    suite: str,
    models: Mapping[str, nn.Module],
    images: torch.Tensor,
    pool: Sequence[int],
    baselines: Mapping[str, AttributionBaseline],
    metrics: Sequence[str],
) -> list[dict[str, Any]]:
    """One record per (model, baseline, metric): mean, std and count of the per-image scores.

    Args:
        suite: The suite's name (stored in each record).
        models: The suite's models by name.
        images: The suite's test images (N, 3, H, W) in [0, 1].
        pool: Indices of the evaluated images (the flip tables' pool).
        baselines: The run's baseline objects by name.
        metrics: Quantus class names (checked with :func:`check_benchmark_metrics`).

    Returns:
        Records ``{"suite", "model", "baseline", "metric", "mean", "std", "n", "error"}``; ``mean``
        and ``std`` are None (with the ``error`` message) when the metric failed.
    """
    records = []
    chosen = images[list(pool)]
    for model_name, model in models.items():
        device = model_device(model, chosen.device)
        x = chosen.to(device)
        targets = run_model(model, x).argmax(dim=1)  # the explained class of the property cells
        for base_name, baseline in baselines.items():
            explainer = QuantusExplainer(baseline)
            for metric in metrics:
                record: dict[str, Any] = {"suite": suite, "model": model_name, "baseline": base_name, "metric": metric}
                try:
                    scores = np.concatenate(
                        [
                            evaluate(
                                metric,
                                model,
                                x[i : i + QUANTUS_BATCH],
                                targets[i : i + QUANTUS_BATCH],
                                baseline=explainer,
                            )
                            for i in range(0, x.shape[0], QUANTUS_BATCH)
                        ]
                    )
                    record.update(mean=float(scores.mean()), std=float(scores.std()), n=int(scores.size), error=None)
                except Exception as exc:  # one failing metric or baseline never takes the run down
                    record.update(mean=None, std=None, n=0, error=f"{type(exc).__name__}: {exc}")
                records.append(record)
    return records


def format_quantus_table(records: Sequence[Mapping[str, Any]], *, markdown: bool = False) -> str:
    """The Quantus scores as one table per suite: a row per model and metric, a column per baseline."""
    if not records:
        return ""
    out = []
    for suite in dict.fromkeys(r["suite"] for r in records):
        rows = [r for r in records if r["suite"] == suite]
        baselines = list(dict.fromkeys(r["baseline"] for r in rows))
        cells = {(r["model"], r["metric"], r["baseline"]): r for r in rows}
        keys = list(dict.fromkeys((r["model"], r["metric"]) for r in rows))
        header = ["model", "Quantus metric", *baselines]
        body = [[model, metric, *(_cell(cells.get((model, metric, b))) for b in baselines)] for model, metric in keys]
        title = f"Attribution quality (Quantus, mean ± std over the pool images), suite {suite}"
        if markdown:
            lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(row) + " |" for row in body]
        else:
            widths = [max(len(str(x)) for x in col) for col in zip(header, *body)]
            lines = [title, "  ".join(h.ljust(w) for h, w in zip(header, widths))]
            lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in body]
        errors = [r for r in rows if r["error"]]
        lines += [""] + [f"- {r['model']} / {r['baseline']} / {r['metric']}: {r['error']}" for r in errors]
        out.append("\n".join(lines).rstrip())
    return "\n\n".join(out) + "\n"


def _cell(record: Mapping[str, Any] | None) -> str:
    if record is None or record["mean"] is None or not math.isfinite(record["mean"]):
        return "failed" if record is not None else "-"
    return f"{record['mean']:.3g} ± {record['std']:.2g}"


def _supported() -> list[str]:
    from propgrad.explain.quantus import SUPPORTED_METRICS

    return list(SUPPORTED_METRICS)


def runners_quantus_scores(runners: Mapping[str, Any], metrics: Sequence[str]) -> list[dict[str, Any]]:
    """:func:`quantus_scores` of every finished suite runner (its models, test images, pool and baselines)."""
    if not metrics:
        return []
    return [
        record
        for name, runner in runners.items()
        for record in quantus_scores(name, runner.models, runner.images, runner.pool, runner.baselines, metrics)
    ]
