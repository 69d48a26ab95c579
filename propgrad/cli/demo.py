"""``propgrad demo``: the interactive page in the browser, served on a loopback address (:mod:`propgrad.demo`).

Building the parser imports neither Gradio nor the demo; the command imports them when it runs,
after checking ``--host`` and ``--port``. Without the ``demo`` extra it stops with one line naming it.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    """Register the ``demo`` sub-command."""
    p = sub.add_parser(
        "demo",
        help="an interactive page in the browser: pick an image, a source and a model, see the verdict",
        description="Serve an interactive page on this computer (a loopback address only): pick a photograph or "
        "upload an image, choose an intervention source and its parameters and a model, and see the verdict of "
        "both tests, the behaviour curve, the permutation null, a slider over the steps and the baselines' maps. "
        "Needs the demo extra: pip install 'propgrad[demo]'. Ctrl+C stops it.",
    )
    p.add_argument(
        "--model",
        metavar="SPEC",
        help="a model of your own, offered first: 'package.module:callable', a TorchScript file or 'hf:PATH_OR_ID' "
        "(as propgrad explain --model); the example model and every cached suite model are offered too",
    )
    p.add_argument("--port", type=int, help="the port (default: a free one)")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="a loopback address to serve on: 127.0.0.1, ::1 or localhost; any other is refused (default: 127.0.0.1)",
    )
    p.add_argument("--open-browser", action="store_true", help="open the page in the default browser")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Check the options, load the models, serve the page until Ctrl+C."""
    from propgrad.demo.server import check_port, loopback_host, require_gradio

    host = loopback_host(args.host)
    check_port(host, args.port)
    require_gradio()
    from propgrad.demo.models import ModelCatalogue
    from propgrad.demo.server import serve

    catalogue = ModelCatalogue(args.model)
    serve(
        catalogue,
        host=host,
        port=args.port,
        open_browser=args.open_browser,
        on_start=_announce,
    )
    return 0


def _announce(url: str, folder: Path) -> None:
    print(f"propgrad demo: serving on {url} (this computer only; Ctrl+C stops it)", flush=True)
    print(f"propgrad demo: uploads stay in {folder} (yours only) until their page closes", flush=True)
