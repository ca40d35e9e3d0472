"""A tiny registered model (28 px, w_dim 8) and tiny synthetic patch stores, for training tests."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from pathgan.models import get_config, list_configs, register
from pathgan.store import create_store, finalize_store, temp_path_for, write_shard

TINY = "test-tiny-28"


def register_tiny() -> None:
    if TINY not in list_configs():
        base = get_config("pathologygan-56-cpu")
        register(dataclasses.replace(base, name=TINY, image_px=28, z_dim=8, w_dim=8, mapping_blocks=1,
                                     g_channels=(8, 4), d_channels=(4, 8), dense_units=16, g_stem_channels=4,
                                     attention_px=14))


def make_tiny_store(path: Path, n: int, seed: int, split: str | None = None, label: str | None = None,
                    colour: tuple[int, int, int] | None = None) -> Path:
    """``n`` 32-px noise patches (mean 170, std 40; or mean ``colour`` per channel, std 15)."""
    rng = np.random.default_rng(seed)
    if colour is None:
        patches = np.clip(rng.normal(170, 40, size=(n, 32, 32, 3)), 0, 255).astype(np.uint8)
    else:
        patches = np.clip(rng.normal(np.asarray(colour, float), 15, size=(n, 32, 32, 3)), 0, 255).astype(np.uint8)
    tmp = temp_path_for(path)
    create_store(tmp, coords_xy=np.arange(2 * n, dtype=np.int64).reshape(n, 2), tissue_fraction=np.ones(n),
                 pen_fraction=np.zeros(n), patch_px=32, patches_per_shard=16, codec="zstd", jpeg_quality=90,
                 thumbnail=np.zeros((4, 4, 3), np.uint8), tissue_mask=np.ones((4, 4), bool),
                 pen_mask=np.zeros((4, 4), bool))
    for s in range(0, n, 16):
        write_shard(tmp, s, patches[s : s + 16], np.ones(len(patches[s : s + 16])), np.zeros(len(patches[s : s + 16])))
    attrs = {"slide_id": path.stem, "split": split, "source": {"sha256_first_mib": str(seed), "size_bytes": 1},
             "mpp_requested": 1.0, "mpp_effective": [1.0, 1.0], "source_level": 0, "patch_px": 32, "stride_px": 32,
             "n_patches": n, "config": {}, "pathgan_version": "test"}
    if label is not None:
        attrs["label"] = label
    finalize_store(tmp, path, attrs)
    return path


def make_coded_store(path: Path, n: int = 10, px: int = 16, per_shard: int = 4, *, mark_corner: bool = False) -> Path:
    """A complete zstd store of ``n`` flat patches; patch i has colour (x/16, y/16, i) of its
    shuffled coords, so any misalignment of rows shows. ``mark_corner`` paints pixel (0, 0) white
    (outside any centre crop)."""
    coords = np.random.default_rng(0).permutation(n * 2).reshape(n, 2).astype(np.int64) * 16
    patches = np.empty((n, px, px, 3), np.uint8)
    patches[:] = np.stack([coords[:, 0] // 16, coords[:, 1] // 16, np.arange(n)], axis=1)[:, None, None, :]
    if mark_corner:
        patches[:, 0, 0] = 255
    tmp = temp_path_for(path)
    create_store(tmp, coords_xy=coords, tissue_fraction=np.ones(n), pen_fraction=np.zeros(n), patch_px=px,
                 patches_per_shard=per_shard, codec="zstd", jpeg_quality=90,
                 thumbnail=np.zeros((4, 4, 3), np.uint8), tissue_mask=np.ones((4, 4), bool),
                 pen_mask=np.zeros((4, 4), bool))
    for start in range(0, n, per_shard):
        chunk = patches[start : start + per_shard]
        write_shard(tmp, start, chunk, np.ones(len(chunk)), np.zeros(len(chunk)))
    attrs = {"slide_id": path.stem, "source": {}, "mpp_requested": 0.5, "mpp_effective": [0.5, 0.5], "source_level": 0,
             "patch_px": px, "stride_px": px, "n_patches": n, "config": {}, "pathgan_version": "test"}
    finalize_store(tmp, path, attrs)
    return path
