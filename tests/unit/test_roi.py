"""ROI heatmaps, polygons and GeoJSON on generated stores with planted regions.

Stores mirror what `pathgan tile` writes (coords on a level-0 grid, footprint0, thumbnail_mpp,
source level_dimensions and mpp); patch pixels are never read, so they are left unwritten.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from skimage.draw import polygon as fill_polygon

from pathgan.cli import main
from pathgan.downstream import (
    GeoJSONError,
    RoiPolygon,
    geojson_problems,
    heatmap,
    paint_heatmap,
    read_geojson,
    ring_area,
    roi_features,
    roi_polygons,
    score_patches,
    store_frame,
    validate_geojson,
    write_geojson,
)
from pathgan.errors import ConfigError, PathganError, ShapeError, StoreError
from pathgan.stages.roi import roi
from pathgan.store import (
    PatchStore,
    create_store,
    finalize_store,
    open_latents_for_write,
    temp_path_for,
)
from pathgan.tiling import grid_coords

MPP0 = 0.5  # um per level-0 px
SCALE = 16  # level-0 px per thumbnail px -> thumbnail_mpp 8
FOOT = 128  # level-0 px per patch side: 8 thumbnail px, 64 um
SLIDE_WH = (3104, 2592)  # 24 x 20 patches, plus a 32-px uncovered margin right and bottom
THUMB_HW = (SLIDE_WH[1] // SCALE, SLIDE_WH[0] // SCALE)
PATCH_UM2 = (FOOT * MPP0) ** 2
RUN = "00001-test-run"


def _store(tmp_path: Path, name: str = "slide", *, foot: float = FOOT, stride: float = FOOT, scale: float = SCALE,
           slide_wh: tuple[int, int] = SLIDE_WH, keep: Any = None) -> Path:
    """A complete store whose coords are the tile stage's grid (optionally a subset)."""
    coords = grid_coords(slide_wh, (foot, foot), (stride, stride))
    if keep is not None:
        coords = coords[keep(coords) if callable(keep) else keep]
    n = len(coords)
    thumb_hw = (round(slide_wh[1] / scale), round(slide_wh[0] / scale))
    thumb_mpp = [MPP0 * slide_wh[0] / thumb_hw[1], MPP0 * slide_wh[1] / thumb_hw[0]]
    rng = np.random.default_rng(0)
    final = tmp_path / f"{name}.zarr"
    tmp = temp_path_for(final)
    create_store(tmp, coords_xy=coords, tissue_fraction=np.ones(n), pen_fraction=np.zeros(n), patch_px=8,
                 patches_per_shard=64, codec="zstd", jpeg_quality=90,
                 thumbnail=rng.integers(150, 255, (*thumb_hw, 3), dtype=np.uint8),
                 tissue_mask=np.ones(thumb_hw, bool), pen_mask=np.zeros(thumb_hw, bool))
    attrs = {"slide_id": name, "label": None, "split": None,
             "source": {"path": "generated", "size_bytes": 1, "sha256_first_mib": "0" * 64, "vendor": "test",
                        "backend": "test", "level_dimensions": [list(slide_wh)], "mpp": [MPP0, MPP0],
                        "mpp_source": "metadata"},
             "mpp_requested": foot * MPP0 / 8, "mpp_effective": [foot * MPP0 / 8] * 2, "source_level": 0,
             "decode_scale": 1, "footprint0": [foot, foot], "patch_px": 8, "stride_px": round(8 * stride / foot),
             "n_patches": n, "n_grid": n, "thumbnail_mpp": thumb_mpp, "config": {}, "pathgan_version": "test"}
    finalize_store(tmp, final, attrs)
    return final


def _write_latents(path: Path, w: np.ndarray, run_id: str = RUN) -> None:
    writer = open_latents_for_write(path, run_id, w_dim=w.shape[1], attrs={"checkpoint_sha256": "0" * 64})
    writer.write(0, w.astype(np.float32))
    writer.finish()


def _centres(coords: np.ndarray, foot: float = FOOT) -> np.ndarray:
    return coords.astype(np.float64) + foot / 2


def _annulus(coords: np.ndarray, centre: tuple[float, float], r_out: float, r_in: float) -> np.ndarray:
    d = np.hypot(*(_centres(coords) - np.asarray(centre)).T)
    return (d <= r_out) & (d > r_in)


def _rasterise(polys: list[RoiPolygon], shape_hw: tuple[int, int], px: float) -> np.ndarray:
    """Polygons (level-0 px) -> bool raster of ``px`` level-0 pixels per cell; a cell is in when its
    centre is (vertices shifted by half a cell, so edges on multiples of ``px`` fall between centres)."""
    out = np.zeros(shape_hw, bool)
    for p in polys:
        for k, ring in enumerate([p.exterior, *p.holes]):
            rr, cc = fill_polygon(ring[:, 1] / px - 0.5, ring[:, 0] / px - 0.5, shape_hw)
            out[rr, cc] = k == 0
    return out


def _squares(coords: np.ndarray, shape_hw: tuple[int, int], px: float, foot: float = FOOT) -> np.ndarray:
    """Union of patch squares, rasterised like :func:`_rasterise` (``foot`` a multiple of ``px``)."""
    out = np.zeros(shape_hw, bool)
    for x, y in coords:
        out[round(y / px) : round((y + foot) / px), round(x / px) : round((x + foot) / px)] = True
    return out


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def _perimeter_px(mask: np.ndarray) -> int:
    """Length of a binary mask's pixel-edge boundary, in pixels."""
    m = np.pad(mask, 1)
    return int(np.count_nonzero(m[1:, :] != m[:-1, :]) + np.count_nonzero(m[:, 1:] != m[:, :-1]))


# --------------------------------------------------------------------------------------------- heatmap


def test_heatmap_equals_hand_painted_reference(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    path = _store(tmp_path, keep=lambda c: rng.random(len(c)) < 0.6)  # a patchy "tissue"
    store = PatchStore(path)
    scores = rng.random(len(store)).astype(np.float32)
    heat, coverage = heatmap(store, scores)
    assert heat.shape == coverage.shape == THUMB_HW and heat.dtype == np.float32
    ref = np.full(THUMB_HW, np.nan, np.float32)
    for (x, y), s in zip(store.coords, scores, strict=True):  # each patch is an 8x8 block of pixels
        ref[y // SCALE : (y + FOOT) // SCALE, x // SCALE : (x + FOOT) // SCALE] = s
    np.testing.assert_array_equal(heat, ref)
    np.testing.assert_array_equal(coverage, np.where(np.isnan(ref), 0, 1))
    assert np.isnan(heat[:, -2:]).all() and np.isnan(heat[-2:, :]).all()  # the uncovered margin


def test_overlapping_patches_are_averaged(tmp_path: Path) -> None:
    path = _store(tmp_path, stride=FOOT // 2)  # half overlap: up to 4 patches per pixel
    store = PatchStore(path)
    scores = np.random.default_rng(2).random(len(store))
    heat, coverage = heatmap(store, scores)
    total, count = np.zeros(THUMB_HW), np.zeros(THUMB_HW)
    for (x, y), s in zip(store.coords, scores, strict=True):
        sl = np.s_[y // SCALE : (y + FOOT) // SCALE, x // SCALE : (x + FOOT) // SCALE]
        total[sl] += s
        count[sl] += 1
    with np.errstate(invalid="ignore"):
        ref = total / count
    np.testing.assert_allclose(heat, ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(coverage, count)
    assert coverage.max() == 4


def test_fractional_geometry_matches_supersampling() -> None:
    """The real store's geometry (footprint 128.2565, 16.087 level-0 px per thumbnail px): exact area
    weights against an 8x8 point-sampled estimate of every pixel."""
    foot, scale = 128.2565130260521, 2220 / 138
    coords = grid_coords((2220, 2967), (foot, foot), (foot / 2, foot / 2))
    scores = np.random.default_rng(3).random(len(coords))
    shape = (185, 138)
    heat, coverage = paint_heatmap(coords, scores, footprint0=(foot, foot), scale_xy=(scale, scale), shape_hw=shape)
    sub = (np.arange(8) + 0.5) / 8
    ys = ((np.arange(shape[0])[:, None] + sub[None, :]) * scale).ravel()  # level-0 y of every sample row
    xs = ((np.arange(shape[1])[:, None] + sub[None, :]) * scale).ravel()
    inside_y = (ys[None, :] >= coords[:, 1:2]) & (ys[None, :] < coords[:, 1:2] + foot)  # [N, 8h]
    inside_x = (xs[None, :] >= coords[:, 0:1]) & (xs[None, :] < coords[:, 0:1] + foot)  # [N, 8w]
    cnt = np.einsum("ny,nx->yx", inside_y.astype(float), inside_x.astype(float))
    tot = np.einsum("ny,nx,n->yx", inside_y.astype(float), inside_x.astype(float), scores)
    cov_ref = cnt.reshape(shape[0], 8, shape[1], 8).mean(axis=(1, 3))
    tot_ref = tot.reshape(shape[0], 8, shape[1], 8).mean(axis=(1, 3))
    # A sample grid of 8 per axis misplaces a patch edge by at most 1/16 pixel on each side.
    np.testing.assert_allclose(coverage, cov_ref, atol=4 * 2 / 16)
    sure = cov_ref >= 0.75
    np.testing.assert_allclose(heat[sure], tot_ref[sure] / cov_ref[sure], atol=0.1)
    assert np.isnan(heat[cov_ref == 0]).all()


def test_heatmap_refuses_bad_scores(tmp_path: Path) -> None:
    store = PatchStore(_store(tmp_path))
    with pytest.raises(ShapeError, match="scores"):
        heatmap(store, np.zeros(len(store) - 1))
    with pytest.raises(ShapeError, match="finite"):
        heatmap(store, np.full(len(store), np.nan))


# -------------------------------------------------------------------------------------------- polygons


def _polys(coords: np.ndarray, scores: np.ndarray, **kw: Any) -> list[RoiPolygon]:
    heat, _ = paint_heatmap(coords, scores, footprint0=(FOOT, FOOT), scale_xy=(SCALE, SCALE), shape_hw=THUMB_HW)
    kw.setdefault("min_area_um2", 0.0)
    return roi_polygons(heat, 0.5, thumbnail_mpp=MPP0 * SCALE, level0_mpp=MPP0, slide_wh=SLIDE_WH, **kw)


@pytest.mark.parametrize("simplify_px", [0.0, 0.5])
def test_planted_annulus_is_recovered(simplify_px: float) -> None:
    """Scores 1 on patches whose centre is in an annulus, 0 elsewhere, + noise of +-0.2 (which can
    never cross the 0.5 threshold). One polygon with one hole must come back.

    IoU against the patch-quantised truth (the union of planted patches; scores are per patch, so
    nothing finer can be recovered): the exact outline (simplify 0) is that union, IoU 1; with
    Douglas-Peucker tolerance t every point of the difference lies within t of the exact outline,
    so |difference| <= B = 2 t P (P its length) and IoU >= (A - B) / (A + B). Against the
    continuous annulus the patch grid itself costs about P * s / 4 (mean distance of a centre-rule
    staircase to the curve, s the patch side), i.e. IoU ~ 1 - P s / (4 A) ~ 0.87 here; 0.8 is
    asserted.
    """
    coords = grid_coords(SLIDE_WH, (FOOT, FOOT), (FOOT, FOOT))
    centre, r_out, r_in = (1500.0, 1300.0), 6 * FOOT, 2.2 * FOOT
    planted = _annulus(coords, centre, r_out, r_in)
    rng = np.random.default_rng(4)
    scores = np.clip(planted + rng.uniform(-0.2, 0.2, len(coords)), 0, 1)
    polys = _polys(coords, scores, simplify_px=simplify_px)
    assert len(polys) == 1 and len(polys[0].holes) == 1
    px = 8.0  # raster cell: half a thumbnail pixel
    shape = (round(SLIDE_WH[1] / px), round(SLIDE_WH[0] / px))
    got = _rasterise(polys, shape, px)
    truth = _squares(coords[planted], shape, px)
    iou = _iou(got, truth)
    thumb_truth = _squares(coords[planted], THUMB_HW, SCALE)
    a_px, p_px = thumb_truth.sum(), _perimeter_px(thumb_truth)
    bound = (a_px - 2 * simplify_px * p_px) / (a_px + 2 * simplify_px * p_px)
    print(f"simplify {simplify_px}: IoU vs planted patches {iou:.4f} (bound {bound:.3f})")
    assert iou >= bound
    if simplify_px == 0:
        assert iou == 1.0
        assert polys[0].area_um2 == pytest.approx(planted.sum() * PATCH_UM2)
    yy, xx = (np.mgrid[: shape[0], : shape[1]] + 0.5) * px
    d = np.hypot(xx - centre[0], yy - centre[1])
    iou_cont = _iou(got, (d <= r_out) & (d > r_in))
    print(f"simplify {simplify_px}: IoU vs continuous annulus {iou_cont:.4f}")
    assert iou_cont >= 0.8
    assert polys[0].mean_score > 0.85 and polys[0].max_score <= 1.0


def test_polygons_are_level0_inside_the_slide() -> None:
    """A region touching every slide edge (patches at x = y = 0 and the last row and column) stays
    within [0, width] x [0, height] and, exact, lies on thumbnail pixel edges (multiples of 16)."""
    coords = grid_coords(SLIDE_WH, (FOOT, FOOT), (FOOT, FOOT))
    gx, gy = coords[:, 0] // FOOT, coords[:, 1] // FOOT
    scores = ((gx == 0) | (gy == 0) | (gx == gx.max()) | (gy == gy.max())).astype(float)  # a frame
    polys = _polys(coords, scores, simplify_px=0.0)
    assert len(polys) == 1 and len(polys[0].holes) == 1
    for ring in [polys[0].exterior, *polys[0].holes]:
        assert ring[:, 0].min() >= 0 and ring[:, 0].max() <= SLIDE_WH[0]
        assert ring[:, 1].min() >= 0 and ring[:, 1].max() <= SLIDE_WH[1]
        assert np.all(ring % SCALE == 0)
    ext = polys[0].exterior
    assert ext[:, 0].min() == 0 and ext[:, 1].min() == 0
    assert ext[:, 0].max() == 24 * FOOT and ext[:, 1].max() == 20 * FOOT  # the grid's end, not the slide's
    # Clipping: a heatmap wider than the slide never yields a vertex outside it.
    heat = np.ones((10, 10), np.float32)
    (p,) = roi_polygons(heat, 0.5, min_area_um2=0, thumbnail_mpp=8, level0_mpp=0.5, slide_wh=(150.5, 100.0))
    assert p.exterior[:, 0].max() == 150.5 and p.exterior[:, 1].max() == 100.0


def test_rings_are_closed_and_oriented() -> None:
    coords = grid_coords(SLIDE_WH, (FOOT, FOOT), (FOOT, FOOT))
    planted = _annulus(coords, (1500.0, 1300.0), 6 * FOOT, 2.2 * FOOT)
    (p,) = _polys(coords, planted.astype(float))
    for k, ring in enumerate([p.exterior, *p.holes]):
        assert np.array_equal(ring[0], ring[-1]) and len(ring) >= 4
        assert (ring_area(ring) > 0) == (k == 0)  # exterior counter-clockwise, holes clockwise (RFC 7946)


def test_holes_kept_and_small_holes_filled() -> None:
    coords = grid_coords(SLIDE_WH, (FOOT, FOOT), (FOOT, FOOT))
    gx, gy = coords[:, 0] // FOOT, coords[:, 1] // FOOT
    square = (gx >= 3) & (gx < 11) & (gy >= 2) & (gy < 10)
    hole = (gx >= 6) & (gx < 8) & (gy >= 5) & (gy < 7)  # 2 x 2 patches
    scores = (square & ~hole).astype(float)
    (p,) = _polys(coords, scores)
    assert len(p.holes) == 1
    assert p.area_um2 == pytest.approx(60 * PATCH_UM2)
    assert -ring_area(p.holes[0]) * MPP0**2 == pytest.approx(4 * PATCH_UM2)
    np.testing.assert_array_equal(p.exterior, [[384, 1280], [384, 256], [1408, 256], [1408, 1280], [384, 1280]])
    (filled,) = _polys(coords, scores, min_hole_um2=5 * PATCH_UM2)
    assert filled.holes == [] and filled.area_um2 == pytest.approx(64 * PATCH_UM2)
    assert filled.mean_score == pytest.approx(60 / 64)  # the filled hole's pixels count, at score 0


def test_min_area_removes_small_blobs() -> None:
    coords = grid_coords(SLIDE_WH, (FOOT, FOOT), (FOOT, FOOT))
    gx, gy = coords[:, 0] // FOOT, coords[:, 1] // FOOT
    big = (gx >= 10) & (gx < 16) & (gy >= 8) & (gy < 12)  # 24 patches
    lone = (gx == 2) & (gy == 2)
    pair = (gx == 20) & (gy >= 15) & (gy < 17)  # 2 patches
    scores = (big | lone | pair).astype(float)
    areas = sorted(p.area_um2 / PATCH_UM2 for p in _polys(coords, scores))
    assert areas == pytest.approx([1, 2, 24])
    areas = sorted(p.area_um2 / PATCH_UM2 for p in _polys(coords, scores, min_area_um2=1.5 * PATCH_UM2))
    assert areas == pytest.approx([2, 24])
    kept = _polys(coords, scores, min_area_um2=3 * PATCH_UM2)
    assert len(kept) == 1 and kept[0].area_um2 == pytest.approx(24 * PATCH_UM2)


def test_diagonal_neighbours_make_one_simple_ring() -> None:
    """Patches touching only at a corner are one (8-connected) region; the ring keeps a cut at the
    shared corner instead of passing through it twice."""
    coords = grid_coords(SLIDE_WH, (FOOT, FOOT), (FOOT, FOOT))
    gx, gy = coords[:, 0] // FOOT, coords[:, 1] // FOOT
    scores = (((gx == 4) & (gy == 4)) | ((gx == 5) & (gy == 5))).astype(float)
    (p,) = _polys(coords, scores, simplify_px=0.0)
    pts = [tuple(v) for v in p.exterior[:-1]]
    assert len(pts) == len(set(pts))  # no repeated vertex
    assert p.area_um2 == pytest.approx(2 * PATCH_UM2, rel=0.01)


def test_nothing_above_threshold_and_no_patch_regions() -> None:
    heat = np.full((20, 20), np.nan, np.float32)
    assert roi_polygons(heat, 0.5, min_area_um2=0, thumbnail_mpp=8, level0_mpp=0.5) == []
    heat[5:10, 5:10] = 0.49
    assert roi_polygons(heat, 0.5, min_area_um2=0, thumbnail_mpp=8, level0_mpp=0.5) == []
    with pytest.raises(ShapeError):
        roi_polygons(np.zeros(5), 0.5, min_area_um2=0, thumbnail_mpp=8, level0_mpp=0.5)
    with pytest.raises(ConfigError):
        roi_polygons(heat, 0.5, min_area_um2=-1, thumbnail_mpp=8, level0_mpp=0.5)


# --------------------------------------------------------------------------------------------- scoring


class _FakeClassifier:
    """Logistic on the first latent dimension."""

    def __init__(self) -> None:
        self.classes = ["normal", "tumour"]
        self.run_id = RUN

    def predict_proba(self, latents: np.ndarray) -> np.ndarray:
        p = 1 / (1 + np.exp(-4 * latents[:, 0].astype(np.float64)))
        return np.stack([1 - p, p], axis=1)


def _planted_store(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """Store with latents whose first dimension is +2 on an annulus of patches, -2 elsewhere."""
    path = _store(tmp_path)
    coords = PatchStore(path).coords
    planted = _annulus(coords, (1500.0, 1300.0), 6 * FOOT, 2.2 * FOOT)
    rng = np.random.default_rng(5)
    w = rng.normal(0, 0.1, (len(coords), 6))
    w[:, 0] = np.where(planted, 2.0, -2.0) + rng.normal(0, 0.1, len(coords))
    _write_latents(path, w)
    return path, planted, w


def test_score_patches_classifier_and_direction(tmp_path: Path) -> None:
    path, planted, w = _planted_store(tmp_path)
    store = PatchStore(path)
    s = score_patches(store, run_id=RUN, classifier=_FakeClassifier(), class_name="tumour")
    assert s.dtype == np.float32 and s.shape == (len(store),)
    np.testing.assert_allclose(s, _FakeClassifier().predict_proba(w.astype(np.float32))[:, 1], rtol=1e-6)
    assert (s[planted] > 0.9).all() and (s[~planted] < 0.1).all()
    d = np.zeros(6)
    d[0] = 3.0  # the norm does not matter
    s = score_patches(store, run_id=RUN, direction=d)
    proj = w[:, 0].astype(np.float32).astype(np.float64)
    lo, hi = np.percentile(proj, [1, 99])
    np.testing.assert_allclose(s, np.clip((proj - lo) / (hi - lo), 0, 1), atol=1e-6)
    assert s.min() == 0 and s.max() == 1
    assert np.mean(s == 0) == pytest.approx(0.01, abs=0.005) and np.mean(s == 1) == pytest.approx(0.01, abs=0.005)
    assert (s[planted] > 0.8).all() and (s[~planted] < 0.2).all()
    np.testing.assert_allclose(score_patches(store, run_id=RUN, direction=d[None, :]), s)


def test_score_patches_refuses(tmp_path: Path) -> None:
    path, _, _ = _planted_store(tmp_path)
    store = PatchStore(path)
    clf = _FakeClassifier()
    with pytest.raises(ConfigError, match="exactly one"):
        score_patches(store, run_id=RUN)
    with pytest.raises(ConfigError, match="exactly one"):
        score_patches(store, run_id=RUN, classifier=clf, class_name="tumour", direction=np.ones(6))
    with pytest.raises(ConfigError, match="not one of"):
        score_patches(store, run_id=RUN, classifier=clf, class_name="stroma")
    with pytest.raises(ConfigError, match="class_name is required"):
        score_patches(store, run_id=RUN, classifier=clf)
    with pytest.raises(ConfigError, match="fitted on latents of run"):
        score_patches(store, run_id="other-run", classifier=clf, class_name="tumour")
    with pytest.raises(ShapeError, match=r"\[6\]"):
        score_patches(store, run_id=RUN, direction=np.ones(5))
    with pytest.raises(ShapeError):
        score_patches(store, run_id=RUN, direction=np.zeros(6))
    with pytest.raises(StoreError, match="no latents"):
        score_patches(store, run_id="missing-run", direction=np.ones(6))


# --------------------------------------------------------------------------------------------- GeoJSON


def _doc(polys: list[RoiPolygon]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": roi_features(polys, class_name="tumour", color=[200, 0, 0])}


def test_geojson_validates_and_round_trips(tmp_path: Path) -> None:
    coords = grid_coords(SLIDE_WH, (FOOT, FOOT), (FOOT, FOOT))
    gx, gy = coords[:, 0] // FOOT, coords[:, 1] // FOOT
    scores = _annulus(coords, (1500.0, 1300.0), 6 * FOOT, 2.2 * FOOT) | ((gx == 22) & (gy < 3))
    polys = _polys(coords, scores.astype(float))
    doc = _doc(polys)
    assert geojson_problems(doc) == []
    feat = doc["features"][0]
    assert feat["type"] == "Feature" and feat["geometry"]["type"] == "Polygon"
    props = feat["properties"]
    assert props["objectType"] == "annotation" and props["isLocked"] is False
    assert props["classification"] == {"name": "tumour", "color": [200, 0, 0]}
    assert set(props["measurements"]) == {"mean_score", "max_score", "area_um2"}
    assert props["measurements"]["area_um2"] == pytest.approx(polys[0].area_um2)
    for f, p in zip(doc["features"], polys, strict=True):
        rings = f["geometry"]["coordinates"]
        assert len(rings) == 1 + len(p.holes)
        for k, ring in enumerate(rings):
            assert ring[0] == ring[-1] and len(ring) >= 4
            assert (ring_area(np.asarray(ring)) > 0) == (k == 0)
        np.testing.assert_allclose(rings[0], p.exterior, atol=0.005)
    out = write_geojson(tmp_path / "a" / "rois.geojson", doc["features"])
    assert sorted(x.name for x in out.parent.iterdir()) == ["rois.geojson"]  # no temporary left
    back = read_geojson(out, check_winding=True)
    assert back == doc["features"]  # coordinates identical after write -> read
    assert json.loads(out.read_text())["type"] == "FeatureCollection"


def test_geojson_problems_are_found(tmp_path: Path) -> None:
    ok = [[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 0.0]]  # counter-clockwise in (x, y)

    def fc(coords: Any, gtype: str = "Polygon", **props: Any) -> dict[str, Any]:
        return {"type": "FeatureCollection", "features": [
            {"type": "Feature", "geometry": {"type": gtype, "coordinates": coords}, "properties": props or None}]}

    assert geojson_problems(fc([ok])) == []
    assert geojson_problems(fc([[ok]], "MultiPolygon")) == []
    cases = {
        "not closed": fc([[[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0]]]),
        ">= 4 positions": fc([[[0.0, 0.0], [10.0, 0.0], [0.0, 0.0]]]),
        "finite": fc([[[0.0, 0.0], [float("nan"), 0.0], [10.0, 10.0], [0.0, 0.0]]]),
        "counter-clockwise": fc([ok[::-1]]),
        "clockwise": fc([ok, ok]),  # a hole wound like the exterior
        "Polygon or MultiPolygon": fc([ok], "LineString"),
        "color": fc([ok], classification={"name": "t", "color": [300, 0, 0]}),
        "finite number": fc([ok], measurements={"area_um2": float("inf")}),
        "isLocked": fc([ok], isLocked="no"),
        "FeatureCollection": {"type": "Feature"},
    }
    for needle, doc in cases.items():
        problems = geojson_problems(doc)
        assert any(needle in p for p in problems), (needle, problems)
    assert geojson_problems(fc([ok[::-1]]), check_winding=False) == []
    with pytest.raises(GeoJSONError, match="not closed"):
        validate_geojson(cases["not closed"])
    target = tmp_path / "keep.geojson"
    write_geojson(target, fc([ok]))
    before = target.read_text()
    with pytest.raises(GeoJSONError):
        write_geojson(target, cases["finite"])
    assert target.read_text() == before and sorted(p.name for p in tmp_path.iterdir()) == ["keep.geojson"]
    (tmp_path / "bad.geojson").write_text("{not json")
    with pytest.raises(GeoJSONError, match="cannot read"):
        read_geojson(tmp_path / "bad.geojson")


# ------------------------------------------------------------------------------------------ stage, CLI


def test_stage_writes_geojson_overlay_and_heatmap(tmp_path: Path) -> None:
    path, planted, _ = _planted_store(tmp_path)
    d = np.zeros(6, np.float32)
    d[0] = 1
    np.save(tmp_path / "tumour_dir.npy", d)
    res = roi(path, run_id=RUN, direction_path=tmp_path / "tumour_dir.npy", out_dir=tmp_path / "out")
    assert res["slide_id"] == "slide" and res["class_name"] == "tumour_dir" and res["n_regions"] == 1
    assert res["regions"][0]["n_holes"] == 1
    assert res["min_area_um2"] == pytest.approx(2 * PATCH_UM2)
    assert res["roi_area_um2"] == pytest.approx(planted.sum() * PATCH_UM2, rel=0.03)
    store = PatchStore(path)
    heat = np.load(res["heatmap_npy"])
    ref, _ = heatmap(store, score_patches(store, run_id=RUN, direction=d))
    np.testing.assert_array_equal(heat, ref)
    feats = read_geojson(res["geojson"], check_winding=True)
    assert len(feats) == 1
    doc = json.loads(Path(res["geojson"]).read_text())
    assert doc["pathgan"]["run_id"] == RUN and doc["pathgan"]["slide_wh"] == list(SLIDE_WH)
    frame = store_frame(store)
    for ring in feats[0]["geometry"]["coordinates"]:
        xy = np.asarray(ring)
        assert (xy >= 0).all() and (xy[:, 0] <= frame.slide_wh[0]).all() and (xy[:, 1] <= frame.slide_wh[1]).all()
    from PIL import Image

    with Image.open(res["overlay_png"]) as im:
        assert im.format == "PNG" and min(im.size) > 200
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "slide.geojson", "slide_heatmap.npy", "slide_heatmap.png"]


def test_stage_with_a_classifier(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, planted, _ = _planted_store(tmp_path)
    loaded: list[Path] = []

    def fake_load(p: Path) -> _FakeClassifier:
        loaded.append(p)
        return _FakeClassifier()

    monkeypatch.setattr("pathgan.downstream.load_classifier", fake_load, raising=False)
    res = roi(path, run_id=RUN, classifier_path=tmp_path / "clf", class_name="tumour", out_dir=tmp_path / "o",
              min_area_um2=0)
    assert loaded == [tmp_path / "clf"]
    assert res["n_regions"] == 1 and res["roi_area_um2"] == pytest.approx(planted.sum() * PATCH_UM2, rel=0.03)
    (feat,) = read_geojson(res["geojson"])
    assert feat["properties"]["classification"]["name"] == "tumour"
    assert feat["properties"]["measurements"]["mean_score"] > 0.9
    res = roi(path, run_id=RUN, classifier=_FakeClassifier(), class_name="normal", out_dir=tmp_path / "o2",
              threshold=0.5, min_area_um2=0)
    assert res["n_regions"] == 2  # the outside and the annulus' inner disc
    with pytest.raises(ConfigError, match="exactly one"):
        roi(path, run_id=RUN, out_dir=tmp_path / "o3")
    with pytest.raises(ConfigError, match="--class"):
        roi(path, run_id=RUN, classifier=_FakeClassifier(), out_dir=tmp_path / "o3")
    with pytest.raises(ConfigError, match="threshold"):
        roi(path, run_id=RUN, classifier=_FakeClassifier(), class_name="tumour", threshold=1.5, out_dir=tmp_path)


def test_cli_roi(tmp_path: Path) -> None:
    path, _, _ = _planted_store(tmp_path)
    np.save(tmp_path / "d.npy", np.eye(6, dtype=np.float32)[0])
    out = tmp_path / "cli"
    res = CliRunner().invoke(main, ["roi", "--run", RUN, "--direction", str(tmp_path / "d.npy"), "--class", "tumour",
                                    "--threshold", "0.6", "--out", str(out), "--stores", str(path)])
    assert res.exit_code == 0, res.output
    assert "1 region(s) of tumour" in res.output
    (feat,) = read_geojson(out / "slide.geojson", check_winding=True)
    assert feat["properties"]["classification"]["name"] == "tumour"
    res = CliRunner().invoke(main, ["roi", "--run", RUN, "--stores", str(path)])
    assert res.exit_code == 2 and "exactly one" in res.output
    # the old spellings (--run-id, positional STORE) still work, each with one deprecation line
    old = CliRunner().invoke(main, ["roi", "--run-id", RUN, "--direction", str(tmp_path / "d.npy"), "--class", "tumour",
                                    "--threshold", "0.6", "--out", str(tmp_path / "old"), str(path)])
    assert old.exit_code == 0, old.output
    assert old.stderr.splitlines() == ["pathgan: --run-id is deprecated; use --run RUN (removed in 0.3)",
                                       "pathgan: positional STORES is deprecated; use --stores STORES (removed in 0.3)"]
    assert (tmp_path / "old" / "slide.geojson").read_bytes() == (out / "slide.geojson").read_bytes()
    res = CliRunner().invoke(main, ["roi", "--run", "no-such-run", "--direction", str(tmp_path / "d.npy"),
                                    "--stores", str(path)])
    assert res.exit_code == 1 and "no latents for run 'no-such-run'" in res.output


def test_stage_with_a_real_saved_classifier(tmp_path: Path) -> None:
    """The whole path: fit_classifier -> save -> `roi --classifier DIR` finds the planted annulus."""
    from pathgan.downstream import LatentTable, fit_classifier

    path, planted, w = _planted_store(tmp_path)
    labels = np.where(planted, "tumour", "normal")
    half = len(w) // 2  # two pseudo-slides, so the table looks like a real one
    table = LatentTable.from_arrays(w, labels, ["s1"] * half + ["s2"] * (len(w) - half), run_id=RUN)
    clf = fit_classifier(table, model="logreg")
    clf.save(tmp_path / "clf" / "classifier.npz")
    res = roi(path, run_id=RUN, classifier_path=tmp_path / "clf", class_name="tumour", out_dir=tmp_path / "o")
    assert res["n_regions"] == 1 and res["regions"][0]["n_holes"] == 1
    assert res["roi_area_um2"] == pytest.approx(planted.sum() * PATCH_UM2, rel=0.03)
    # scores are the saved classifier's probabilities, independent of the stage
    store = PatchStore(path)
    expect = clf.predict_proba(store.latents(RUN))[:, clf.classes.index("tumour")]
    ref, _ = heatmap(store, expect.astype(np.float32))
    np.testing.assert_allclose(np.load(res["heatmap_npy"]), ref, atol=1e-6, equal_nan=True)
    with pytest.raises(PathganError, match="stroma"):
        roi(path, run_id=RUN, classifier_path=tmp_path / "clf", class_name="stroma", out_dir=tmp_path / "o2")
