"""What a training loop writes into its run directory (the layout itself is :mod:`pathgan.runs`).

::

    config.yaml            resolved TrainConfig + ModelConfig + data description (written once)
    stats.jsonl            one JSON object per logged step
    samples/step-000500.png  EMA samples from fixed seeds
    checkpoints/step-000500.pt  model, EMA, optimisers, scaler, RNG states, step, provenance
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pathgan._io import atomic_write_bytes

__all__ = ["StatsWriter"]

class StatsWriter:
    """Appends one JSON line per call to ``stats.jsonl`` (flushed, so a crash loses nothing logged)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, row: dict[str, Any]) -> None:
        with self.path.open("a") as fh:
            fh.write(json.dumps(row, allow_nan=True) + "\n")

    def truncate_after(self, step: int) -> None:
        """Drop rows logged after ``step`` (they belong to a run that died after its last checkpoint),
        and a last line cut off by a kill in the middle of its write."""
        if not self.path.exists():
            return
        keep = [ln for ln in self.path.read_text().splitlines() if _logged_by(ln, step)]
        atomic_write_bytes(self.path, ("\n".join(keep) + ("\n" if keep else "")).encode())


def _logged_by(line: str, step: int) -> bool:
    """A whole stats line logged at or before ``step``."""
    s = _step_of(line)
    return s is not None and s <= step


def _step_of(line: str) -> int | None:
    """The ``step`` of one stats line; None for a line that is not a whole JSON object."""
    try:
        row = json.loads(line)
    except ValueError:
        return None
    return int(row.get("step", 0)) if isinstance(row, dict) else None
