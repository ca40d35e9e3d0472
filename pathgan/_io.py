"""Atomic file writes: the one way pathgan writes a file that must never look complete half-written."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

__all__ = ["atomic_write_bytes"]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a uniquely named temporary sibling, then rename it onto ``path``.

    A crash leaves either the old file or the new one, never half of one; the temporary file is
    removed when the write fails. Light (no numpy or torch), so any layer may use it.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.partial")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
