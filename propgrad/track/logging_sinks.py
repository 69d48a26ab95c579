"""Where users watch training: each tracked checkpoint's scores as TensorBoard scalars or MLflow metrics.

Both are optional (the ``track`` extra: ``pip install propgrad[track]``) and imported on first use;
without the package a :class:`MissingLoggerError` says what to install. A checkpoint is filed
under its training step (else its position in the ordered list), one series per image and scored
column: ``<property>/image<i>[/column<c>]/score``, ``.../p`` and ``.../flips``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from propgrad.errors import InvalidParameterError, PropgradError
from propgrad.track.records import CheckpointScore

INSTALL_HINT = "pip install propgrad[track]"


class MissingLoggerError(PropgradError, ImportError):
    """The logging package of a sink is not installed."""


def metric_values(score: CheckpointScore) -> list[tuple[str, float]]:
    """The ``(tag, value)`` pairs of one image's scores under one checkpoint."""
    base = f"{_tag_part(score.property)}/image{score.image}"
    pairs = []
    for k, column in enumerate(score.columns):
        prefix = base if len(score.columns) == 1 or column is None else f"{base}/column{column}"
        pairs += [(f"{prefix}/score", float(score.score[k])), (f"{prefix}/p", float(score.p[k]))]
    pairs.append((f"{base}/flips", float(score.flips)))
    return pairs


def _tag_part(text: str) -> str:
    """A tag part MLflow and TensorBoard both accept: letters, digits, ``_-.`` and spaces (others become ``_``)."""
    return "".join(c if c.isalnum() or c in "_-. " else "_" for c in text) or "property"


class TensorBoardSink:
    """Scores as TensorBoard scalars: ``SummaryWriter(log_dir).add_scalar(tag, value, global_step)``.

    Args:
        log_dir: The event folder (TensorBoard's ``--logdir``).

    Raises:
        MissingLoggerError: tensorboard is not installed.
    """

    def __init__(self, log_dir: str | Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise MissingLoggerError(
                f"--tensorboard needs the tensorboard package: {INSTALL_HINT} (or pip install tensorboard)"
            ) from None
        self.log_dir = Path(log_dir)
        self.writer = SummaryWriter(log_dir=str(self.log_dir))

    def log(self, scores: Sequence[CheckpointScore]) -> None:
        """Add one checkpoint's scores (one per image) at its global step."""
        for score in scores:
            for tag, value in metric_values(score):
                self.writer.add_scalar(tag, value, global_step=score.checkpoint.global_step)
        self.writer.flush()

    def close(self) -> None:
        """Flush and close the event file."""
        self.writer.close()


class MlflowSink:
    """Scores as MLflow metrics of one run: ``log_metric(key, value, step=)``.

    Args:
        tracking_uri: Where MLflow keeps runs; a local ``file:`` URI works offline (MLflow 3 keeps its
            file store behind ``MLFLOW_ALLOW_FILE_STORE``, which a ``file:`` URI sets for this process
            unless it is set already).
        experiment: The experiment's name (created when missing).
        run_name: The run's name.
        params: Parameters logged with the run (the model, source, checkpoints ...).

    Raises:
        MissingLoggerError: mlflow (or mlflow-skinny) is not installed.
        InvalidParameterError: MLflow cannot log at ``tracking_uri``.
    """

    def __init__(
        self,
        tracking_uri: str,
        experiment: str = "propgrad-track",
        run_name: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> None:
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise MissingLoggerError(
                f"--mlflow needs the mlflow package: {INSTALL_HINT} (or pip install mlflow-skinny)"
            ) from None
        if tracking_uri.startswith("file:") or "://" not in tracking_uri:
            # MLflow 3 keeps its file store in maintenance mode behind this switch; a local folder is
            # what works offline, so a file: URI turns it on for this process.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        try:
            self.client = MlflowClient(tracking_uri=tracking_uri)
            found = self.client.get_experiment_by_name(experiment)
            experiment_id = found.experiment_id if found is not None else self.client.create_experiment(experiment)
            self.run_id = self.client.create_run(experiment_id, run_name=run_name).info.run_id
        except Exception as exc:  # noqa: BLE001 - MLflow's own errors (a bad URI, an unreachable server) in one line
            first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
            raise InvalidParameterError(f"--mlflow {tracking_uri!r}: MLflow cannot log there: {first[:300]}") from exc
        for key, value in (params or {}).items():
            self.client.log_param(self.run_id, key, str(value)[:500])

    def log(self, scores: Sequence[CheckpointScore]) -> None:
        """Log one checkpoint's scores (one per image) at its global step."""
        for score in scores:
            for key, value in metric_values(score):
                self.client.log_metric(self.run_id, key, value, step=score.checkpoint.global_step)

    def close(self) -> None:
        """End the run."""
        self.client.set_terminated(self.run_id)
