"""Images for the page: downscaled JPEG ``data:`` URIs, so a page stays one file of bounded size."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from pathgan.report._html import data_uri

__all__ = ["jpeg_uri", "read_rgb"]


def read_rgb(path: Path) -> np.ndarray:
    """An image file as ``uint8 (H, W, 3)`` RGB (transparency flattened onto white).

    Raises ``OSError`` (PIL's ``UnidentifiedImageError`` is one) for a missing or unreadable file.
    """
    from PIL import Image

    with Image.open(path) as img:
        if img.mode in ("RGBA", "LA", "P"):
            rgba = img.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
        return np.asarray(img.convert("RGB"))


def jpeg_uri(rgb: np.ndarray, max_px: int, quality: int = 85) -> str:
    """``rgb`` (``uint8 (H, W, 3)``) as a JPEG ``data:`` URI, shrunk (area-averaged) so that its
    longer side is at most ``max_px`` pixels; never enlarged."""
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(rgb[..., :3]))
    if max(img.size) > max_px:
        scale = max_px / max(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.BOX)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality, optimize=True)
    return data_uri("image/jpeg", buf.getvalue())
