"""``propgrad demo`` served for real on a free local port and driven with Gradio's Python client, offline."""

from __future__ import annotations

import base64
import html
import io
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from propgrad.cli.explain_report import verdict_rows
from propgrad.core.images import example_image, resize_shorter_side
from propgrad.demo.models import EXAMPLE_LABEL
from propgrad.demo.server import free_port
from propgrad.example_model import colour_balance_net
from propgrad.explain.explainer import PropertyGradient
from propgrad.sources.gaussian_vignette import GaussianVignetteSource
from propgrad.stats.settings import test_settings as make_test_settings

pytest.importorskip("gradio_client")
pytestmark = pytest.mark.slow
STARTUP_S = 180.0
CLI = "import sys; from propgrad.cli import main; sys.exit(main())"
#: A small, quick explanation: 32 px, 8 steps, 200 shuffles, the placebo test on with 20 placebos.
SMALL = {
    "model": EXAMPLE_LABEL,
    "size": 32,
    "source": "gaussian_vignette",
    "gaussian_vignette__steps": 8,
    "permutations": 200,
    "placebos": 20,
    "alpha": 0.1,
    "baselines": ["integrated_gradients"],
}


class Server:
    """A ``propgrad demo`` process, its URL and its temporary folder (from the two lines it prints).

    Once it has started, its stdout and stderr are drained into ``output`` by threads of their own: a pipe
    nobody reads fills up (64 KiB) and blocks the server's next write, a progress bar's or a log line's,
    which could keep it from ever stopping."""

    def __init__(self, process: subprocess.Popen[str], url: str, folder: Path) -> None:
        self.process, self.url, self.folder = process, url, folder
        self.output: list[str] = []
        self.drains = [
            threading.Thread(target=self.output.extend, args=(stream,), daemon=True)
            for stream in (process.stdout, process.stderr)
        ]
        for drain in self.drains:
            drain.start()

    def stopped(self, timeout: float) -> int:
        """The exit code once the process has ended (at most ``timeout`` s), its output read to the end."""
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGABRT)  # faulthandler (PYTHONFAULTHANDLER) prints every thread's stack
            self.process.wait(30)
            for drain in self.drains:
                drain.join(10)
            raise AssertionError(
                f"the demo did not stop within {timeout} s; its output and stacks:\n{''.join(self.output)}"
            ) from None
        for drain in self.drains:
            drain.join(10)
        return code


def _ctrl_c_as_in_a_terminal() -> None:
    """In the server's process before it starts: SIGINT back to its default action. A command started in the
    background by a shell without job control (as CI scripts run) inherits SIGINT ignored, and Python then
    installs no KeyboardInterrupt handler, so the Ctrl+C this module sends would never reach the server."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1"}
    process = subprocess.Popen(
        [sys.executable, "-c", CLI, "demo", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=_ctrl_c_as_in_a_terminal,
    )
    url = folder = None
    deadline = time.monotonic() + STARTUP_S
    while (url is None or folder is None) and time.monotonic() < deadline and process.poll() is None:
        line = process.stdout.readline()
        if match := re.search(r"serving on (http://\S+/)", line):
            url = match.group(1)
        if match := re.search(r"uploads stay in (\S+) \(yours only\)", line):
            folder = Path(match.group(1))
    if url is None or folder is None:
        process.kill()
        pytest.fail(f"the demo did not start: {process.stderr.read()}")
    assert url == f"http://127.0.0.1:{port}/"
    yield Server(process, url, folder)
    if process.poll() is None:  # as Ctrl+C, which removes the server's folder; killed if that fails
        process.send_signal(signal.SIGINT)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(30)


def pngs(page: str) -> list[Image.Image]:
    found = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    return [Image.open(io.BytesIO(base64.b64decode(data))) for data in found]


def listening(port: int) -> set[str]:
    """The local addresses of every socket listening on ``port`` (Linux's ``/proc/net/tcp`` and ``tcp6``)."""
    found = set()
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].split(":")
            if fields[3] != "0A" or int(hex_port, 16) != port:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(address)  # 32-bit words in host (little-endian) order
            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            found.add(socket.inet_ntop(family, raw))
    return found


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's table of sockets")
def test_the_server_listens_on_the_loopback_address_only(server):
    port = int(server.url.rstrip("/").rsplit(":", 1)[1])
    assert listening(port) == {"127.0.0.1"}
    assert server.folder.is_dir() and (server.folder.stat().st_mode & 0o077) == 0  # the user's alone


def test_an_explanation_end_to_end_through_the_client(server, tmp_path):
    from gradio_client import Client, handle_file

    client = Client(server.url, verbose=False, download_files=str(tmp_path))
    verdict, filmstrip, slider, step, curve, null, maps = client.predict(**SMALL, api_name="/explain")
    image = resize_shorter_side(example_image("chelsea"), 32)
    settings = make_test_settings(n_permutations=200, n_placebos=20, alpha=0.1, seed=0)
    expected = PropertyGradient(colour_balance_net()).attribute(
        image, source=GaussianVignetteSource(steps=8), settings=settings
    )
    for name, value in verdict_rows(expected, expected.top_index):
        assert f"<th>{html.escape(name)}</th><td>{html.escape(value)}</td>" in verdict
    for part in (filmstrip, step, curve, null, maps):
        assert len(pngs(part)) == 1 and min(pngs(part)[0].size) >= 100
    assert (slider["maximum"], slider["visible"]) == (7, True)
    later = client.predict(5, api_name="/step")  # the slider, in this client's session
    assert f"step 6 of 8: vignette strength = {float(expected.values[5]):.4g}" in later

    pixels = Image.new("RGB", (60, 40), (30, 40, 230))  # a blue upload: the example model says cool
    pixels.save(tmp_path / "blue.png")
    upload = handle_file(tmp_path / "blue.png")
    uploaded = client.predict(**{**SMALL, "baselines": []}, upload=upload, api_name="/explain")
    assert "decision: cool" in uploaded[3] and pngs(uploaded[3])[0].size == (48 * 5, 32 * 5)
    assert list(server.folder.rglob("blue.png")), "the upload lives in the server's own folder"


def test_a_bad_input_comes_back_as_one_line(server):
    from gradio_client import Client

    client = Client(server.url, verbose=False)
    with pytest.raises(Exception, match=r"^center must be None or \(y, x\) fractions in \[0, 1\], got 'middle'$"):
        client.predict(**{**SMALL, "gaussian_vignette__center": "middle"}, api_name="/explain")


def test_ctrl_c_stops_the_server_and_removes_its_folder(server):
    server.process.send_signal(signal.SIGINT)
    assert server.stopped(60) == 0, "".join(server.output)
    assert not server.folder.exists()
