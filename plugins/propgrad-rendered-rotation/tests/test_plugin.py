"""Registration through the entry point, and propgrad's own checks of a source."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

from propgrad.testing import check_source
from propgrad_rendered_rotation import RenderedRotationSource


def test_entry_point_registers_the_source():
    points = [ep for ep in importlib.metadata.entry_points(group="propgrad") if ep.name == "rendered_rotation"]
    assert len(points) == 1, "pip install -e plugins/propgrad-rendered-rotation first"
    registered: list[type] = []
    points[0].load().register_sources(registered.append)
    assert registered == [RenderedRotationSource]
    assert (RenderedRotationSource.name, RenderedRotationSource.unit) == ("rendered_rotation", "degree")


def test_importing_the_plugin_loads_neither_pyrender_nor_trimesh():
    code = (
        "import sys, propgrad_rendered_rotation, propgrad_rendered_rotation.plugin; "
        "print(sorted(m for m in ('pyrender', 'trimesh', 'OpenGL') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_propgrad_source_checks_pass(blank):
    seq = check_source(RenderedRotationSource, blank, mesh="mug", axis="z", step=30)
    assert len(seq) == 12 and seq.periodic and seq.metadata["period"] == 360.0
