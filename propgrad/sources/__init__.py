"""Intervention sources: ordered sequences of images in which one property changes."""

from propgrad.sources.base import InterventionSequence, InterventionSource

__all__ = ["InterventionSequence", "InterventionSource"]
