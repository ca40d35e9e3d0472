"""What the batch report shows, gathered from a ``pathgan tile`` output folder.

Sources, nothing else: ``tile_status.csv`` (status, patches, seconds, error of the last run, one row
per slide), each complete ``<slide_id>.zarr`` store (attributes, QC arrays, tissue mask) and
``previews/<slide_id>.png``. Stores in the folder that the table does not list (tiled by an earlier
run) get the status ``unlisted``. Reading only: the folder is not locked or changed.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from pathgan.errors import PathganError, StoreError

__all__ = ["PREVIEWS_DIR", "QC_SCORES", "STATUSES", "TILE_STATUS_FILE", "BatchReport", "SlideRow",
           "gather_batch", "preview_image", "tissue_area_mm2"]

#: Written by ``pathgan tile`` (``pathgan.stages.tile.STATUS_FILE``; a test keeps the two equal).
TILE_STATUS_FILE = "tile_status.csv"
PREVIEWS_DIR = "previews"
STATUSES = ("done", "skipped", "no_tissue", "failed", "unlisted")
QC_SCORES = ("blur", "pen_fraction", "white_fraction")
_COLUMNS = ("slide_id", "status", "n_patches", "seconds", "error")


@dataclass(frozen=True, kw_only=True)
class SlideRow:
    """One slide of the batch. Fields a failed slide does not have (no store) are None.

    ``mpp_*`` are microns per pixel: ``mpp_requested`` the patches' target, ``mpp_effective`` what
    they are (x, y), ``mpp_slide`` the slide's level 0 (x, y), ``mpp_source`` where that came from
    (``metadata`` or ``mpp_override``). ``qc`` maps each of :data:`QC_SCORES` to its per-patch
    ``float32 [N]`` array.
    """

    slide_id: str
    status: str
    n_patches: int | None = None
    n_grid: int | None = None
    seconds: float | None = None
    error: str = ""
    store: Path | None = None
    patch_px: int | None = None
    mpp_requested: float | None = None
    mpp_effective: tuple[float, float] | None = None
    mpp_slide: tuple[float, float] | None = None
    mpp_source: str | None = None
    tissue_area_mm2: float | None = None
    qc: dict[str, np.ndarray] = field(default_factory=dict)
    preview: Path | None = None


@dataclass(frozen=True, kw_only=True)
class BatchReport:
    """Every slide of a stores folder, in the status table's order, then unlisted stores by name."""

    folder: Path
    rows: tuple[SlideRow, ...]
    status_table: Path | None

    @property
    def counts(self) -> dict[str, int]:
        """Slides per status, every status of :data:`STATUSES` present (0 when none)."""
        out = dict.fromkeys(STATUSES, 0)
        for r in self.rows:
            out[r.status] = out.get(r.status, 0) + 1
        return out

    @property
    def n_patches(self) -> int:
        """Patches in the folder's complete stores (done, skipped and unlisted slides)."""
        return sum(r.n_patches or 0 for r in self.rows if r.store is not None)

    @property
    def tissue_area_mm2(self) -> float:
        """Tissue area of every slide with a store, mm^2 (see :func:`tissue_area_mm2`)."""
        return float(sum(r.tissue_area_mm2 or 0.0 for r in self.rows))


def tissue_area_mm2(tissue_mask: np.ndarray, thumbnail_mpp_xy: tuple[float, float]) -> float:
    """Tissue area in mm^2: tissue pixels of the thumbnail-resolution mask times the area of one
    thumbnail pixel (``mpp_x * mpp_y`` um^2; 1 mm^2 = 1e6 um^2)."""
    return float(np.count_nonzero(tissue_mask)) * thumbnail_mpp_xy[0] * thumbnail_mpp_xy[1] / 1e6


def _read_status_table(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in _COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise PathganError(f"{path}: not a pathgan tile status table (missing columns {missing}; "
                                   f"expected {list(_COLUMNS)})")
            return list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise PathganError(f"{path}: cannot be read as a tile status table ({err})") from err


def _number(text: str | None, kind: type) -> Any:
    try:
        return kind(text) if text not in (None, "") else None
    except ValueError:
        return None


def _from_store(row: SlideRow, path: Path) -> SlideRow:
    """``row`` completed from its store: attributes, QC arrays and tissue area."""
    from pathgan.store import PatchStore

    try:
        store = PatchStore(path)
        a = store.meta
        qc = {name: store.qc(name) for name in QC_SCORES}
        area = tissue_area_mm2(store.mask("tissue"), a.thumbnail_mpp) if a.thumbnail_mpp else None
    except (StoreError, OSError, KeyError, ValueError) as err:
        note = f"store {path.name} cannot be read: {err}"
        return replace(row, error=f"{row.error}; {note}" if row.error else note)
    mpp0 = a.source.get("mpp")
    return replace(
        row, store=path, n_patches=a.n_patches, n_grid=a.n_grid, patch_px=a.patch_px, mpp_requested=a.mpp_requested,
        mpp_effective=a.mpp_effective, mpp_source=a.source.get("mpp_source"), tissue_area_mm2=area, qc=qc,
        mpp_slide=(float(mpp0[0]), float(mpp0[1])) if isinstance(mpp0, list | tuple) and len(mpp0) == 2 else None,
    )


def gather_batch(folder: str | Path) -> BatchReport:
    """Everything the batch report shows about ``folder`` (a ``pathgan tile --out`` folder).

    Raises
    ------
    PathganError : the status table exists but is not one; the folder holds neither a status
        table nor any ``*.zarr`` store.
    """
    folder = Path(folder)
    table = folder / TILE_STATUS_FILE
    records = _read_status_table(table) if table.is_file() else []
    stores = sorted(p for p in folder.glob("*.zarr") if p.is_dir())
    if not records and not stores and not table.is_file():
        raise PathganError(f"{folder}: no {TILE_STATUS_FILE} and no <slide_id>.zarr stores; "
                           "expected the --out folder of pathgan tile")
    rows: list[SlideRow] = []
    seen: set[str] = set()
    for rec in records:
        sid = rec["slide_id"]
        seen.add(sid)
        rows.append(SlideRow(slide_id=sid, status=rec["status"] or "failed", n_patches=_number(rec["n_patches"], int),
                             seconds=_number(rec["seconds"], float), error=rec["error"] or ""))
    rows += [SlideRow(slide_id=p.stem, status="unlisted", error=f"not in {TILE_STATUS_FILE} (tiled by an earlier run)")
             for p in stores if p.stem not in seen]
    done: list[SlideRow] = []
    for row in rows:
        path = folder / f"{row.slide_id}.zarr"
        if path.is_dir() and row.status != "failed":  # a failed slide's store, if any, is an older one
            row = _from_store(row, path)
        preview = folder / PREVIEWS_DIR / f"{row.slide_id}.png"
        done.append(replace(row, preview=preview if preview.is_file() else None))
    return BatchReport(folder=folder, rows=tuple(done), status_table=table if table.is_file() else None)


def preview_image(row: SlideRow) -> np.ndarray | None:
    """The slide's QC preview, ``uint8 (H, W, 3)``: ``previews/<slide_id>.png`` when it exists, else
    drawn from the store (thumbnail, tissue contour, pen ink, kept grid), else None."""
    from pathgan.report._images import read_rgb

    if row.preview is not None:
        try:
            return read_rgb(row.preview)
        except OSError:
            pass
    if row.store is None:
        return None
    from pathgan.store import PatchStore
    from pathgan.tissue import render_preview

    try:
        store = PatchStore(row.store)
        a = store.meta
        thumb, tissue, pen = store.thumbnail(), store.mask("tissue"), store.mask("pen")
    except (StoreError, OSError, KeyError, ValueError):
        return None
    boxes = np.zeros((0, 4))
    mpp0 = a.source.get("mpp")
    if a.thumbnail_mpp and a.footprint0 and isinstance(mpp0, list | tuple) and len(store.coords):
        scale = np.array([a.thumbnail_mpp[0] / mpp0[0], a.thumbnail_mpp[1] / mpp0[1]])  # level-0 px per thumb px
        boxes = np.concatenate([store.coords, store.coords + np.asarray(a.footprint0)], axis=1) / np.tile(scale, 2)
    return render_preview(thumb, tissue, pen, boxes)
