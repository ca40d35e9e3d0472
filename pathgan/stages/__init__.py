"""One use-case function per CLI command, composing the library layers."""

from pathgan.stages.tile import SlideStatus, tile_slides

__all__ = ["SlideStatus", "tile_slides"]
