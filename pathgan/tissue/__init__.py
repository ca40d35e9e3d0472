"""Tissue, pen-ink and blur detection on arrays (no file I/O).

All functions take and return NumPy arrays; see each docstring for shapes and units.
"""

from __future__ import annotations

from pathgan.tissue._blur import blur_score, blur_scores, white_fractions
from pathgan.tissue._mask import tissue_and_pen, tissue_mask
from pathgan.tissue._pen import pen_mask
from pathgan.tissue._preview import render_preview
from pathgan.tissue._regions import region_fractions

__all__ = [
    "blur_score",
    "blur_scores",
    "pen_mask",
    "region_fractions",
    "render_preview",
    "tissue_and_pen",
    "tissue_mask",
    "white_fractions",
]
