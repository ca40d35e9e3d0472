"""pathgan: exact-MPP whole-slide tiling into Zarr patch stores, and PathologyGAN latent spaces."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
