"""``propgrad demo`` at the door: nothing imports Gradio early, a missing extra and a public host are one line."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from propgrad.cli import main

NEEDS_GRADIO = "propgrad demo: error: the demo needs Gradio: pip install 'propgrad[demo]'"


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)


def loaded_after(snippet: str) -> dict[str, bool]:
    """Whether Gradio and the demo package were imported after running ``snippet`` in a fresh interpreter."""
    report = "print(json.dumps({m: m in sys.modules for m in ('gradio', 'propgrad.demo')}))"
    out = run_python(f"import json, sys\n{snippet}\n{report}")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])


def test_import_propgrad_imports_neither_gradio_nor_the_demo():
    assert loaded_after("import propgrad; propgrad.list_sources()") == {"gradio": False, "propgrad.demo": False}


def test_the_parser_and_help_import_neither():
    snippet = (
        "from propgrad.cli import build_parser, main\n"
        "assert 'demo' in build_parser()._subparsers._group_actions[0].choices\n"
        "for argv in (['--help'], ['demo', '--help']):\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass"
    )
    assert loaded_after(snippet) == {"gradio": False, "propgrad.demo": False}


def test_without_gradio_the_command_says_which_extra_in_one_line():
    """``import gradio`` fails (``sys.modules['gradio'] = None``): exit 2 and one line naming the extra."""
    out = run_python(
        "import sys; sys.modules['gradio'] = None\n"
        "from propgrad.cli import main\n"
        "sys.exit(main(['demo', '--port', '1']))"
    )
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines()[-1] == NEEDS_GRADIO
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "::"])
def test_a_public_host_is_refused_before_anything_starts(host, capsys):
    assert main(["demo", "--host", host]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"propgrad demo: error: --host {host!r}: the demo serves on a loopback address only")


def test_a_port_out_of_range_is_refused(capsys):
    assert main(["demo", "--port", "70000"]) == 2
    assert "--port must be a port number from 1 to 65535, got 70000" in capsys.readouterr().err


def test_a_port_in_use_is_refused(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["demo", "--port", str(port)]) == 2
    assert f"--port {port} is in use on 127.0.0.1; choose another" in capsys.readouterr().err
