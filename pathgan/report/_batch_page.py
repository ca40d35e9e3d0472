"""The batch report as HTML: summary on top, then one sortable, filterable row per slide.

Each cell carries its sort key in ``data-v`` (numbers in plain decimal), so the page's script sorts
numbers as numbers. The thumbnail is a small JPEG; the full preview, capped at
:data:`PREVIEW_MAX_PX` on its longer side, waits in the thumbnail's ``data-full`` and opens in an
overlay with a link to the full-resolution ``previews/<slide_id>.png`` beside the report.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pathgan.report._batch import PREVIEWS_DIR, STATUSES, BatchReport, SlideRow, preview_image
from pathgan.report._html import esc, fmt, page
from pathgan.report._images import jpeg_uri
from pathgan.report._plots import histogram_svg
from pathgan.report._scripts import BATCH_SCRIPT

__all__ = ["PREVIEW_MAX_PX", "PREVIEW_QUALITY", "THUMB_MAX_PX", "render_batch"]

THUMB_MAX_PX = 160
#: Longer side of the preview embedded for the overlay, and its JPEG quality. Measured on the shared
#: slides' previews (grid lines on dense H&E are the costly part): 75 kB (CMU-1-Small-Region) and
#: 126 kB (TCGA, all tissue) at 800 px, q80, against 116 and 168 kB uncapped at q85; so a 500-slide
#: batch stays near 40-65 MB in one file. The full-resolution PNG is linked beside it.
PREVIEW_MAX_PX = 800
PREVIEW_QUALITY = 80
_BINS = 20
_LABELS = {"done": "done", "skipped": "skipped", "no_tissue": "no tissue", "failed": "failed", "unlisted": "unlisted"}


def _blur_edges(report: BatchReport) -> np.ndarray:
    """Bin edges on a log10 axis shared by every slide, so blur histograms compare across rows."""
    logs = [np.log10(v[np.isfinite(v) & (v > 0)]) for r in report.rows if (v := r.qc.get("blur")) is not None]
    vals = np.concatenate(logs) if logs else np.zeros(0)
    lo, hi = (float(vals.min()), float(vals.max())) if vals.size else (-2.0, 0.0)
    if hi - lo < 1e-6:
        lo, hi = lo - 0.5, hi + 0.5
    return np.asarray(10.0 ** np.linspace(lo, hi, _BINS + 1))


def _area(mm2: float | None) -> str:
    return "" if mm2 is None else (f"{mm2:.3g}" if mm2 < 10 else f"{mm2:,.1f}")


def _num_cell(value: float | None, text: str | None = None) -> str:
    key = "" if value is None or not math.isfinite(value) else repr(float(value))
    return f'<td class="num" data-v="{key}">{esc(text if text is not None else fmt(value))}</td>'


def _text_cell(value: str, inner: str | None = None, cls: str = "") -> str:
    klass = f' class="{cls}"' if cls else ""
    return f'<td{klass} data-v="{esc(value)}">{inner if inner is not None else esc(value)}</td>'


def _qc_cell(row: SlideRow, name: str, edges: np.ndarray, stat: Callable[[np.ndarray], float], what: str) -> str:
    values = row.qc.get(name)
    if values is None:
        return '<td class="qc" data-v=""></td>'
    finite = values[np.isfinite(values)]
    key = float(stat(finite)) if finite.size else None
    label = (f"{row.slide_id}: {what} of {finite.size} patches, axis {fmt(edges[0])} to {fmt(edges[-1])}; "
             f"{'median' if stat is np.median else 'mean'} {fmt(key)}")
    svg = histogram_svg(finite, edges, label=label)
    text = f"{'med' if stat is np.median else 'mean'} {fmt(key)}" if key is not None else "no patches"
    return f'<td class="qc" data-v="{"" if key is None else repr(key)}">{svg}<small>{esc(text)}</small></td>'


def _preview_cell(row: SlideRow, report_dir: Path) -> str:
    image = preview_image(row)
    if image is None:
        return '<td class="pv" data-v=""><span class="empty">no preview</span></td>'
    link = ""
    if row.preview is not None:
        link = Path(os.path.relpath(row.preview, report_dir)).as_posix()
    caption = f"{row.slide_id}: thumbnail, tissue contour (green), pen ink (magenta), kept patches (blue)"
    thumb, full = jpeg_uri(image, THUMB_MAX_PX, 80), jpeg_uri(image, PREVIEW_MAX_PX, PREVIEW_QUALITY)
    return (f'<td class="pv" data-v="1"><img class="thumb" src="{thumb}" tabindex="0" '
            f'alt="preview of {esc(row.slide_id)}" data-full="{full}" data-link="{esc(link)}" '
            f'data-caption="{esc(caption)}"></td>')


def _row(row: SlideRow, edges: np.ndarray, report_dir: Path) -> str:
    status = row.status
    badge = f'<span class="badge {esc(status)}">{esc(_LABELS.get(status, status))}</span>'
    kept = (row.n_patches / row.n_grid) if row.n_patches is not None and row.n_grid else None
    grid_text = f"{row.n_patches:,} / {row.n_grid:,}" if kept is not None else ""
    eff = row.mpp_effective
    eff_text = (f"{eff[0]:.4g}" if abs(eff[0] - eff[1]) < 1e-9 else f"{eff[0]:.4g} x {eff[1]:.4g}") if eff else ""
    src = row.mpp_source or ""
    src_html = esc(src) + (f"<small>level 0: {row.mpp_slide[0]:.4g} µm/px</small>" if row.mpp_slide else "")
    cells = [
        _preview_cell(row, report_dir),
        _text_cell(row.slide_id, cls="id"),
        _text_cell(status, badge),
        _num_cell(row.n_patches, f"{row.n_patches:,}" if row.n_patches is not None else ""),
        _num_cell(kept, grid_text),
        _num_cell(row.mpp_requested),
        _num_cell(eff[0] if eff else None, eff_text),
        _text_cell(src, src_html, cls="src"),
        _num_cell(row.tissue_area_mm2, _area(row.tissue_area_mm2)),
        _qc_cell(row, "blur", edges, np.median, "blur (variance of the Laplacian; higher = sharper)"),
        _qc_cell(row, "pen_fraction", np.linspace(0, 1, _BINS + 1), np.mean, "pen-ink fraction"),
        _qc_cell(row, "white_fraction", np.linspace(0, 1, _BINS + 1), np.mean, "white fraction"),
        _num_cell(row.seconds, f"{row.seconds:.1f}" if row.seconds is not None else ""),
        _text_cell(row.error, cls="err"),
    ]
    return f'<tr data-status="{esc(status)}">{"".join(cells)}</tr>'


# (key for the filter's "key<op>value" terms, header, sort type or "" when not sortable, tooltip)
_HEADERS = (
    ("preview", "Preview", "", "click a thumbnail for the full preview"),
    ("slide", "Slide", "text", "slide id"),
    ("status", "Status", "text", "done, skipped (complete store kept), no tissue, failed, unlisted (store not in the status table)"),
    ("patches", "Patches", "num", "patches stored"),
    ("kept", "Kept / grid", "num", "patches kept of the grid cells laid on the slide (sorts by the kept fraction)"),
    ("mpp", "MPP req.", "num", "requested microns per pixel of the patches"),
    ("mpp_eff", "MPP eff.", "num", "effective microns per pixel of the patches (x, and y when it differs)"),
    ("source", "MPP source", "text", "where the slide's level-0 MPP came from: metadata or the manifest's mpp_override"),
    ("tissue", "Tissue mm²", "num", "tissue pixels of the thumbnail mask x thumbnail pixel area"),
    ("blur", "Blur", "num", "histogram of qc/blur per patch on a log axis shared by all slides; sorts by the median"),
    ("pen", "Pen", "num", "histogram of qc/pen_fraction per patch, 0 to 1; sorts by the mean"),
    ("white", "White", "num", "histogram of qc/white_fraction per patch, 0 to 1; sorts by the mean"),
    ("time", "Time s", "num", "seconds this slide took in the last tile run"),
    ("error", "Error", "text", "why a slide failed (or a note)"),
)


def _header(key: str, text: str, sort_type: str, tip: str) -> str:
    sortable = f' data-type="{sort_type}"' if sort_type else ""
    return f'<th data-key="{key}"{sortable} title="{esc(key)}: {esc(tip)}">{esc(text)}</th>'


def _summary(report: BatchReport) -> str:
    counts = report.counts
    cards = [("slides", f"{len(report.rows):,}")]
    cards += [(_LABELS[s], f"{counts[s]:,}") for s in STATUSES if counts[s] or s in ("done", "failed", "skipped")]
    cards += [("patches", f"{report.n_patches:,}"), ("tissue mm²", _area(report.tissue_area_mm2))]
    settings = sorted({(r.patch_px, r.mpp_requested) for r in report.rows if r.patch_px is not None})
    if len(settings) == 1:
        cards.append(("patches of", f"{settings[0][0]} px @ {settings[0][1]:g} µm/px"))
    html_cards = "".join(f'<div class="card" data-card="{esc(k)}"><b>{esc(v)}</b><span>{esc(k)}</span></div>'
                         for k, v in cards)
    return f'<div class="cards" id="summary">{html_cards}</div>'


def render_batch(report: BatchReport, out: Path) -> str:
    """The whole page for ``report``, to be written at ``out`` (relative links start there)."""
    edges = _blur_edges(report)
    head = "".join(_header(*h) for h in _HEADERS)
    rows = "\n".join(_row(r, edges, out.parent) for r in report.rows)
    options = "".join(f'<option value="{s}">{_LABELS[s]} ({n})</option>' for s, n in report.counts.items() if n)
    source = (f"status table {report.status_table.name}" if report.status_table is not None
              else "no status table (stores only)")
    body = f"""<header>
<h1>pathgan tile: {esc(report.folder.name or report.folder)}</h1>
<div class="sub">{esc(report.folder.resolve())} &middot; {esc(source)} &middot; {PREVIEWS_DIR}/ previews</div>
{_summary(report)}
</header>
<main>
<div class="controls">
<input type="search" id="filter" placeholder="filter every column, e.g. failed, TCGA, patches&gt;100, tissue&lt;5"
 aria-label="filter rows">
<select id="status-filter" aria-label="status"><option value="">every status</option>{options}</select>
<span id="shown"></span>
</div>
<div class="tablebox"><table class="data" id="slides">
<thead><tr>{head}</tr></thead>
<tbody>
{rows}
</tbody>
</table></div>
</main>
<div id="overlay" hidden><figure><img id="overlay-img" alt=""><figcaption id="overlay-caption"></figcaption></figure></div>"""
    return page(f"pathgan tile report: {report.folder.name}", body, script=BATCH_SCRIPT)
