"""benchmarks/track_speed.py runs in a small CPU mode and reports the track's own timing and memory."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "track_speed.py"


def test_the_speed_script_times_a_tiny_track_through_the_tracker(tmp_path) -> None:
    spec = importlib.util.spec_from_file_location("track_speed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    r = module.measure(n_checkpoints=3, n_images=2, size=16, steps=5, n_permutations=99, folder=tmp_path / "ck")
    assert r["computed"] == 3 and r["rows"] == 3 * 2
    assert len(list((tmp_path / "ck").glob("*.pt"))) == 3
    parts = r["load_s"] + r["forward_s"] + r["test_s"] + r["generate_s"]
    assert 0 < r["load_s"] and 0 < r["forward_s"] and parts <= r["track_s"] <= r["total_s"]
    assert r["ratio"] == r["total_s"] / (r["load_s"] + r["forward_s"]) >= 1
    assert r["all_checkpoints_bytes"] == 3 * r["checkpoint_bytes"] > 0
    assert r["peak_rss_after"] >= r["peak_rss_before"] > 0
