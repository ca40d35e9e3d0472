"""The page shell shared by both reports: escaping, embedded data, CSS and the one script.

Everything a page needs is inline (no CDN, no network, no server): styles and script in the
document, images as ``data:`` URIs, data for the script as JSON in a ``<script type="application/json">``
block. Every string that comes from data (slide ids, error messages, config values) goes through
:func:`esc` or :func:`script_json`.
"""

from __future__ import annotations

import base64
import html
import json
import time
from typing import Any

from pathgan import __version__

__all__ = ["data_uri", "esc", "fmt", "page", "script_json"]


def esc(value: object) -> str:
    """``value`` as HTML text or attribute value: ``& < > " '`` escaped."""
    return html.escape(str(value), quote=True)


def script_json(obj: Any) -> str:
    """JSON safe to place inside ``<script type="application/json">``: ``<``, ``>`` and ``&`` as
    ``\\u`` escapes, so no string can close the element (``</script>``) or open a comment."""
    text = json.dumps(obj, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def data_uri(mime: str, data: bytes) -> str:
    """``data:<mime>;base64,...`` for embedding ``data`` in the page."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def fmt(value: float | None, digits: int = 3) -> str:
    """A number for a table cell: ``digits`` significant digits, or an empty string for None."""
    if value is None:
        return ""
    if value != value:  # NaN
        return "nan"
    return f"{value:.{digits}g}" if abs(value) < 10 ** digits else f"{value:,.0f}"


_CSS = """
:root { --fg:#1d2330; --muted:#5c6577; --line:#dde1e8; --bg:#f6f7f9; --card:#fff; --accent:#2456c9; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
       background: var(--bg); }
header, main, footer { padding: 12px 20px; }
header { background: var(--card); border-bottom: 1px solid var(--line); }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 20px 0 8px; }
.sub { color: var(--muted); font-size: 12px; word-break: break-all; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin-top: 10px; }
.card { background: var(--bg); border: 1px solid var(--line); border-radius: 6px; padding: 6px 12px; min-width: 110px; }
.card b { display: block; font-size: 20px; } .card span { color: var(--muted); font-size: 12px; }
.controls { display: flex; gap: 10px; align-items: center; margin: 4px 0 10px; flex-wrap: wrap; }
.controls input[type=search] { width: 340px; padding: 5px 8px; border: 1px solid var(--line); border-radius: 4px; }
.controls select { padding: 4px; }
table.data { border-collapse: collapse; background: var(--card); width: 100%; }
table.data th, table.data td { border-bottom: 1px solid var(--line); padding: 4px 5px; text-align: left; vertical-align: middle; }
table.data th { position: sticky; top: 0; background: #eef0f4; font-size: 12px; white-space: nowrap; z-index: 1; }
table.data th[data-type] { cursor: pointer; user-select: none; }
table.data th[aria-sort=ascending]::after { content: " \\25B2"; } table.data th[aria-sort=descending]::after { content: " \\25BC"; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.err { color: #a11; max-width: 460px; font-size: 12px; overflow-wrap: anywhere; }
td.err:not(:empty) { min-width: 200px; }
.tablebox { max-height: calc(100vh - 16px); overflow: auto; border: 1px solid var(--line); }
td.src small { display: block; color: var(--muted); font-size: 11px; white-space: nowrap; }
td.id { font-weight: 600; overflow-wrap: anywhere; min-width: 120px; max-width: 220px; }
img.thumb { display: block; max-width: 120px; max-height: 90px; cursor: zoom-in; border: 1px solid var(--line); }
.badge { padding: 1px 7px; border-radius: 9px; font-size: 12px; color: #fff; background: #778; white-space: nowrap; }
.badge.done { background: #2e8540; } .badge.skipped { background: #4a6fa5; } .badge.no_tissue { background: #c77c02; }
.badge.failed { background: #c0262d; } .badge.unlisted { background: #888; }
svg.hist { display: block; background: #f1f3f6; }
svg.hist rect { fill: #5b79b8; } .qc small { color: var(--muted); font-size: 11px; }
#overlay { position: fixed; inset: 0; background: rgba(10, 12, 16, .88); display: flex; align-items: center;
           justify-content: center; z-index: 10; }
#overlay[hidden] { display: none; }
#overlay figure { margin: 0; max-width: 96vw; max-height: 96vh; text-align: center; color: #eee; }
#overlay img { max-width: 96vw; max-height: 88vh; background: #fff; image-rendering: auto; }
#overlay a { color: #9cf; }
.panel { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 10px 14px; margin-bottom: 12px; }
.plots { display: flex; flex-wrap: wrap; gap: 12px; }
.plots figure { margin: 0; background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 6px; }
.plots figcaption { font-size: 12px; color: var(--muted); }
pre { background: #f1f3f6; padding: 10px; overflow: auto; max-height: 480px; font-size: 12px; }
table.kv td:first-child { color: var(--muted); padding-right: 14px; white-space: nowrap; vertical-align: top; }
table.kv td { padding: 2px 4px; font-size: 13px; word-break: break-word; }
.scrub { display: flex; flex-direction: column; gap: 6px; align-items: flex-start; }
.scrub input[type=range] { width: min(760px, 92vw); }
.scrub img { max-width: min(760px, 92vw); image-rendering: pixelated; border: 1px solid var(--line); }
.empty { color: var(--muted); font-style: italic; }
footer { color: var(--muted); font-size: 12px; }
"""


def page(title: str, body: str, *, script: str = "") -> str:
    """A whole HTML document: ``title`` (escaped here), ``body`` (already safe HTML) and an inline
    ``script`` (trusted code of this package, never data)."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<meta name=\"generator\" content=\"pathgan {esc(__version__)}\">\n"
        f"<title>{esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n{body}\n"
        f"<footer>Written by pathgan {esc(__version__)} at {esc(stamp)}. Self-contained: no server, no network; "
        "rerun <code>pathgan report</code> to update it.</footer>\n"
        + (f"<script>\n{script}\n</script>\n" if script else "")
        + "</body>\n</html>\n"
    )
