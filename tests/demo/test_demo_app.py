"""The demo's page (Gradio Blocks) without a server: its inputs and the uploads each session leaves."""

from __future__ import annotations

import inspect

import pytest

pytest.importorskip("gradio")

from propgrad.demo.app import PAGE_INPUTS, SessionUploads, api_name, build_app  # noqa: E402
from propgrad.demo.models import ModelCatalogue  # noqa: E402
from propgrad.plugins import get_source, list_sources  # noqa: E402
from propgrad.plugins.parameters import parameter_specs  # noqa: E402


def test_the_explain_api_names_every_input_of_every_source(tmp_path):
    app = build_app(ModelCatalogue(suites=[]), tmp_path)
    endpoints = {fn.api_name: fn for fn in app.fns.values()}
    public = {name for name, fn in endpoints.items() if fn.api_visibility == "public"}
    assert public == {"explain", "step"}  # showing a source's inputs or closing the page is no API of it
    names = list(inspect.signature(endpoints["explain"].fn).parameters)
    expected = [api_name(s, spec.name) for s in list_sources() for spec in parameter_specs(get_source(s))]
    assert names == [*PAGE_INPUTS, *expected, "request", "progress"]
    assert "gaussian_vignette__steps" in names and "alpha_patch__scale" in names


def test_a_sessions_uploads_are_deleted_when_its_page_closes(tmp_path):
    uploads = SessionUploads(tmp_path)
    mine, theirs = tmp_path / "aaa" / "mine.png", tmp_path / "bbb" / "theirs.png"
    for path in (mine, theirs):
        path.parent.mkdir()
        path.write_bytes(b"png")
    uploads.remember("session-1", str(mine))
    uploads.remember("session-2", str(theirs))
    uploads.forget("session-1")
    assert not mine.exists() and not mine.parent.exists()  # the folder Gradio made for it too
    assert theirs.exists()  # another session's upload stays until its own page closes
    uploads.forget("session-1")  # twice: nothing left to delete, no error


def test_a_file_outside_the_servers_folder_is_never_deleted(tmp_path):
    outside = tmp_path / "elsewhere.png"
    outside.write_bytes(b"png")
    uploads = SessionUploads(tmp_path / "server")
    (tmp_path / "server").mkdir()
    uploads.remember("session-1", str(outside))
    uploads.forget("session-1")
    assert outside.exists()
