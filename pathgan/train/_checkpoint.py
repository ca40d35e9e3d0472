"""Checkpoints that load with ``torch.load(weights_only=True)`` and are written atomically.

A checkpoint holds only tensors, numbers, strings, lists and dicts: model, EMA and optimiser
state dicts, the grad-scaler state, RNG states, the step and data position, the resolved configs
and provenance (store schema, patch MPP and size, data fingerprint, pathgan version).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from pathgan._io import atomic_write_bytes
from pathgan.errors import PathganError

__all__ = ["CHECKPOINT_FORMAT", "load_checkpoint", "save_checkpoint"]

CHECKPOINT_FORMAT = 1


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Serialise ``payload`` to ``path`` via a temporary file, so a crash never leaves half a file."""
    buf = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, **payload}, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely (no arbitrary unpickling).

    Raises
    ------
    PathganError
        The file is missing, not a pathgan checkpoint, or of another format version.
    """
    path = Path(path)
    if not path.is_file():
        raise PathganError(f"checkpoint {path} does not exist")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError ...
        raise PathganError(f"checkpoint {path} cannot be read safely: {err}") from err
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise PathganError(f"checkpoint {path} has format {found!r}; this pathgan reads {CHECKPOINT_FORMAT}")
    return data
