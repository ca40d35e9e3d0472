"""pathgan.data over a store tiled from the real CMU slide (skipped where ../shared/data is absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pathgan.config import TileConfig
from pathgan.data import PatchDataset, describe, make_loader
from pathgan.manifest import SlideEntry
from pathgan.parallel import dask_client
from pathgan.stages import tile_slides
from pathgan.store import PatchStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # tiles the real slides with a Dask cluster

CMU = "slides/CMU-1-Small-Region.svs"


def _crop_offset(image_u8: np.ndarray, patch: np.ndarray) -> tuple[int, int] | None:
    """(y, x) where ``image_u8`` (h, w, 3) is an exact sub-array of ``patch`` (P, P, 3), else None."""
    h, w = image_u8.shape[:2]
    ys, xs = np.nonzero((patch[: patch.shape[0] - h + 1, : patch.shape[1] - w + 1] == image_u8[0, 0]).all(-1))
    for y, x in zip(ys, xs, strict=True):
        if np.array_equal(patch[y : y + h, x : x + w], image_u8):
            return int(y), int(x)
    return None


def test_loader_over_real_store(data_dir: Path, tmp_path: Path) -> None:
    cfg = TileConfig(mpp=0.5, patch_px=256)
    with dask_client(n_workers=1, dashboard=False) as client:
        rows = tile_slides([SlideEntry(slide_id="cmu", path=data_dir / CMU)], tmp_path, cfg, client=client,
                           progress=False)
    assert rows[0].status == "done", rows[0]
    path = tmp_path / "cmu.zarr"
    store = PatchStore(path)
    ds = PatchDataset([path], image_px=224, resize_mode="crop", dihedral=False, seed=1)
    assert 0 < len(ds) <= len(store)
    info = describe(ds)
    assert info["mpp"] == 0.5 and info["patch_px"] == [256] and info["stores"][0]["n_patches"] == len(store)

    batch_size = min(16, len(ds))
    batch = next(iter(make_loader(ds, batch_size, shuffle=True, seed=0, num_workers=0)))
    images = batch["image"]
    assert images.shape == (batch_size, 3, 224, 224) and images.dtype == torch.float32
    assert images.min() >= 0 and images.max() <= 1 and images.std() > 0.05
    stored = store.read(batch["index"].numpy())  # uint8 [B, 256, 256, 3]
    as_u8 = (images.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    offsets = [_crop_offset(img, patch) for img, patch in zip(as_u8, stored, strict=True)]
    assert all(o is not None for o in offsets), offsets
    assert len(set(offsets)) > 1  # random crops
    # the kept patches pass the default filters
    kept = ds.locate(np.arange(len(ds)))[1]
    assert np.all(store.tissue_fraction[kept] >= 0.5) and np.all(store.qc("white_fraction")[kept] <= 0.3)
