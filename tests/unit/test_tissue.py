"""Unit tests of pathgan.tissue on synthetic images with a painted ground truth."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi
from skimage.color import hsv2rgb
from skimage.draw import disk, line

from pathgan.config import TissueConfig
from pathgan.tissue import (
    blur_score,
    blur_scores,
    pen_mask,
    region_fractions,
    render_preview,
    tissue_mask,
)

MPP = 8.0  # um/px of the synthetic thumbnails: 20,000 um^2 = 312.5 px, 10,000 um^2 = 156 px
GLASS = (242, 240, 244)
EOSIN = (222, 150, 190)
HAEMATOXYLIN = (150, 110, 175)


def _h_and_e(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """White glass with H&E-like texture everywhere (callers cut it with a mask)."""
    rng = np.random.default_rng(seed)
    mix = ndi.gaussian_filter(rng.random(shape), 2.0)
    mix = (mix - mix.min()) / (np.ptp(mix) + 1e-9)
    colour = (1 - mix[..., None]) * np.array(EOSIN) + mix[..., None] * np.array(HAEMATOXYLIN)
    return np.clip(colour + rng.normal(0, 4, colour.shape), 0, 255)


def _slide() -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """200x260 thumbnail: a large blob with a big hole and a small hole, a second blob,
    a speck below min area, and green / blue / black pen strokes on glass and tissue."""
    h, w = 200, 260
    truth = np.zeros((h, w), dtype=bool)
    truth[disk((90, 90), 60, shape=(h, w))] = True
    truth[disk((150, 200), 35, shape=(h, w))] = True
    big_hole = np.zeros_like(truth)
    big_hole[disk((90, 90), 15, shape=(h, w))] = True  # 707 px = 45,000 um^2 > max_hole
    small_hole = np.zeros_like(truth)
    small_hole[disk((60, 120), 4, shape=(h, w))] = True  # 49 px = 3,100 um^2 < max_hole
    truth &= ~big_hole
    speck = np.zeros_like(truth)
    speck[disk((30, 220), 4, shape=(h, w))] = True  # 49 px = 3,100 um^2 < min_area
    img = np.empty((h, w, 3), dtype=np.float64)
    img[:] = GLASS
    tissue_px = truth | small_hole | speck
    img[tissue_px] = _h_and_e((h, w))[tissue_px]
    img[small_hole] = GLASS
    pens: dict[str, np.ndarray] = {}
    for name, colour, (r0, c0, r1, c1) in (
        ("green", (40, 170, 140), (20, 10, 190, 40)),
        ("blue", (40, 90, 200), (10, 150, 10, 250)),
        ("black", (40, 38, 35), (60, 40, 130, 140)),
    ):
        stroke = np.zeros_like(truth)
        rr, cc = line(r0, c0, r1, c1)
        stroke[rr, cc] = True
        stroke = ndi.binary_dilation(stroke, iterations=2)  # 5 px = 40 um wide
        img[stroke] = colour
        pens[name] = stroke
    return np.clip(img, 0, 255).astype(np.uint8), truth, pens


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


# ---------------------------------------------------------------- tissue_mask


def test_tissue_mask_matches_painted_truth_and_excludes_pen() -> None:
    img, truth, pens = _slide()
    ink = pens["green"] | pens["blue"] | pens["black"]
    mask = tissue_mask(img, MPP)
    assert mask.dtype == bool and mask.shape == truth.shape
    assert _iou(mask, truth & ~ink) > 0.9
    # Pen is excluded, including where the black stroke crosses tissue.
    assert not (mask & ink).any()
    assert (truth & pens["black"]).sum() > 100  # the stroke really lies on tissue


def test_tissue_mask_drops_speck_fills_small_hole_keeps_big_hole() -> None:
    img, _, _ = _slide()
    mask = tissue_mask(img, MPP)
    assert not mask[25:36, 215:226].any()  # speck below min_area_um2
    assert mask[60, 120]  # small hole (< max_hole_um2) filled
    assert not mask[85:96, 85:96].any()  # big hole kept open


def test_tissue_mask_min_area_follows_mpp() -> None:
    img, _, _ = _slide()
    # At 1 um/px the speck is 49 um^2 and the second blob 3,800 um^2: both < 20,000 um^2,
    # and the big blob (~10,600 um^2) too, so nothing survives.
    assert not tissue_mask(img, 1.0).any()
    assert tissue_mask(img, 1.0, TissueConfig(min_area_um2=0.0, max_hole_um2=0.0)).sum() > 5000


def test_tissue_mask_detect_pen_off_keeps_ink_on_tissue() -> None:
    img, truth, pens = _slide()
    mask = tissue_mask(img, MPP, TissueConfig(detect_pen=False))
    # Without pen detection the dark stroke over tissue reads as tissue.
    assert (mask & truth & pens["black"]).sum() > 0.8 * (truth & pens["black"]).sum()


def test_tissue_mask_finds_grey_tissue() -> None:
    # IHC counterstain-like grey-blue tissue: low saturation but darker than glass.
    img = np.full((120, 120, 3), 245, dtype=np.uint8)
    truth = np.zeros((120, 120), dtype=bool)
    truth[disk((60, 60), 40)] = True
    img[truth] = (150, 155, 168)
    assert _iou(tissue_mask(img, MPP), truth) > 0.9


@pytest.mark.parametrize("value", [255, 0, 128])
def test_tissue_mask_uniform_slides(value: int) -> None:
    img = np.full((64, 80, 3), value, dtype=np.uint8)
    mask = tissue_mask(img, MPP)
    assert mask.shape == (64, 80)
    assert not mask.any()


def test_tissue_mask_near_white_noise_is_empty() -> None:
    rng = np.random.default_rng(1)
    img = np.clip(rng.normal(240, 3, (100, 100, 3)), 0, 255).astype(np.uint8)
    assert not tissue_mask(img, MPP).any()


def test_tissue_mask_rgba_alpha_zero_is_background() -> None:
    img, truth, _ = _slide()
    rgba = np.dstack([img, np.full(truth.shape, 255, np.uint8)])
    rgba[:, :100, 3] = 0
    mask = tissue_mask(rgba, MPP)
    assert not mask[:, :100].any()
    assert mask[150, 200]
    assert tissue_mask(np.zeros((10, 10, 4), np.uint8), MPP).sum() == 0


def test_tissue_mask_rejects_bad_mpp() -> None:
    with pytest.raises(ValueError, match="mpp"):
        tissue_mask(np.zeros((4, 4, 3), np.uint8), 0.0)


# ---------------------------------------------------------------- pen_mask


def test_pen_mask_finds_each_ink_and_not_h_and_e() -> None:
    img, truth, pens = _slide()
    pm = pen_mask(img, MPP)
    for name, stroke in pens.items():
        assert pm[stroke].mean() > 0.95, name
    # Haematoxylin/eosin tissue away from the strokes is not ink.
    away = truth & ~ndi.binary_dilation(pens["green"] | pens["blue"] | pens["black"], iterations=3)
    assert pm[away].mean() < 0.01


def test_pen_mask_haematoxylin_is_not_blue_ink() -> None:
    rng = np.random.default_rng(2)
    # Saturated blue-purple nuclei colours (hue 255-290 deg) must not be flagged.
    hsv = np.stack(
        [
            rng.uniform(255, 300, 4096) / 360,
            rng.uniform(0.3, 0.7, 4096),
            rng.uniform(0.4, 0.85, 4096),
        ],
        -1,
    )
    img = (hsv2rgb(hsv.reshape(64, 64, 3)) * 255).astype(np.uint8)
    assert pen_mask(img).mean() < 0.01
    # while marker blue (hue ~220 deg) is.
    assert pen_mask(np.full((16, 16, 3), (30, 90, 210), np.uint8)).all()


def test_pen_mask_red_ink_but_not_eosin() -> None:
    eosin = np.full((32, 32, 3), (225, 130, 175), np.uint8)
    red_ink = np.full((32, 32, 3), (215, 25, 45), np.uint8)
    assert not pen_mask(eosin).any()
    assert pen_mask(red_ink).all()


def test_pen_mask_empty_inputs() -> None:
    assert not pen_mask(np.full((20, 20, 3), 255, np.uint8)).any()
    assert pen_mask(np.zeros((20, 20, 3), np.uint8)).all()  # black everywhere is black ink
    rgba = np.zeros((20, 20, 4), np.uint8)  # transparent: never ink
    assert not pen_mask(rgba).any()


# ---------------------------------------------------------------- region_fractions


def _overlap_1d(lo: float, hi: float, n: int) -> np.ndarray:
    """Length of [lo, hi) inside each unit cell [i, i+1), i = 0..n-1."""
    edges = np.arange(n, dtype=np.float64)
    return np.clip(np.minimum(hi, edges + 1) - np.maximum(lo, edges), 0.0, None)


def _brute_fractions(mask, scale_xy, coords, size_xy) -> np.ndarray:
    """Reference: loop over patches, weight each mask pixel by its overlap area."""
    out = []
    for x, y in coords:
        x0, x1 = x / scale_xy[0], (x + size_xy[0]) / scale_xy[0]
        y0, y1 = y / scale_xy[1], (y + size_xy[1]) / scale_xy[1]
        wx = _overlap_1d(x0, x1, mask.shape[1])
        wy = _overlap_1d(y0, y1, mask.shape[0])
        covered = float((wy[:, None] * wx[None, :] * mask).sum())
        out.append(covered / ((x1 - x0) * (y1 - y0)))
    return np.array(out)


@settings(max_examples=150, deadline=None)
@given(
    data=st.data(),
    rows=st.integers(1, 12),
    cols=st.integers(1, 12),
    scale=st.tuples(st.floats(0.5, 40.0), st.floats(0.5, 40.0)),
    size=st.tuples(st.floats(1.0, 200.0), st.floats(1.0, 200.0)),
)
def test_region_fractions_matches_brute_force(data, rows, cols, scale, size) -> None:
    mask = np.array(data.draw(st.lists(st.booleans(), min_size=rows * cols, max_size=rows * cols)))
    mask = mask.reshape(rows, cols)
    xmax = int(cols * scale[0]) + 50
    ymax = int(rows * scale[1]) + 50
    coords = np.array(
        data.draw(
            st.lists(
                st.tuples(st.integers(-100, xmax), st.integers(-100, ymax)), min_size=1, max_size=8
            )
        ),
        dtype=np.int64,
    )
    got = region_fractions(mask, scale, coords, size)
    want = _brute_fractions(mask, scale, coords, size)
    assert got.dtype == np.float32 and got.shape == (len(coords),)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_region_fractions_hand_computed() -> None:
    mask = np.zeros((4, 4), dtype=bool)
    mask[0:2, 0:2] = True  # top-left 2x2 block
    scale = (10.0, 10.0)  # 10 level-0 px per mask px
    coords = np.array(
        [
            [0, 0],  # exactly the block -> 1
            [20, 20],  # empty quadrant -> 0
            [10, 10],  # covers 1 of 4 mask pixels of the block -> 0.25
            [5, 0],  # shifted half a pixel right: 1.5 of 2 columns -> 0.75
            [-20, -20],  # spans mask px [-2, 0): wholly outside -> 0
            [-10, -10],  # 1 of 4 mask px inside the block, rest outside (False) -> 0.25
        ],
        dtype=np.int64,
    )
    got = region_fractions(mask, scale, coords, (20.0, 20.0))
    np.testing.assert_allclose(got, [1.0, 0.0, 0.25, 0.75, 0.0, 0.25], atol=1e-6)
    # Anisotropic scale: 20 px wide patch = 1 mask px in x, 2 in y.
    got = region_fractions(mask, (20.0, 10.0), np.array([[0, 0], [20, 0]]), (20.0, 20.0))
    np.testing.assert_allclose(got, [1.0, 1.0], atol=1e-6)
    assert region_fractions(mask, scale, np.zeros((0, 2), np.int64), (20.0, 20.0)).shape == (0,)


def test_region_fractions_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        region_fractions(np.zeros((2, 2, 2), bool), (1.0, 1.0), np.zeros((1, 2)), (1.0, 1.0))
    with pytest.raises(ValueError):
        region_fractions(np.zeros((2, 2), bool), (0.0, 1.0), np.zeros((1, 2)), (1.0, 1.0))


# ---------------------------------------------------------------- blur


def test_blur_lower_after_gaussian_blur() -> None:
    img, _, _ = _slide()
    soft = ndi.gaussian_filter(img.astype(np.float64), sigma=(2, 2, 0)).astype(np.uint8)
    assert blur_score(soft) < 0.5 * blur_score(img)
    assert blur_score(np.full((64, 64, 3), 200, np.uint8)) == 0.0


def test_blur_scores_equals_per_image_and_handles_grey() -> None:
    rng = np.random.default_rng(3)
    patches = rng.integers(0, 256, (40, 34, 30, 3), dtype=np.uint8)  # > one chunk, odd sizes
    batch = blur_scores(patches)
    single = np.array([blur_score(p) for p in patches], dtype=np.float32)
    assert batch.dtype == np.float32 and batch.shape == (40,)
    np.testing.assert_allclose(batch, single, rtol=1e-6)
    grey = patches.mean(axis=-1) / 255.0
    assert blur_score(grey[0]) > 0
    assert blur_scores(np.zeros((3, 4, 4, 3), np.uint8)).tolist() == [0.0, 0.0, 0.0]


def test_blur_scores_rejects_bad_shape() -> None:
    with pytest.raises(ValueError):
        blur_scores(np.zeros((2, 8, 8, 5), np.uint8))


# ---------------------------------------------------------------- preview


def test_render_preview_draws_contour_pen_and_boxes() -> None:
    img = np.full((50, 60, 3), 255, np.uint8)
    tissue = np.zeros((50, 60), bool)
    tissue[10:30, 10:30] = True
    pen = np.zeros((50, 60), bool)
    pen[40:45, 40:45] = True
    out = render_preview(img, tissue, pen, np.array([[35, 5, 55, 25]]))
    assert out.dtype == np.uint8 and out.shape == (50, 60, 3)
    assert img.min() == 255  # input untouched
    assert tuple(out[10, 20]) == (0, 200, 0)  # tissue boundary
    assert tuple(out[20, 20]) == (255, 255, 255)  # tissue interior untouched
    assert tuple(out[42, 42]) == (255, 128, 255)  # 50 % magenta over white
    assert tuple(out[5, 45]) == (0, 64, 255) and tuple(out[24, 54]) == (0, 64, 255)  # box edges
    assert tuple(out[15, 45]) == (255, 255, 255)  # box interior
    # Boxes partly or wholly outside the image are clipped, not errors.
    render_preview(img, tissue, pen, np.array([[-10, -10, 5, 5], [100, 100, 120, 120]]))
    with pytest.raises(ValueError):
        render_preview(img, tissue[:10], pen, np.zeros((0, 4)))


# ---------------------------------------------------------------- fast paths equal the reference ones


def _random_masks(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    out = []
    for _ in range(n):
        h, w = rng.integers(1, 45, 2)
        m = rng.random((h, w)) < rng.uniform(0.05, 0.95)
        out.append(ndi.binary_dilation(m, iterations=int(rng.integers(0, 2))) if m.size > 1 else m)
    return out


def test_morphology_equals_scipy() -> None:
    from skimage.morphology import disk as sk_disk

    from pathgan.tissue import _morph

    rng = np.random.default_rng(0)
    structures = [sk_disk(r).astype(bool) for r in (1, 2, 3, 5)] + [np.ones((3, 3), bool)]
    for m in _random_masks(rng, 120):
        for fp in structures:
            for border in (0, 1):
                np.testing.assert_array_equal(_morph.erode(m, fp, border), ndi.binary_erosion(m, fp, border_value=border))
            np.testing.assert_array_equal(_morph.dilate(m, fp), ndi.binary_dilation(m, fp))
            np.testing.assert_array_equal(_morph.open_(m, fp), ndi.binary_opening(m, fp))
            np.testing.assert_array_equal(_morph.close(m, fp), ndi.binary_closing(m, fp, border_value=0))
        np.testing.assert_array_equal(_morph.open_2x2(m), ndi.binary_opening(m, np.ones((2, 2), bool)))
        np.testing.assert_array_equal(_morph.fill_holes(m), ndi.binary_fill_holes(m))


def test_uint8_rule_tables_and_statistics_equal_the_float_path() -> None:
    """The LUT rule matching, level-histogram percentile and Otsu, bounding-box component filter
    and preview contour give exactly what the straightforward float/scipy/skimage code gives."""
    from skimage.segmentation import find_boundaries

    from pathgan.tissue._color import HSVImage, hsv_valid
    from pathgan.tissue._mask import (
        _drop_small_by_count,
        _drop_small_components,
        _image_score,
        _otsu,
        _otsu_of_levels,
        tissue_score,
    )
    from pathgan.tissue._pen import _EDGE_RULES, _HALO_RULES, _SEED_RULES, _match, match_rules
    from pathgan.tissue._preview import _inner_boundary

    rng = np.random.default_rng(1)
    img_rgb, _, _ = _slide()
    images = [img_rgb.astype(np.uint8)] + [rng.integers(0, 256, (int(h), int(w), 3), dtype=np.uint8)
                                           for h, w in rng.integers(2, 60, (30, 2))]
    for rgb in images:
        img = HSVImage(rgb)
        hsv, _ = hsv_valid(rgb)
        for rules in (_SEED_RULES, _HALO_RULES, _EDGE_RULES):
            np.testing.assert_array_equal(match_rules(img, rules), _match(hsv, rules))
        score, glass = _image_score(img)
        np.testing.assert_array_equal(score, tissue_score(hsv))
        keep = rng.random(score.shape) < 0.7
        assert _otsu_of_levels(img, keep, glass) == _otsu(score[keep])
    for m in _random_masks(rng, 80):
        for min_px in (0, 2, 7, 40):
            labels, _ = ndi.label(m, structure=np.ones((3, 3), bool))
            expected = m if min_px <= 1 or not m.any() else _drop_small_by_count(labels, min_px)
            np.testing.assert_array_equal(_drop_small_components(m, min_px), expected)
        np.testing.assert_array_equal(_inner_boundary(m), find_boundaries(m, mode="inner"))


def test_blur_scores_of_uint8_equal_float_reference() -> None:
    rng = np.random.default_rng(4)
    patches = rng.integers(0, 256, (20, 38, 44, 3), dtype=np.uint8)
    g = patches[..., 1].astype(np.float64)
    small = (g[:, 0::2, 0::2] + g[:, 1::2, 0::2] + g[:, 0::2, 1::2] + g[:, 1::2, 1::2]) / (4 * 255)
    lap = small[:, :-2, 1:-1] + small[:, 2:, 1:-1] + small[:, 1:-1, :-2] + small[:, 1:-1, 2:] - 4 * small[:, 1:-1, 1:-1]
    np.testing.assert_allclose(blur_scores(patches), lap.reshape(20, -1).var(axis=1), rtol=1e-6)


def test_white_fractions_equal_reference() -> None:
    from pathgan.tissue import white_fractions

    rng = np.random.default_rng(5)
    for shape in ((9, 64, 64, 3), (40, 33, 30, 3), (3, 7, 5, 3)):
        patches = rng.integers(180, 256, shape, dtype=np.uint8)
        for step in (1, 2, 3):
            q = patches[:, ::step, ::step]
            ref = ((q > 215).all(axis=-1).sum(axis=(1, 2)) / q[0, ..., 0].size).astype(np.float32)
            np.testing.assert_array_equal(white_fractions(patches, 215, step), ref)


def test_tissue_and_pen_on_pool_threads_equals_direct() -> None:
    """The plan's helpers run inline when called from the plan's own thread pool (no deadlock)."""
    from pathgan._threads import parallel_map
    from pathgan.tissue import tissue_and_pen

    img, _, _ = _slide()
    rgb = img.astype(np.uint8)
    ref = tissue_and_pen(rgb, MPP)
    for got in parallel_map(lambda _: tissue_and_pen(rgb, MPP), range(3)):
        np.testing.assert_array_equal(got[0], ref[0])
        np.testing.assert_array_equal(got[1], ref[1])
