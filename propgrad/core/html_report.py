"""Self-contained HTML reports: one file with inline CSS and JavaScript and every image embedded.

Both reports (``propgrad explain --out`` and ``propgrad benchmark --out``) are built with
:class:`HtmlReport`: headings, paragraphs, tables, key-value lists, PNG images (embedded as
``data:image/png;base64`` URIs) and a slider that scrubs through a sequence of frames, showing one
frame and a table of values per step. Nothing is loaded from the network, so a report opens
offline and can be mailed or archived as one file.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from propgrad.core.atomic_files import write_text
from propgrad.errors import InvalidParameterError

#: The pages' style sheet (the reports' and, scoped to their fragment, the notebook views').
CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0 auto;max-width:1180px;
padding:1em 2em;color:#222;line-height:1.4}
h1{font-size:1.6em;border-bottom:2px solid #444;padding-bottom:.2em}
h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #bbb}
h3{font-size:1.05em;margin-top:1.2em}
table{border-collapse:collapse;margin:.5em 0 1em 0;font-size:.85em;display:block;max-width:100%;overflow-x:auto}
th,td{border:1px solid #ccc;padding:.25em .55em;text-align:right;white-space:nowrap}
th{background:#f0f0f0;white-space:normal;max-width:16em;vertical-align:bottom}
td:first-child,th:first-child{text-align:left}
figure{margin:.6em 0 1.2em 0}
figure img{max-width:100%;border:1px solid #ddd}
figcaption{font-size:.85em;color:#555}
dl.kv{display:grid;grid-template-columns:max-content auto;gap:.15em 1em;font-size:.9em}
dl.kv dt{font-weight:600}
dl.kv dd{margin:0;font-family:ui-monospace,monospace;word-break:break-all}
.note{font-size:.9em;color:#444}
pre.note{background:#f7f7f7;padding:.5em;overflow-x:auto}
.stat{display:inline-block;border:1px solid #ccc;border-radius:4px;padding:.4em .8em;margin:.2em .4em .2em 0}
.stat b{font-size:1.2em}
.card{border:2px solid #444;border-radius:6px;padding:.5em 1em .7em 1em;margin:.6em 0 1em 0}
.card h3{margin:.1em 0 .4em 0}
.card .lead{font-size:1.1em;font-weight:600;margin:.2em 0 .5em 0}
.card dl.kv{grid-template-columns:minmax(12em,30em) auto;font-size:.95em}
.card dl.kv dt{font-weight:400}
.card dl.kv dd{font-family:inherit;font-weight:600;word-break:normal}
.slider{border:1px solid #ccc;border-radius:4px;padding:.6em;margin:.6em 0 1.2em 0}
.slider .frame{display:flex;gap:1.2em;align-items:flex-start;flex-wrap:wrap}
.slider img{image-rendering:pixelated;border:1px solid #ddd}
.slider input[type=range]{width:100%}
"""

_SLIDER_JS = """
function propgradSlider(id){
  const root=document.getElementById(id);
  const data=JSON.parse(root.querySelector('script[type="application/json"]').textContent);
  const input=root.querySelector('input[type=range]');
  const img=root.querySelector('img.frame-image');
  const label=root.querySelector('.frame-label');
  const body=root.querySelector('tbody.frame-values');
  function show(k){
    img.src=data.frames[k];
    img.dataset.step=String(k);
    label.textContent=data.labels[k];
    body.innerHTML='';
    for(const row of data.rows[k]){
      const tr=document.createElement('tr');
      for(const cell of row){const td=document.createElement('td');td.textContent=cell;tr.appendChild(td);}
      body.appendChild(tr);
    }
  }
  input.addEventListener('input',()=>show(Number(input.value)));
  show(Number(input.value));
}
document.querySelectorAll('div.slider').forEach(el=>propgradSlider(el.id));
"""


def png_data_uri(png: bytes) -> str:
    """A ``data:image/png;base64,...`` URI of PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def figure_png(fig: Any, dpi: int = 110) -> bytes:
    """The PNG bytes of a matplotlib figure (the figure is left open)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def array_png(image: Any, *, scale: int = 1) -> bytes:
    """The PNG bytes of an image: a (3, H, W) or (H, W, 3) array or tensor in [0, 1], or (H, W) grey.

    Args:
        image: Float values in [0, 1] (clipped), channels first or last.
        scale: Enlarge by this integer factor (nearest neighbour), for tiny images.
    """
    from PIL import Image

    array = np.asarray(image.detach().cpu().numpy() if hasattr(image, "detach") else image, dtype=np.float64)
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3):
        array = np.moveaxis(array, 0, -1)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3):
        raise InvalidParameterError(f"image must be (3, H, W), (H, W, 3) or (H, W), got shape {array.shape}")
    pixels = (np.clip(np.nan_to_num(array), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if scale > 1:
        pixels = pixels.repeat(scale, axis=0).repeat(scale, axis=1)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _escape(value: Any) -> str:
    return html.escape(str(value), quote=True)


class HtmlReport:
    """A self-contained HTML page built section by section.

    Args:
        title: The page title and top heading.
    """

    def __init__(self, title: str) -> None:
        self.title = title
        self._parts: list[str] = []
        self._n_sliders = 0

    def heading(self, text: str, level: int = 2, anchor: str | None = None) -> None:
        """Add a heading (``level`` 2 or 3 below the page title)."""
        attr = f' id="{_escape(anchor)}"' if anchor else ""
        self._parts.append(f"<h{level}{attr}>{_escape(text)}</h{level}>")

    def paragraph(self, text: str, css_class: str | None = None) -> None:
        """Add a paragraph of plain text (escaped)."""
        attr = f' class="{_escape(css_class)}"' if css_class else ""
        self._parts.append(f"<p{attr}>{_escape(text)}</p>")

    def preformatted(self, text: str) -> None:
        """Add text in a monospaced block that keeps its line breaks (terminal output)."""
        self._parts.append(f'<pre class="note">{_escape(text)}</pre>')

    def stats(self, items: Sequence[tuple[str, str]]) -> None:
        """Add a row of highlighted ``(name, value)`` boxes (e.g. the score, p-value and effect size)."""
        boxes = "".join(f'<span class="stat">{_escape(k)}: <b>{_escape(v)}</b></span>' for k, v in items)
        self._parts.append(f'<div class="stats">{boxes}</div>')

    def card(
        self, title: str, rows: Sequence[tuple[str, str]], *, lead: str | None = None, css_class: str = "verdict"
    ) -> None:
        """Add a boxed card: a title, an optional leading line in bold, then ``(name, value)`` rows.

        Args:
            title: The card's heading.
            rows: ``(name, value)`` pairs, shown as a definition list.
            lead: A line shown first, in bold (e.g. the one-line reading of a result).
            css_class: A class beside ``card`` that tells this card apart (the verdict by default).
        """
        head = f'<p class="lead">{_escape(lead)}</p>' if lead else ""
        items = "".join(f"<dt>{_escape(k)}</dt><dd>{_escape(v)}</dd>" for k, v in rows)
        self._parts.append(
            f'<div class="card {_escape(css_class)}"><h3>{_escape(title)}</h3>{head}'
            f'<dl class="kv card-rows">{items}</dl></div>'
        )

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[Any]], caption: str | None = None) -> None:
        """Add a table (cells are escaped text)."""
        head = "".join(f"<th>{_escape(h)}</th>" for h in headers)
        body = "".join("<tr>" + "".join(f"<td>{_escape(c)}</td>" for c in row) + "</tr>" for row in rows)
        cap = f"<caption>{_escape(caption)}</caption>" if caption else ""
        self._parts.append(f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

    def key_values(self, items: Mapping[str, Any]) -> None:
        """Add a definition list; dict and list values are shown as compact JSON."""
        rows = []
        for key, value in items.items():
            text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
            rows.append(f"<dt>{_escape(key)}</dt><dd>{_escape(text)}</dd>")
        self._parts.append(f'<dl class="kv">{"".join(rows)}</dl>')

    def provenance(self, versions: Mapping[str, Any], anchor: str | None = None) -> None:
        """Add the "Versions and provenance" section: the key-value pairs, then the plugins as a table."""
        self.heading("Versions and provenance", 2, anchor=anchor)
        versions = dict(versions)
        plugins = versions.pop("plugins", None)
        self.key_values(versions)
        if isinstance(plugins, list):
            self.table(
                ["plugin", "distribution", "version", "built in"],
                [[p.get("name"), p.get("distribution"), p.get("version"), p.get("builtin")] for p in plugins],
            )
        elif plugins is not None:
            self.paragraph(str(plugins), "note")

    def image(self, png: bytes, alt: str, caption: str | None = None, width: int | None = None) -> None:
        """Add an embedded PNG image with an optional caption."""
        size = f' width="{int(width)}"' if width else ""
        cap = f"<figcaption>{_escape(caption)}</figcaption>" if caption else ""
        self._parts.append(f'<figure><img src="{png_data_uri(png)}" alt="{_escape(alt)}"{size}>{cap}</figure>')

    def slider(
        self,
        frames: Sequence[bytes],
        labels: Sequence[str],
        headers: Sequence[str],
        rows: Sequence[Sequence[Sequence[Any]]],
        *,
        width: int | None = None,
        start: int = 0,
    ) -> str:
        """Add a slider (``<input type="range">``) that scrubs through ``frames``.

        Moving it shows frame k, ``labels[k]`` above it and the table ``rows[k]`` (one row of
        cells per output, under ``headers``) beside it.

        Returns:
            The slider's element id.

        Raises:
            ValueError: ``frames``, ``labels`` and ``rows`` differ in length, or there are no frames.
        """
        if not frames or not (len(frames) == len(labels) == len(rows)):
            raise InvalidParameterError(
                f"a slider needs one label and one row set per frame, got {len(frames)} frames, "
                f"{len(labels)} labels and {len(rows)} row sets"
            )
        self._n_sliders += 1
        slider_id = f"slider{self._n_sliders}"
        data = {
            "frames": [png_data_uri(f) for f in frames],
            "labels": [str(x) for x in labels],
            "rows": [[[str(c) for c in row] for row in step] for step in rows],
        }
        blob = json.dumps(data).replace("</", "<\\/")
        start = min(max(int(start), 0), len(frames) - 1)
        size = f' width="{int(width)}"' if width else ""
        head = "".join(f"<th>{_escape(h)}</th>" for h in headers)
        self._parts.append(
            f'<div class="slider" id="{slider_id}">'
            f'<script type="application/json">{blob}</script>'
            f'<input type="range" min="0" max="{len(frames) - 1}" step="1" value="{start}" '
            f'aria-label="step of the sequence">'
            f'<div class="frame-label"></div>'
            f'<div class="frame"><img class="frame-image" alt="frame of the sequence"{size}>'
            f'<table><thead><tr>{head}</tr></thead><tbody class="frame-values"></tbody></table></div></div>'
        )
        return slider_id

    def raw(self, markup: str) -> None:
        """Add trusted HTML as is (callers escape what they interpolate)."""
        self._parts.append(markup)

    def render(self) -> str:
        """The whole page."""
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{_escape(self.title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{_escape(self.title)}</h1>\n"
            + "\n".join(self._parts)
            + f"\n<script>{_SLIDER_JS}</script></body></html>\n"
        )

    def write(self, path: Path) -> Path:
        """Write the page atomically to ``path``."""
        return write_text(Path(path), self.render())
