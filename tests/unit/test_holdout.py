"""Spatial hold-out: checkerboard regions from coordinates, and PatchDataset keeping one part."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pathgan.data import PatchDataset, SpatialHoldout, checkerboard_regions, level0_mpp
from pathgan.errors import ConfigError
from pathgan.store import create_store, finalize_store, temp_path_for, write_shard


def test_regions_by_hand() -> None:
    # Squares of 100 px, patches of 40 px: square (0, 0) is train, (1, 0) test, (1, 1) train.
    coords = np.array([[0, 0], [60, 0], [61, 0], [100, 0], [150, 150], [99, 99], [100, 60]])
    got = checkerboard_regions(coords, 40, 100)
    # [60, 100) fits in square 0; [61, 101) straddles; [100, 140) is in square 1 (test);
    # (150, 150) in square (1, 1) -> train; [99, 139) straddles; (100, 60): x in 1, y in [60, 100) -> test.
    assert got.tolist() == [0, 0, -1, 1, 0, -1, 1]


def test_regions_accept_xy_pairs() -> None:
    coords = np.array([[0, 150]])
    assert checkerboard_regions(coords, (40, 40), (100, 200)).tolist() == [0]  # square (0, 0): y block is 200
    assert checkerboard_regions(coords, (40, 40), (100, 100)).tolist() == [1]  # square (0, 1)
    with pytest.raises(ConfigError):
        checkerboard_regions(coords, 40, 0)


def test_no_test_pixel_is_in_a_train_patch() -> None:
    rng = np.random.default_rng(3)
    coords = rng.integers(0, 2000, size=(3000, 2))
    region = checkerboard_regions(coords, 64, 256)
    tr, te = coords[region == 0], coords[region == 1]
    assert len(tr) > 100 and len(te) > 100
    overlap = (np.abs(tr[:, None, 0] - te[None, :, 0]) < 64) & (np.abs(tr[:, None, 1] - te[None, :, 1]) < 64)
    assert not overlap.any()
    # and every patch that touches two squares is used by neither
    first = coords // 256
    last = (coords + 63) // 256
    assert np.array_equal(region == -1, np.any(first != last, axis=1))


def test_holdout_validates() -> None:
    with pytest.raises(ConfigError, match="block_um"):
        SpatialHoldout(block_um=0, part="train")
    with pytest.raises(ConfigError, match="part"):
        SpatialHoldout(block_um=100, part="val")  # type: ignore[arg-type]


def test_level0_mpp() -> None:
    attrs = {"patch_px": 64, "mpp_effective": [1.0, 1.0], "footprint0": [128, 128]}
    assert level0_mpp(attrs) == (0.5, 0.5)


def _grid_store(tmp_path: Path) -> Path:
    """16-px patches at 1 um/px from a 0.5 um/px slide (32 level-0 px each), stride 8 px (16 level-0 px)."""
    xs = np.arange(0, 400, 16)
    coords = np.array([(x, y) for y in xs for x in xs], np.int64)
    n = len(coords)
    final = tmp_path / "grid.zarr"
    tmp = temp_path_for(final)
    create_store(tmp, coords_xy=coords, tissue_fraction=np.ones(n), pen_fraction=np.zeros(n), patch_px=16,
                 patches_per_shard=64, codec="zstd", jpeg_quality=90, thumbnail=np.zeros((4, 4, 3), np.uint8),
                 tissue_mask=np.ones((4, 4), bool), pen_mask=np.zeros((4, 4), bool))
    patches = np.zeros((n, 16, 16, 3), np.uint8)
    for s in range(0, n, 64):
        write_shard(tmp, s, patches[s : s + 64], np.full(len(patches[s : s + 64]), 100.0), np.zeros(len(patches[s : s + 64])))
    finalize_store(tmp, final, {"slide_id": "grid", "split": None, "source": {"size_bytes": 1, "sha256_first_mib": "0"},
                                "mpp_requested": 1.0, "mpp_effective": [1.0, 1.0], "footprint0": [32, 32],
                                "source_level": 0, "patch_px": 16, "stride_px": 8, "n_patches": n, "config": {},
                                "pathgan_version": "test"})
    return final


def test_dataset_parts_partition_the_patches(tmp_path: Path) -> None:
    """The train and test parts of a store are exactly the patches checkerboard_regions puts in
    train and test squares, with the square side converted from microns to level-0 pixels."""
    path = _grid_store(tmp_path)
    kw = {"image_px": 16, "min_tissue_fraction": None, "max_white_fraction": None, "dihedral": False,
          "random_crop": False}
    # 48 um squares = 96 level-0 px at 0.5 um/px (level0_mpp from patch_px, mpp and footprint0)
    parts = {p: PatchDataset([path], holdout=SpatialHoldout(block_um=48, part=p), **kw) for p in ("train", "test")}
    coords = np.array([(x, y) for y in np.arange(0, 400, 16) for x in np.arange(0, 400, 16)])
    first, last = coords // 96, (coords + 31) // 96
    inside = np.all(first == last, axis=1)
    expect = {"train": np.flatnonzero(inside & (first.sum(1) % 2 == 0)), "test": np.flatnonzero(inside & (first.sum(1) % 2 == 1))}
    for part, ds in parts.items():
        _, patch = ds.locate(np.arange(len(ds)))
        assert sorted(patch.tolist()) == expect[part].tolist()
        assert len(ds) > 20
