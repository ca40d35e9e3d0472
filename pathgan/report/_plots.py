"""Plots for the page: tiny inline SVG histograms (one per slide and QC score, hundreds per page,
so no matplotlib there) and matplotlib line charts as embedded PNGs (a handful per run)."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pathgan.report._html import data_uri, esc

__all__ = ["Series", "histogram_svg", "line_chart_uri"]


def histogram_svg(values: np.ndarray, edges: np.ndarray, *, label: str, width: int = 90, height: int = 24) -> str:
    """An inline ``<svg>`` histogram of ``values`` over the bin ``edges`` (values outside are clipped
    into the end bins; NaNs dropped). Bars are scaled to the fullest bin; ``label`` is the tooltip
    (escaped here)."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    n_bins = len(edges) - 1
    counts = np.histogram(np.clip(v, edges[0], edges[-1]), bins=edges)[0] if v.size else np.zeros(n_bins, int)
    top = max(int(counts.max()), 1) if counts.size else 1
    bar_w = width / n_bins
    bars = "".join(
        f'<rect x="{i * bar_w:.1f}" y="{height - h:.1f}" width="{max(bar_w - 0.6, 0.4):.1f}" height="{h:.1f}"/>'
        for i, c in enumerate(counts) if c and (h := max(1.0, height * c / top))
    )
    return (f'<svg class="hist" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="{esc(label)}"><title>{esc(label)}</title>{bars}</svg>')


@dataclass(frozen=True, kw_only=True)
class Series:
    """One line of a chart: ``x`` and ``y`` of equal length (NaN: a gap), optional ``err`` (+-)."""

    name: str
    x: Sequence[float]
    y: Sequence[float]
    err: Sequence[float] | None = None
    dashed: bool = False


def line_chart_uri(series: Sequence[Series], *, title: str, xlabel: str = "step", ylabel: str = "",
                   width_in: float = 6.0, height_in: float = 2.9, dpi: int = 96) -> str:
    """A matplotlib line chart of ``series`` as a PNG ``data:`` URI.

    The y axis is logarithmic when every value is positive and they span more than two decades
    (gradient norms, throughput after a stall), linear otherwise. No pyplot state is touched.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=dpi, layout="constrained")
    ax = fig.add_subplot()
    finite: list[float] = []
    for s in series:
        x = np.asarray(s.x, np.float64)
        y = np.asarray(s.y, np.float64)
        style = "--" if s.dashed else "-"
        marker = "o" if len(x) <= 12 else None
        if s.err is not None:
            ax.errorbar(x, y, yerr=np.asarray(s.err, np.float64), label=s.name, linestyle=style, marker=marker,
                        markersize=3, capsize=2, linewidth=1.2)
        else:
            ax.plot(x, y, style, label=s.name, marker=marker, markersize=3, linewidth=1.2)
        finite += [float(v) for v in y if math.isfinite(v)]
    if finite and min(finite) > 0 and max(finite) / min(finite) > 100:
        ax.set_yscale("log")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel, fontsize=9)
    if ylabel:
        ax.set_ylabel(ylabel, fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend(fontsize=7, ncols=1 if max(len(s.name) for s in series) > 24 else min(len(series), 3))
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return data_uri("image/png", buf.getvalue())
