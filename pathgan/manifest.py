"""Read and validate ``slides_manifest.csv``, or discover slides in a folder.

Manifest columns: ``slide_id`` and ``path`` are required; ``label``, ``split`` (train/val/test) and
``mpp_override`` (microns per pixel) are optional. Relative paths are relative to the manifest's
folder; ``$VARS`` are expanded. Every problem is reported with its row number (the header is row 1),
all at once, so a user fixes a manifest in one pass.
"""

from __future__ import annotations

import csv
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from pathgan.errors import ManifestError

__all__ = ["SLIDE_EXTENSIONS", "SlideEntry", "Split", "discover_slides", "read_manifest", "slides_from_inputs"]

Split = Literal["train", "val", "test"]
REQUIRED_COLUMNS = ("slide_id", "path")
OPTIONAL_COLUMNS = ("label", "split", "mpp_override")
#: File extensions treated as slides when a folder is given (lower case).
SLIDE_EXTENSIONS = (".svs", ".tif", ".tiff", ".ndpi", ".mrxs", ".scn", ".vms", ".vmu", ".bif", ".svslide")
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True, kw_only=True)
class SlideEntry:
    """One slide to process. ``row`` is its manifest row (None when discovered in a folder)."""

    slide_id: str
    path: Path
    label: str | None = None
    split: Split | None = None
    mpp_override: float | None = None
    row: int | None = None


def read_manifest(path: str | Path) -> list[SlideEntry]:
    """Parse and validate a manifest CSV.

    Raises
    ------
    ManifestError
        Listing every problem: missing columns, empty or unsafe ids, duplicate ids, missing files,
        unknown splits, non-numeric or implausible ``mpp_override``.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest {path} does not exist")
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise ManifestError(
                f"manifest {path}: missing column(s) {missing}; found {header}; "
                f"required {list(REQUIRED_COLUMNS)}, optional {list(OPTIONAL_COLUMNS)}"
            )
        unknown = [c for c in header if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
        if unknown:
            raise ManifestError(
                f"manifest {path}: unknown column(s) {unknown}; allowed {list(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)}"
            )
        rows = [{(k or "").strip(): (v or "").strip() for k, v in r.items()} for r in reader]
    errors: list[str] = []
    entries: list[SlideEntry] = []
    first_row: dict[str, int] = {}
    for i, r in enumerate(rows, start=2):
        sid, raw = r.get("slide_id", ""), r.get("path", "")
        where = f"row {i}"
        if not _ID_RE.match(sid):
            errors.append(f"{where}: slide_id {sid!r} must be non-empty letters, digits, '.', '_' or '-'")
        elif sid in first_row:
            errors.append(f"{where}: duplicate slide_id {sid!r} (first seen in row {first_row[sid]})")
        else:
            first_row[sid] = i
        slide_path = Path(os.path.expandvars(raw)) if raw else None
        if slide_path is None:
            errors.append(f"{where}: path is empty")
        else:
            if not slide_path.is_absolute():
                slide_path = (path.parent / slide_path).resolve()
            if not slide_path.is_file():
                errors.append(f"{where}: path {raw!r} does not exist (resolved to {slide_path})")
        split = r.get("split") or None
        if split is not None and split not in get_args(Split):
            errors.append(f"{where}: split {split!r} is not one of {list(get_args(Split))} (or empty)")
        mpp: float | None = None
        if r.get("mpp_override"):
            try:
                mpp = float(r["mpp_override"])
            except ValueError:
                mpp = math.nan
            if not (math.isfinite(mpp) and 0.05 <= mpp <= 100):
                errors.append(f"{where}: mpp_override {r['mpp_override']!r} must be a number in 0.05-100 um/px")
        if not errors or errors[-1].split(":")[0] != where:
            entries.append(
                SlideEntry(
                    slide_id=sid, path=slide_path or Path(), label=r.get("label") or None,
                    split=split, mpp_override=mpp, row=i,  # type: ignore[arg-type]
                )
            )
    if errors:
        raise ManifestError(f"manifest {path} has {len(errors)} problem(s):\n  " + "\n  ".join(errors))
    if not entries:
        raise ManifestError(f"manifest {path} lists no slides")
    return entries


def discover_slides(folder: str | Path) -> list[SlideEntry]:
    """Every file under ``folder`` (recursively) with a slide extension; id = file stem.

    Raises
    ------
    ManifestError
        The folder does not exist, holds no slide, or two slides share a stem.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ManifestError(f"slide folder {folder} does not exist or is not a folder")
    found = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SLIDE_EXTENSIONS)
    if not found:
        raise ManifestError(f"no slides with extensions {list(SLIDE_EXTENSIONS)} under {folder}")
    seen: dict[str, Path] = {}
    entries = []
    for p in found:
        sid = p.stem
        if sid in seen:
            raise ManifestError(f"two slides share the id {sid!r}: {seen[sid]} and {p}; use a manifest to name them")
        seen[sid] = p
        entries.append(SlideEntry(slide_id=sid, path=p.resolve()))
    return entries


def slides_from_inputs(inputs: list[Path]) -> list[SlideEntry]:
    """The slides named on a command line: files (id = stem) and folders (searched recursively).

    Raises
    ------
    ManifestError
        A path that is neither a file nor a folder, a folder with no slide, or two slides with one id.
    """
    entries: list[SlideEntry] = []
    for item in map(Path, inputs):
        if item.is_dir():
            entries.extend(discover_slides(item))
        elif item.is_file():
            entries.append(SlideEntry(slide_id=item.stem, path=item.resolve()))
        else:
            raise ManifestError(f"{item} is neither a slide file nor a folder")
    seen: dict[str, Path] = {}
    for e in entries:
        if e.slide_id in seen and seen[e.slide_id] != e.path:
            raise ManifestError(f"two slides share the id {e.slide_id!r}: {seen[e.slide_id]} and {e.path}; "
                                "use a manifest to name them")
        seen[e.slide_id] = e.path
    return entries
