"""Benchmark suites for the "predict the flip" evaluation."""

from propgrad.suites.base import BenchmarkSuite

__all__ = ["BenchmarkSuite"]
