"""Attribution baselines compared against the property score in the benchmark."""

from propgrad.baselines.base import AttributionBaseline, change_score

__all__ = ["AttributionBaseline", "change_score"]
