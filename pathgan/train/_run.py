"""Self-describing run directories: ``runs/00012-pathologygan-64-cpu/``.

::

    config.yaml            resolved TrainConfig + ModelConfig + data description (written once)
    stats.jsonl            one JSON object per logged step
    samples/step-000500.png  EMA samples from fixed seeds
    checkpoints/step-000500.pt  model, EMA, optimisers, scaler, RNG states, step, provenance
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from pathgan._io import atomic_path, atomic_write_bytes

__all__ = ["StatsWriter", "atomic_write_bytes", "latest_checkpoint", "new_run_dir", "save_grid", "write_yaml"]

_RUN_RE = re.compile(r"^(\d{5})-")


def new_run_dir(root: Path, name: str) -> Path:
    """Create ``root/NNNNN-name`` with the next free number (never reuses an existing folder)."""
    root.mkdir(parents=True, exist_ok=True)
    numbers = [int(m.group(1)) for p in root.iterdir() if (m := _RUN_RE.match(p.name))]
    for n in range(max(numbers, default=-1) + 1, 100_000):
        path = root / f"{n:05d}-{name}"
        try:
            path.mkdir()
        except FileExistsError:  # another process took it; try the next number
            continue
        (path / "samples").mkdir()
        (path / "checkpoints").mkdir()
        return path
    raise RuntimeError(f"no free run number under {root}")


def write_yaml(path: Path, data: dict[str, Any]) -> None:
    atomic_write_bytes(path, yaml.safe_dump(data, sort_keys=False).encode())


class StatsWriter:
    """Appends one JSON line per call to ``stats.jsonl`` (flushed, so a crash loses nothing logged)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, row: dict[str, Any]) -> None:
        with self.path.open("a") as fh:
            fh.write(json.dumps(row, allow_nan=True) + "\n")

    def truncate_after(self, step: int) -> None:
        """Drop rows logged after ``step`` (they belong to a run that died after its last checkpoint)."""
        if not self.path.exists():
            return
        keep = [ln for ln in self.path.read_text().splitlines() if ln and json.loads(ln).get("step", 0) <= step]
        atomic_write_bytes(self.path, ("\n".join(keep) + ("\n" if keep else "")).encode())


def save_grid(path: Path, images: np.ndarray, ncols: int = 8, pad: int = 2) -> None:
    """Save ``uint8 [N, H, W, 3]`` images as one PNG grid (white padding)."""
    from PIL import Image

    n, h, w, _ = images.shape
    rows = -(-n // ncols)
    grid = np.full((rows * (h + pad) + pad, ncols * (w + pad) + pad, 3), 255, np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, ncols)
        grid[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = img
    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(grid).save(tmp)


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint with the highest step in ``run_dir/checkpoints`` (None when there is none)."""
    ckpts = sorted((run_dir / "checkpoints").glob("step-*.pt"))
    return ckpts[-1] if ckpts else None
