"""Slide access: the only package that imports openslide or tiffslide."""

from pathgan.slide._extract import PatchReader
from pathgan.slide._open import MPP_RANGE, SlideGeometry, open_slide, slide_mpp
from pathgan.slide._protocol import SlideReader
from pathgan.slide._thumbnail import read_thumbnail
from pathgan.slide._tiles import scaled_decode_support

__all__ = ["MPP_RANGE", "PatchReader", "SlideGeometry", "SlideReader", "open_slide", "read_thumbnail", "scaled_decode_support", "slide_mpp"]
