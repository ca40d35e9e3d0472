"""Slide access: the only package that imports openslide or tiffslide."""

from pathgan.slide._extract import PatchReader
from pathgan.slide._open import MPP_RANGE, SlideGeometry, open_slide, slide_mpp
from pathgan.slide._protocol import SlideReader
from pathgan.slide._thumbnail import read_thumbnail

__all__ = ["MPP_RANGE", "PatchReader", "SlideGeometry", "SlideReader", "open_slide", "read_thumbnail", "slide_mpp"]
