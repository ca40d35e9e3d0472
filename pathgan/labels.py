"""Class labels of patches: the label CSV (per slide or per tile) and each store's labels.

Used by training (conditional models), classification and synthetic export; it knows nothing of
the Zarr layout beyond a store's ``slide_id``, ``coords`` and ``attrs``.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pathgan.errors import ConfigError

__all__ = ["LabelTable", "check_class_name", "read_label_csv", "store_labels"]

_BAD_NAME = re.compile(r"[/\\\x00]")


def check_class_name(name: str) -> str:
    """``name`` if it can be a folder of the ImageFolder tree, else :class:`ConfigError`."""
    if (not isinstance(name, str) or not name or name in (".", "..") or _BAD_NAME.search(name)
            or name != name.strip()):
        raise ConfigError(f"class name {name!r} cannot be a folder name: use a non-empty name without "
                          "'/', '\\' or surrounding spaces, other than '.' and '..'")
    return name


@dataclass(frozen=True)
class LabelTable:
    """Labels read from a CSV: per slide (``slide_id,label``) or per tile (``slide_id,x,y,label``,
    level-0 top-left corners as in a store's ``coords``)."""

    path: Path
    slide: dict[str, str]
    tile: dict[str, dict[tuple[int, int], str]]

    @property
    def per_tile(self) -> bool:
        return bool(self.tile)


def read_label_csv(path: Path) -> LabelTable:
    """Read a label CSV. Columns ``slide_id`` and ``label`` are required; with ``x`` and ``y`` it is a
    tile-label table. Other columns (a manifest's ``path``, ``split``) are ignored; an empty label
    leaves that slide or tile unlabelled.

    Raises
    ------
    ConfigError
        Missing file or columns, non-integer coordinates, one slide or tile with two labels, or a
        bad class name; every problem listed with its line number.
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in reader.fieldnames or []]
            # A row with more fields than the header puts the extras under the key None: ignore them.
            rows = [{k.strip(): (v or "").strip() for k, v in r.items() if k is not None} for r in reader]
    except OSError as err:
        raise ConfigError(f"--labels {path}: cannot read ({err})") from err
    missing = [c for c in ("slide_id", "label") if c not in header]
    if missing:
        raise ConfigError(f"--labels {path}: missing column(s) {missing}; expected slide_id,label or "
                          f"slide_id,x,y,label (got {header})")
    per_tile = "x" in header and "y" in header
    slide: dict[str, str] = {}
    tile: dict[str, dict[tuple[int, int], str]] = {}
    problems: list[str] = []
    for line, r in enumerate(rows, start=2):
        sid, label = r.get("slide_id", ""), r.get("label", "")
        if not sid:
            problems.append(f"line {line}: empty slide_id")
            continue
        if not label:
            continue
        try:
            check_class_name(label)
        except ConfigError as err:
            problems.append(f"line {line}: {err}")
            continue
        if per_tile:
            try:
                xy = (int(r["x"]), int(r["y"]))
            except ValueError:
                problems.append(f"line {line}: x, y must be integers (level-0 pixels), got {r['x']!r}, {r['y']!r}")
                continue
            old = tile.setdefault(sid, {}).setdefault(xy, label)
            if old != label:
                problems.append(f"line {line}: tile {sid} {xy} labelled both {old!r} and {label!r}")
        else:
            old = slide.setdefault(sid, label)
            if old != label:
                problems.append(f"line {line}: slide {sid} labelled both {old!r} and {label!r}")
    if problems:
        raise ConfigError(f"--labels {path}: {len(problems)} problem(s):\n  " + "\n  ".join(problems[:20]))
    if not slide and not tile:
        raise ConfigError(f"--labels {path}: no labelled rows")
    return LabelTable(path=path, slide=slide, tile=tile)


def store_labels(store: Any, table: LabelTable | None) -> tuple[np.ndarray, int]:
    """Per-patch labels of one store, str object [N] (``""``: unlabelled), and how many of the table's
    tile rows for this slide matched no patch.

    ``table=None`` uses the store's slide ``label`` attribute (from the manifest at tiling time).
    """
    n = len(store)
    if table is None:
        label = store.attrs.get("label")
        return np.full(n, "" if label in (None, "") else str(label), dtype=object), 0
    if not table.per_tile:
        return np.full(n, table.slide.get(store.slide_id, ""), dtype=object), 0
    out = np.full(n, "", dtype=object)
    rows = table.tile.get(store.slide_id, {})
    if rows:
        where = {(int(x), int(y)): i for i, (x, y) in enumerate(store.coords)}
        hits = [(where[xy], lab) for xy, lab in rows.items() if xy in where]
        for i, lab in hits:
            out[i] = lab
        return out, len(rows) - len(hits)
    return out, 0
