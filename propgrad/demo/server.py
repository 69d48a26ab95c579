"""The demo's server: Gradio checked and set offline, a loopback address, a free port, a private temporary folder.

Nothing here imports Gradio until :func:`require_gradio` runs, so the command line can say in one
line that the ``demo`` extra is missing.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from propgrad.demo.models import ModelCatalogue
from propgrad.errors import InvalidParameterError

LOOPBACK_NAMES = {"localhost": "127.0.0.1"}
"""Host names taken for their loopback address."""
MAX_UPLOAD = "20mb"
"""Largest upload Gradio accepts."""
#: Gradio's environment: no analytics or version check, no Hugging Face telemetry.
OFFLINE_ENVIRONMENT = {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_DISABLE_TELEMETRY": "1"}


def require_gradio() -> None:
    """Import Gradio (with analytics off), or say in one line which extra installs it.

    Raises:
        MissingDependencyError: Gradio is not installed (or cannot be imported).
    """
    from propgrad.explain.zero_shot import MissingDependencyError

    os.environ.update(OFFLINE_ENVIRONMENT)
    try:
        import gradio  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError("the demo needs Gradio: pip install 'propgrad[demo]'") from exc


def loopback_host(host: str) -> str:
    """``host`` if it is a loopback address (``127.0.0.1``, ``::1``, ``localhost`` ...), else an error.

    Raises:
        InvalidParameterError: any other host (the demo is never served beyond this computer).
    """
    address = LOOPBACK_NAMES.get(str(host).strip().lower(), str(host).strip())
    try:
        loopback = ipaddress.ip_address(address).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise InvalidParameterError(
            f"--host {host!r}: the demo serves on a loopback address only (127.0.0.1, ::1 or localhost), so only "
            "this computer reaches it; to show it elsewhere, forward the port over SSH (ssh -L PORT:127.0.0.1:PORT)"
        )
    return address


def free_port(host: str = "127.0.0.1") -> int:
    """A port no program listens on at ``host`` now (the system's choice)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def check_port(host: str, port: int | None) -> int | None:
    """``port`` if it is a port number free at ``host`` (None stays None: a free one is chosen later).

    Raises:
        InvalidParameterError: a number outside 1-65535, or a port another program listens on.
    """
    if port is None:
        return None
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise InvalidParameterError(f"--port must be a port number from 1 to 65535, got {port}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            raise InvalidParameterError(
                f"--port {port} is in use on {host}; choose another, or leave --port out for a free one"
            ) from None
    return port


@contextmanager
def private_temp_folder() -> Iterator[Path]:
    """A fresh temporary folder for Gradio's files (mode 0700), set as ``GRADIO_TEMP_DIR``, removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="propgrad-demo-"))
    before = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = str(folder)
    try:
        yield folder
    finally:
        if before is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = before
        shutil.rmtree(folder, ignore_errors=True)


def serve(
    catalogue: ModelCatalogue,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    open_browser: bool = False,
    on_start: Callable[[str, Path], None] | None = None,
) -> None:
    """Serve the page on ``host`` (a loopback address) until Ctrl+C; the temporary folder is removed then.

    Args:
        catalogue: The models on offer.
        host: A loopback address (:func:`loopback_host`).
        port: The port; None: a free one.
        open_browser: Open the page in the default browser.
        on_start: Called with the page's URL and the server's temporary folder once it is served.
    """
    host = loopback_host(host)
    port = check_port(host, port) or free_port(host)
    require_gradio()
    with private_temp_folder() as folder:
        from propgrad.demo.app import build_app

        app = build_app(catalogue, folder)
        app.queue(default_concurrency_limit=1)  # one explanation at a time: the CPU is the limit
        app.launch(
            server_name=host,
            server_port=port,
            share=False,
            inbrowser=open_browser,
            prevent_thread_lock=True,
            quiet=True,
            show_error=True,
            max_file_size=MAX_UPLOAD,
            ssr_mode=False,
            mcp_server=False,
            enable_monitoring=False,
            pwa=False,
        )
        url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/"
        if on_start is not None:
            on_start(url, folder)
        try:
            with _terminate_as_interrupt():
                while app.is_running:
                    time.sleep(0.2)
        except KeyboardInterrupt:
            pass  # Ctrl+C (or a termination signal): the usual way to stop it
        finally:
            app.close()


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """In the main thread, a termination signal (SIGTERM) stops the server as Ctrl+C does, so the
    temporary folder is removed either way."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
