"""Patch-grid geometry: invariants as property tests, level and decode-scale choice by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pathgan.errors import ResolutionError
from pathgan.slide import SlideGeometry
from pathgan.tiling import grid_coords, level_boxes, locality_order, plan_geometry, shard_ranges


@settings(max_examples=120, deadline=None)
@given(
    w=st.integers(1, 10_000),
    h=st.integers(1, 10_000),
    foot=st.floats(32, 3000),
    stride_ratio=st.floats(0.25, 2.0),
)
def test_grid_invariants(w: int, h: int, foot: float, stride_ratio: float) -> None:
    stride = foot * stride_ratio
    c = grid_coords((w, h), (foot, foot), (stride, stride))
    assert c.dtype == np.int64 and c.shape[1] == 2
    # every patch lies inside the slide
    assert np.all(c >= 0)
    assert np.all(c[:, 0] + foot <= w + 1e-6) and np.all(c[:, 1] + foot <= h + 1e-6)
    # the count is maximal: one more step would leave the slide
    nx = len(np.unique(c[:, 0]))
    ny = len(np.unique(c[:, 1]))
    assert len(c) == nx * ny
    if len(c):
        assert math.floor(nx * stride) + foot > w - 1e-6 or nx * stride + foot > w
        # uniform stride up to integer rounding, level-0 frame starting at the origin
        xs = np.unique(c[:, 0])
        assert xs[0] == 0
        d = np.diff(xs)
        assert np.all((d >= math.floor(stride) - 1) & (d <= math.ceil(stride) + 1))
        assert abs(xs[-1] - (nx - 1) * stride) < 1.0
    else:
        assert w < foot or h < foot


def test_grid_hand_example() -> None:
    c = grid_coords((1000, 600), (256.0, 256.0), (256.0, 256.0))
    assert c.tolist() == [[0, 0], [256, 0], [512, 0], [0, 256], [256, 256], [512, 256]]


def test_source_level_and_scale() -> None:
    geom = SlideGeometry(level_dimensions=((40000, 30000), (10000, 7500), (2500, 1875)), mpp=(0.25, 0.25))
    assert geom.source_level(0.5) == 0  # level 1 is 1.0 um/px: too coarse
    assert geom.source_level(1.0) == 1
    assert geom.source_level(4.2) == 2
    with pytest.raises(ResolutionError, match="finer than level 0"):
        geom.source_level(0.1)
    g = plan_geometry(mpp0=(0.25, 0.25), level=0, level_downsample=(1.0, 1.0), target_mpp=0.5,
                      patch_px=256, stride_px=256, scale_allowed=lambda s: True)
    assert g.decode_scale == 2 and g.footprint0 == (512.0, 512.0) and g.source_px == (256.0, 256.0)
    assert g.effective_mpp == pytest.approx((0.5, 0.5))
    g = plan_geometry(mpp0=(0.25, 0.25), level=0, level_downsample=(1.0, 1.0), target_mpp=0.5,
                      patch_px=256, stride_px=128, scale_allowed=lambda s: s == 1)
    assert g.decode_scale == 1 and g.stride0 == (256.0, 256.0)
    # 0.499 um/px to 0.5: no scaled decode (it would need enlarging), fractional footprint
    g = plan_geometry(mpp0=(0.499, 0.499), level=0, level_downsample=(1.0, 1.0), target_mpp=0.5,
                      patch_px=256, stride_px=256, scale_allowed=lambda s: True)
    assert g.decode_scale == 1 and g.footprint0[0] == pytest.approx(256 * 0.5 / 0.499)


def test_level_boxes_and_shards() -> None:
    g = plan_geometry(mpp0=(0.25, 0.25), level=1, level_downsample=(4.0, 4.0), target_mpp=2.0,
                      patch_px=64, stride_px=64, scale_allowed=lambda s: True)
    assert g.decode_scale == 2  # level 1 is 1 um/px: 128 px per patch, halved by libjpeg
    boxes = level_boxes(np.array([[512, 1024]]), g)
    assert boxes.tolist() == [[64.0, 128.0, 128.0, 192.0]]
    assert shard_ranges(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert shard_ranges(0, 4) == []


def test_locality_order_is_blockwise_permutation() -> None:
    c = grid_coords((4096, 4096), (256.0, 256.0), (256.0, 256.0))
    order = locality_order(c, block0=1024)
    assert sorted(order.tolist()) == list(range(len(c)))
    blocks = (c[order] // 1024)
    keys = blocks[:, 1] * 100 + blocks[:, 0]
    assert np.all(np.diff(keys) >= 0)  # block-major
    assert len(c[order][:16]) == 16 and set(map(tuple, c[order][:16] // 1024)) == {(0, 0)}
