"""Regions of interest on a tiled slide: per-patch scores -> heatmap -> polygons in level-0 pixels.

Scoring (:func:`score_patches`) is kept apart from geometry (:func:`paint_heatmap`,
:func:`heatmap`, :func:`roi_polygons`), so the geometry can be fed any per-patch score.

Frames: thumbnail pixel ``(row i, col j)`` is the unit square ``[j, j + 1) x [i, i + 1)`` in
thumbnail pixels, and thumbnail ``(x, y)`` maps to level-0 ``(x * sx, y * sy)`` with
``(sx, sy) = thumbnail_mpp / level0_mpp`` (the tile stage's convention, see
``pathgan.tissue.region_fractions``). Polygons are level-0 ``(x, y)`` pixels, the frame QuPath and
openslide use.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from scipy import ndimage as ndi
from skimage.measure import approximate_polygon, find_contours

from pathgan.errors import ConfigError, ShapeError
from pathgan.store import PatchStore

__all__ = [
    "RESCALE_PERCENTILES",
    "PatchClassifier",
    "RoiPolygon",
    "StoreFrame",
    "heatmap",
    "overlay_figure",
    "paint_heatmap",
    "ring_area",
    "roi_polygons",
    "score_patches",
    "store_frame",
]

#: Percentiles of a slide's projections mapped to scores 0 and 1 (direction scores).
RESCALE_PERCENTILES = (1.0, 99.0)
_CHUNK = 4096  # patches painted per vectorised block (bounds the [chunk, kh, kw] weight array)


class PatchClassifier(Protocol):
    """What :func:`score_patches` needs from a classifier (``pathgan.downstream.load_classifier``)."""

    @property
    def classes(self) -> list[str]: ...

    @property
    def run_id(self) -> str:
        """The run whose latents the classifier was fitted on."""
        ...

    def predict_proba(self, latents: np.ndarray) -> np.ndarray:
        """float32 ``[N, w_dim]`` -> probabilities ``[N, len(classes)]``."""
        ...


@dataclass(frozen=True, kw_only=True)
class StoreFrame:
    """Geometry of a store's slide, from its attributes.

    Attributes
    ----------
    slide_wh : level-0 ``(width, height)`` in pixels.
    level0_mpp : microns per level-0 pixel ``(x, y)``.
    thumbnail_mpp : microns per thumbnail pixel ``(x, y)``.
    thumbnail_hw : thumbnail ``(height, width)`` in pixels.
    footprint0 : level-0 pixels ``(width, height)`` one patch covers.
    """

    slide_wh: tuple[int, int]
    level0_mpp: tuple[float, float]
    thumbnail_mpp: tuple[float, float]
    thumbnail_hw: tuple[int, int]
    footprint0: tuple[float, float]

    @property
    def scale_xy(self) -> tuple[float, float]:
        """Level-0 pixels per thumbnail pixel ``(x, y)``."""
        return (self.thumbnail_mpp[0] / self.level0_mpp[0], self.thumbnail_mpp[1] / self.level0_mpp[1])

    @property
    def patch_area_um2(self) -> float:
        return self.footprint0[0] * self.level0_mpp[0] * self.footprint0[1] * self.level0_mpp[1]


def _pair(value: Any, name: str) -> tuple[float, float]:
    arr = np.asarray(value, np.float64).reshape(-1)
    if arr.size == 1:
        arr = np.repeat(arr, 2)
    if arr.size != 2 or not np.all(np.isfinite(arr)) or not np.all(arr > 0):
        raise ConfigError(f"{name} must be a positive number or (x, y) pair; received {value!r}")
    return float(arr[0]), float(arr[1])


def store_frame(store: PatchStore) -> StoreFrame:
    """The :class:`StoreFrame` of ``store`` (raises :class:`ConfigError` when attributes are missing)."""
    a = store.attrs
    if a.get("synthetic"):
        raise ConfigError(f"{store.path} is a synthetic store (pathgan export-synthetic): it has no slide to find "
                          "regions on")
    thumb_hw = store.thumbnail_shape[:2]  # metadata only: heatmaps need the grid, not the pixels
    try:
        dims = a["source"]["level_dimensions"][0]
        frame = StoreFrame(
            slide_wh=(int(dims[0]), int(dims[1])),
            level0_mpp=_pair(a["source"]["mpp"], "source.mpp"),
            thumbnail_mpp=_pair(a["thumbnail_mpp"], "thumbnail_mpp"),
            thumbnail_hw=(int(thumb_hw[0]), int(thumb_hw[1])),
            footprint0=_pair(a["footprint0"], "footprint0"),
        )
    except (KeyError, IndexError, TypeError) as err:
        raise ConfigError(
            f"{store.path} lacks the geometry attributes an ROI needs (source.level_dimensions, source.mpp, "
            f"thumbnail_mpp, footprint0): {err!r}; re-tile it with `pathgan tile`"
        ) from err
    return frame


# --------------------------------------------------------------------------------------------- heatmap


def _overlaps(lo: np.ndarray, hi: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per patch, the first pixel index and the overlap lengths ``[n, k]`` with pixels ``start + 0..k-1``
    along one axis (lengths 0 outside ``[0, size)``)."""
    start = np.floor(lo).astype(np.int64)
    k = int(np.max(np.ceil(hi) - start)) if len(lo) else 1
    j = start[:, None] + np.arange(k)[None, :]  # [n, k] pixel indices
    length = np.minimum(hi[:, None], j + 1) - np.maximum(lo[:, None], j)
    length = np.where((j >= 0) & (j < size), np.clip(length, 0.0, 1.0), 0.0)
    return j, length


def paint_heatmap(
    coords_xy: np.ndarray,
    scores: np.ndarray,
    *,
    footprint0: tuple[float, float],
    scale_xy: tuple[float, float],
    shape_hw: tuple[int, int],
    min_coverage: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Paint per-patch scores over their footprints on a grid of thumbnail pixels.

    Parameters
    ----------
    coords_xy : int64 ``[N, 2]`` level-0 ``(x, y)`` of each patch's top-left corner.
    scores : ``[N]`` finite scores.
    footprint0 : level-0 pixels ``(width, height)`` of one patch.
    scale_xy : level-0 pixels per thumbnail pixel ``(x, y)``.
    shape_hw : thumbnail ``(height, width)``.
    min_coverage : pixels whose summed patch coverage is below this (in pixel areas) are NaN.

    Returns
    -------
    heat : float32 ``[h, w]``: the coverage-weighted mean score of the patches over each pixel
        (exact area weights, so overlapping patches are averaged); NaN where coverage < min_coverage.
    coverage : float32 ``[h, w]``: summed patch area over each pixel in pixel areas (1 = one patch
        covers it entirely; above 1 where patches overlap).

    Raises
    ------
    ShapeError
        ``coords_xy`` is not ``[N, 2]`` or ``scores`` is not ``[N]`` and finite.
    """
    coords = np.asarray(coords_xy, np.float64)
    vals = np.asarray(scores, np.float64)
    if coords.ndim != 2 or coords.shape[1] != 2 or vals.shape != (len(coords),):
        raise ShapeError(f"expected coords [N, 2] and scores [N]; got {list(coords.shape)} and {list(vals.shape)}")
    if not np.all(np.isfinite(vals)):
        raise ShapeError(f"scores must be finite; {int(np.sum(~np.isfinite(vals)))} of {len(vals)} are NaN or inf")
    h, w = int(shape_hw[0]), int(shape_hw[1])
    sx, sy = float(scale_xy[0]), float(scale_xy[1])
    weight = np.zeros(h * w, np.float64)
    total = np.zeros(h * w, np.float64)
    for s in range(0, len(coords), _CHUNK):
        c, v = coords[s : s + _CHUNK], vals[s : s + _CHUNK]
        cols, ox = _overlaps(c[:, 0] / sx, (c[:, 0] + footprint0[0]) / sx, w)  # [n, kw]
        rows, oy = _overlaps(c[:, 1] / sy, (c[:, 1] + footprint0[1]) / sy, h)  # [n, kh]
        area = oy[:, :, None] * ox[:, None, :]  # [n, kh, kw] overlap in pixel areas
        flat = (np.clip(rows, 0, h - 1)[:, :, None] * w + np.clip(cols, 0, w - 1)[:, None, :]).ravel()
        # Stores keep patches in spatial blocks, so a chunk spans a band of rows: count over that band only.
        lo = int(flat.min())
        span = int(flat.max()) - lo + 1
        weight[lo : lo + span] += np.bincount(flat - lo, area.ravel(), minlength=span)
        total[lo : lo + span] += np.bincount(flat - lo, (area * v[:, None, None]).ravel(), minlength=span)
    coverage = weight.reshape(h, w)
    with np.errstate(invalid="ignore", divide="ignore"):
        heat = total.reshape(h, w) / coverage
    heat[coverage < max(min_coverage, 1e-12)] = np.nan
    return heat.astype(np.float32), coverage.astype(np.float32)


def heatmap(store: PatchStore, scores: np.ndarray, *, min_coverage: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """:func:`paint_heatmap` of ``scores`` (``[len(store)]``, row-aligned with ``store.coords``) on the
    store's thumbnail grid; returns ``(heat, coverage)``, both float32 ``[h, w]``."""
    frame = store_frame(store)
    return paint_heatmap(store.coords, scores, footprint0=frame.footprint0, scale_xy=frame.scale_xy,
                         shape_hw=frame.thumbnail_hw, min_coverage=min_coverage)


# ------------------------------------------------------------------------------------------- polygons


@dataclass(frozen=True, kw_only=True)
class RoiPolygon:
    """One region of interest in level-0 pixels.

    Attributes
    ----------
    exterior : float64 ``[n, 2]`` level-0 ``(x, y)``, closed (first == last), positive shoelace
        area on the raw numbers (counter-clockwise per RFC 7946; clockwise on screen, where y
        points down).
    holes : closed rings of the same kind with negative shoelace area.
    area_um2 : exterior minus holes, in square microns.
    mean_score, max_score : of the heatmap pixels inside the region.
    """

    exterior: np.ndarray
    holes: list[np.ndarray] = field(default_factory=list)
    area_um2: float
    mean_score: float
    max_score: float


def ring_area(ring: np.ndarray) -> float:
    """Signed shoelace area of a closed ``[n, 2]`` ring (positive = counter-clockwise in (x, y))."""
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * float(np.sum(x[:-1] * y[1:] - x[1:] * y[:-1]))


def _components(mask: np.ndarray) -> np.ndarray:
    labels, _ = ndi.label(mask, structure=np.ones((3, 3), bool))  # 8-connected foreground
    return np.asarray(labels)


def _drop_small(mask: np.ndarray, min_px: float, *, connectivity8: bool) -> np.ndarray:
    structure = np.ones((3, 3), bool) if connectivity8 else None
    labels, n = ndi.label(mask, structure=structure)
    if n == 0 or min_px <= 0:
        return mask
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_px
    keep[0] = False
    return keep[labels]


def _staircase(xy: np.ndarray) -> np.ndarray:
    """Exact pixel-edge outline from a closed marching-squares contour of a binary image.

    ``xy`` are continuous thumbnail coordinates (closed ring). Each marching-squares vertex is the
    midpoint of a pixel edge on the region's boundary, and consecutive vertices belong to edges
    meeting at one pixel corner; where they turn, the true boundary passes through that corner
    (x from the vertex on a vertical edge, y from the one on a horizontal edge). Inserting those
    corners and dropping collinear points gives the staircase exactly, instead of marching
    squares' cut corners. Corners that two turns share (a saddle, where regions touch diagonally)
    keep the cut, so the ring never touches itself.
    """
    a, b = xy[:-1], xy[1:]
    turn = (a[:, 0] != b[:, 0]) & (a[:, 1] != b[:, 1])
    a_vertical = np.isclose(a[:, 0], np.round(a[:, 0]))  # a lies on a vertical pixel edge (x integer)
    corner = np.where(a_vertical[:, None], np.stack([a[:, 0], b[:, 1]], 1), np.stack([b[:, 0], a[:, 1]], 1))
    key = np.round(corner * 2).astype(np.int64)
    _, inverse, counts = np.unique(key[turn], axis=0, return_inverse=True, return_counts=True)
    shared = np.zeros(len(a), bool)
    shared[np.flatnonzero(turn)] = counts[inverse.ravel()] > 1
    insert = turn & ~shared
    pts: list[np.ndarray] = []
    for k in range(len(a)):
        pts.append(a[k])
        if insert[k]:
            pts.append(corner[k])
    ring = np.asarray(pts)
    # drop points collinear with their neighbours (the edge midpoints on straight runs)
    prev, nxt = np.roll(ring, 1, axis=0), np.roll(ring, -1, axis=0)
    cross = (ring[:, 0] - prev[:, 0]) * (nxt[:, 1] - ring[:, 1]) - (ring[:, 1] - prev[:, 1]) * (nxt[:, 0] - ring[:, 0])
    ring = ring[np.abs(cross) > 1e-9]
    return np.vstack([ring, ring[:1]])


def _ring(mask: np.ndarray, *, fully_connected: str, origin_rc: tuple[int, int], scale_xy: tuple[float, float],
          bounds_wh: tuple[float, float], simplify_px: float, ccw: bool) -> np.ndarray:
    """The outline of the single region of ``mask`` as a closed level-0 ring of the asked orientation."""
    padded = np.pad(mask, 1).astype(np.float32)  # padding closes rings that touch the crop's edge
    contours = find_contours(padded, 0.5, fully_connected=fully_connected)
    rc = max(contours, key=len)  # one region -> one closed contour; max() guards float noise
    # Pixel (i, j)'s centre is thumbnail (x, y) = (j + 0.5, i + 0.5); the pad shifts indices by one.
    xy = np.stack([rc[:, 1] - 1 + origin_rc[1] + 0.5, rc[:, 0] - 1 + origin_rc[0] + 0.5], axis=1)
    if not np.array_equal(xy[0], xy[-1]):
        xy = np.vstack([xy, xy[:1]])
    xy = _staircase(xy)
    if simplify_px > 0:
        simple = approximate_polygon(xy, tolerance=simplify_px)
        if len(simple) >= 4 and abs(ring_area(simple)) > 0:  # tiny rings keep their exact outline
            xy = simple
    x = np.clip(xy[:, 0] * scale_xy[0], 0.0, bounds_wh[0])
    y = np.clip(xy[:, 1] * scale_xy[1], 0.0, bounds_wh[1])
    ring = np.stack([x, y], axis=1)
    if (ring_area(ring) > 0) != ccw:
        ring = ring[::-1].copy()
    return ring


def roi_polygons(
    heat: np.ndarray,
    threshold: float,
    *,
    min_area_um2: float,
    thumbnail_mpp: float | Sequence[float],
    level0_mpp: float | Sequence[float],
    min_hole_um2: float | None = None,
    simplify_px: float = 0.5,
    slide_wh: tuple[float, float] | None = None,
) -> list[RoiPolygon]:
    """Threshold a heatmap into polygons in level-0 pixels, largest first.

    Parameters
    ----------
    heat : float ``[h, w]`` scores at thumbnail resolution, NaN where there is no patch.
    threshold : pixels with ``heat >= threshold`` are in a region.
    min_area_um2 : regions (8-connected) smaller than this are dropped.
    thumbnail_mpp, level0_mpp : microns per pixel ``(x, y)`` (or one number) of the heatmap and of level 0.
    min_hole_um2 : holes smaller than this are filled [``min_area_um2``].
    simplify_px : Douglas-Peucker tolerance in thumbnail pixels; every vertex of the exact pixel-edge
        outline stays within it of the simplified ring (0 keeps the exact staircase).
    slide_wh : level-0 ``(width, height)`` to clip vertices to [the heatmap's extent].

    Returns
    -------
    list of :class:`RoiPolygon`; each has one exterior and its holes (4-connected background).
    """
    arr = np.asarray(heat, np.float64)
    if arr.ndim != 2:
        raise ShapeError(f"heat must be 2-D [h, w]; got shape {list(arr.shape)}")
    if not np.isfinite(threshold):
        raise ConfigError(f"threshold must be a finite number; received {threshold!r}")
    if min_area_um2 < 0 or (min_hole_um2 is not None and min_hole_um2 < 0):
        raise ConfigError(f"min_area_um2 and min_hole_um2 must be >= 0; received {min_area_um2}, {min_hole_um2}")
    tmpp, mpp0 = _pair(thumbnail_mpp, "thumbnail_mpp"), _pair(level0_mpp, "level0_mpp")
    scale = (tmpp[0] / mpp0[0], tmpp[1] / mpp0[1])
    px_um2 = tmpp[0] * tmpp[1]
    h, w = arr.shape
    bounds = (float(slide_wh[0]), float(slide_wh[1])) if slide_wh is not None else (w * scale[0], h * scale[1])
    hole_um2 = min_area_um2 if min_hole_um2 is None else min_hole_um2

    with np.errstate(invalid="ignore"):
        mask = np.nan_to_num(arr, nan=-np.inf) >= threshold
    mask = _drop_small(mask, min_area_um2 / px_um2, connectivity8=True)
    labels = _components(mask)
    out: list[RoiPolygon] = []
    for idx, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is None:
            continue
        region = labels[sl] == idx
        filled = ndi.binary_fill_holes(region)  # 4-connected background, the complement of 8-connected
        holes = _drop_small(filled & ~region, hole_um2 / px_um2, connectivity8=False)
        body = filled & ~holes  # small holes become part of the region
        origin = (sl[0].start, sl[1].start)
        kw: dict[str, Any] = {"origin_rc": origin, "scale_xy": scale, "bounds_wh": bounds, "simplify_px": simplify_px}
        exterior = _ring(filled, fully_connected="high", ccw=True, **kw)
        hole_labels, n_holes = ndi.label(holes)
        hole_rings = [_ring(hole_labels == k, fully_connected="low", ccw=False, **kw) for k in range(1, n_holes + 1)]
        area_px0 = ring_area(exterior) + sum(ring_area(r) for r in hole_rings)  # holes are negative
        values = arr[sl][body]
        values = values[np.isfinite(values)]
        out.append(RoiPolygon(
            exterior=exterior,
            holes=hole_rings,
            area_um2=float(area_px0 * mpp0[0] * mpp0[1]),
            mean_score=float(values.mean()) if values.size else float("nan"),
            max_score=float(values.max()) if values.size else float("nan"),
        ))
    out.sort(key=lambda p: -p.area_um2)
    return out


# -------------------------------------------------------------------------------------------- scoring


def score_patches(
    store: PatchStore,
    *,
    run_id: str,
    classifier: PatchClassifier | None = None,
    class_name: str | None = None,
    direction: np.ndarray | None = None,
) -> np.ndarray:
    """Score every patch of ``store`` in ``[0, 1]`` from its latents of ``run_id``.

    Give exactly one of
    - ``classifier`` and ``class_name``: the classifier's probability of that class;
    - ``direction`` (``[w_dim]``): the projection of each latent on the unit direction, rescaled
      so that the slide's :data:`RESCALE_PERCENTILES` (1st, 99th) map to 0 and 1, clipped: scores
      are relative to this slide, and a few outlying patches do not squash the rest (0 everywhere
      when all projections are equal).

    Returns
    -------
    float32 ``[N]``, row-aligned with ``store.coords``.

    Raises
    ------
    ConfigError
        Both or neither source given, unknown class, or a classifier fitted on another run.
    ShapeError
        The direction or the classifier's output has the wrong shape, or is not finite.
    StoreError
        The store has no complete latents of ``run_id``.
    """
    if (classifier is None) == (direction is None):
        raise ConfigError("give a classifier (with class_name) or a direction, exactly one of them")
    if classifier is not None:
        if class_name is None:
            raise ConfigError(f"class_name is required with a classifier; its classes are {list(classifier.classes)}")
        classes = list(classifier.classes)
        if class_name not in classes:
            raise ConfigError(f"class {class_name!r} is not one of the classifier's classes {classes}")
        if classifier.run_id != run_id:
            raise ConfigError(
                f"the classifier was fitted on latents of run {classifier.run_id!r}, not {run_id!r}; "
                f"pass --run {classifier.run_id}"
            )
    w = np.asarray(store.latents(run_id), np.float32)  # [N, w_dim]
    if classifier is not None:
        proba = np.asarray(classifier.predict_proba(w), np.float64)
        if proba.shape != (len(w), len(classes)) or not np.all(np.isfinite(proba)):
            raise ShapeError(f"predict_proba returned {list(proba.shape)} (or non-finite values); "
                             f"expected finite [{len(w)}, {len(classes)}]")
        return np.clip(proba[:, classes.index(str(class_name))], 0.0, 1.0).astype(np.float32)
    raw = np.asarray(direction, np.float64)
    d = raw.squeeze()  # accepts [w_dim], [1, w_dim] and [w_dim, 1]
    if d.shape != (w.shape[1],) or not np.all(np.isfinite(d)) or not np.any(d):
        raise ShapeError(f"the direction must be a finite non-zero vector [{w.shape[1]}] (w_dim of run {run_id!r}); "
                         f"received shape {list(raw.shape)}")
    proj = w.astype(np.float64) @ (d / np.linalg.norm(d))
    if not len(proj):
        return np.zeros(0, np.float32)
    lo, hi = (float(v) for v in np.percentile(proj, RESCALE_PERCENTILES))
    if hi <= lo:  # (nearly) constant beyond the tails: fall back to the full range
        lo, hi = float(proj.min()), float(proj.max())
    if hi <= lo:
        return np.zeros(len(proj), np.float32)
    return np.clip((proj - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


# -------------------------------------------------------------------------------------------- overlay


def overlay_figure(
    thumbnail: np.ndarray,
    heat: np.ndarray,
    polygons: Sequence[RoiPolygon],
    *,
    scale_xy: tuple[float, float],
    title: str = "",
    score_label: str = "score",
    outline_rgb: Sequence[int] = (0, 255, 255),
    alpha: float = 0.5,
) -> Any:
    """The heatmap (colour map ``magma``, 0..1) blended over the thumbnail, ROI outlines drawn.

    Axes are level-0 pixels (the polygons' frame), so what is drawn is what the GeoJSON holds.
    Returns a :class:`matplotlib.figure.Figure` built without pyplot.
    """
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    h, w = heat.shape
    extent = (0.0, w * scale_xy[0], h * scale_xy[1], 0.0)
    aspect = (h * scale_xy[1]) / max(w * scale_xy[0], 1e-9)
    fig = Figure(figsize=(7.5, max(2.5, min(12.0, 6.0 * aspect + 0.8))), layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(thumbnail, extent=extent, interpolation="nearest")
    shown = ax.imshow(np.ma.masked_invalid(heat), extent=extent, cmap=colormaps["magma"], vmin=0.0, vmax=1.0,
                      alpha=alpha, interpolation="nearest")
    colour = tuple(c / 255 for c in outline_rgb)
    for poly in polygons:
        for k, ring in enumerate([poly.exterior, *poly.holes]):
            ax.plot(ring[:, 0], ring[:, 1], color=colour, linewidth=1.5, linestyle="-" if k == 0 else "--")
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_xlabel("level-0 x (px)")
    ax.set_ylabel("level-0 y (px)")
    if title:
        ax.set_title(title, fontsize=10)
    fig.colorbar(shown, ax=ax, label=score_label, shrink=0.8)
    return fig
