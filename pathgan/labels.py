"""Class labels of patches: the label CSV (per slide or per tile) and each store's labels.

Used by training (conditional models), classification and synthetic export; it knows nothing of
the Zarr layout beyond a store's ``slide_id``, ``coords`` and ``attrs``.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pathgan.errors import ConfigError

__all__ = ["LabelTable", "check_class_name", "read_label_csv", "store_labels"]

_BAD_NAME = re.compile(r"[/\\\x00]")
_MAX_LISTED = 20


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
    level-0 top-left corners as in a store's ``coords``). ``lines`` maps each tile
    ``(slide_id, x, y)`` to the CSV line it came from (line 1 is the header)."""

    path: Path
    slide: dict[str, str]
    tile: dict[str, dict[tuple[int, int], str]]
    lines: dict[tuple[str, int, int], int] = field(default_factory=dict)

    @property
    def per_tile(self) -> bool:
        return bool(self.tile)


#: A caller's own check of one tile row: ``(slide_id, (x, y))`` -> a problem, or None when fine.
RowCheck = Callable[[str, tuple[int, int]], "str | None"]


def _as_int(text: str) -> int:
    """An integer coordinate, also when written as ``12.0`` by a spreadsheet; ValueError otherwise."""
    value = float(text)
    if not math.isfinite(value) or value != int(value):
        raise ValueError(text)  # caught: the caller reports the line
    return int(value)


def read_label_csv(path: Path, *, strict: bool = False, tiles_only: bool = False,
                   check: RowCheck | None = None, what: str | None = None) -> LabelTable:
    """Read a label CSV, the one reader for every command that takes labels. Columns ``slide_id``
    and ``label`` are required; with ``x`` and ``y`` it is a tile-label table. Other columns (a
    manifest's ``path``, ``split``) are ignored.

    Two rule sets:

    * default (``train-latent --labels``, ``export-synthetic --labels``): an empty label leaves that
      slide or tile unlabelled; a row repeated with the same label is harmless.
    * ``strict=True`` (``classify``, where every listed tile is a training example): an empty label
      and a tile listed twice are problems.

    ``tiles_only`` requires the ``x``, ``y`` columns. ``check`` is called on every tile row and may
    return a problem of its own (e.g. "no patch at these coordinates"), so that every problem of
    the file, the parser's and the caller's, is listed in one error with its line number.

    Raises
    ------
    ConfigError
        Missing file or columns, non-integer coordinates, one slide or tile with two labels, a bad
        class name, or what ``check`` found; every problem listed with its line number.
    """
    path = Path(path)
    name = what or f"--labels {path}"
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [(h or "").strip() for h in reader.fieldnames or []]
            # A row with more fields than the header puts the extras under the key None: ignore them.
            rows = [{k.strip(): (v or "").strip() for k, v in r.items() if k is not None} for r in reader]
    except FileNotFoundError:
        raise ConfigError(f"{name}: file does not exist") from None
    except OSError as err:
        raise ConfigError(f"{name}: cannot read ({err})") from err
    required = ("slide_id", "x", "y", "label") if tiles_only else ("slide_id", "label")
    missing = [c for c in required if c not in header]
    if missing:
        raise ConfigError(f"{name}: missing column(s) {missing}; expected "
                          f"{'slide_id,x,y,label' if tiles_only else 'slide_id,label or slide_id,x,y,label'} "
                          f"(got {header})")
    per_tile = "x" in header and "y" in header
    slide: dict[str, str] = {}
    tile: dict[str, dict[tuple[int, int], str]] = {}
    lines: dict[tuple[str, int, int], int] = {}
    problems: list[str] = []
    for line, r in enumerate(rows, start=2):
        sid, label = r.get("slide_id", ""), r.get("label", "")
        if not sid:
            problems.append(f"line {line}: empty slide_id")
            continue
        if per_tile:
            try:
                xy = (_as_int(r["x"]), _as_int(r["y"]))
            except ValueError:
                problems.append(f"line {line}: x={r['x']!r}, y={r['y']!r} must be integers (level-0 pixels)")
                continue
            found = check(sid, xy) if check is not None else None
            if found:
                problems.append(f"line {line}: {found}")
                continue
        if not label:
            if strict:
                problems.append(f"line {line}: label is empty")
            continue
        try:
            check_class_name(label)
        except ConfigError as err:
            problems.append(f"line {line}: {err}")
            continue
        if per_tile:
            key = (sid, *xy)
            old = tile.setdefault(sid, {}).setdefault(xy, label)
            if strict and key in lines:
                problems.append(f"line {line}: tile {xy} of slide {sid!r} is labelled twice (first in line {lines[key]})")
            elif old != label:
                problems.append(f"line {line}: tile {sid} {xy} labelled both {old!r} and {label!r}")
            lines.setdefault(key, line)
        else:
            old = slide.setdefault(sid, label)
            if old != label:
                problems.append(f"line {line}: slide {sid} labelled both {old!r} and {label!r}")
    if problems:
        shown = problems[:_MAX_LISTED] + ([f"... and {len(problems) - _MAX_LISTED} more"]
                                          if len(problems) > _MAX_LISTED else [])
        raise ConfigError(f"{name}: {len(problems)} problem(s):\n  " + "\n  ".join(shown))
    if not slide and not tile:
        raise ConfigError(f"{name}: no labelled rows")
    return LabelTable(path=path, slide=slide, tile=tile, lines=lines)


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
