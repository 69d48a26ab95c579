"""``propgrad track``: the property score along a model's training checkpoints (the paper's Sec. 4.3).

:class:`~propgrad.track.tracking.PropertyTracker` scores one intervention sequence per image under
every checkpoint (found and loaded by :mod:`propgrad.track.checkpoints`); the records and the
paper's Tab. 12 are in :mod:`propgrad.track.records`, the figures in :mod:`propgrad.track.figures`,
the output folder in :mod:`propgrad.track.report`, TensorBoard and MLflow logging in
:mod:`propgrad.track.logging_sinks` and the built-in demonstration in :mod:`propgrad.track.demo`.
"""

from __future__ import annotations

from propgrad.track.records import CheckpointScore, TrackSummary
from propgrad.track.tracking import Keeping, PropertyTracker, TrackResult

__all__ = ["CheckpointScore", "Keeping", "PropertyTracker", "TrackResult", "TrackSummary"]
