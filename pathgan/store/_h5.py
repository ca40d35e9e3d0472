"""CLAM-compatible coordinate files (``<slide_id>.h5`` with a ``coords`` dataset)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from pathgan._io import atomic_path

__all__ = ["write_clam_h5"]


def write_clam_h5(
    path: Path,
    *,
    coords_xy: np.ndarray,
    patch_level: int,
    patch_size_level_px: int,
    level_downsample: tuple[float, float],
    level_dimensions: tuple[tuple[int, int], ...],
    slide_id: str,
    target_mpp: float,
    patch_px: int,
) -> None:
    """Write CLAM's layout: dataset ``coords`` int64 [N, 2] (level-0 x, y) with CLAM's attrs.

    CLAM reads each patch as ``read_region(coord, patch_level, (patch_size, patch_size))``;
    ``patch_size`` is therefore the footprint in level pixels rounded to an integer. The exact
    physical resolution is kept in the extra attrs ``target_mpp`` and ``target_patch_px``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".h5") as tmp, h5py.File(tmp, "w") as f:
        dset = f.create_dataset("coords", data=np.asarray(coords_xy, np.int64).reshape(-1, 2))
        dset.attrs["patch_size"] = int(patch_size_level_px)
        dset.attrs["patch_level"] = int(patch_level)
        dset.attrs["downsample"] = np.asarray(level_downsample, np.float64)
        dset.attrs["downsampled_level_dim"] = np.asarray(level_dimensions[patch_level], np.int64)
        dset.attrs["level_dim"] = np.asarray(level_dimensions[0], np.int64)
        dset.attrs["name"] = slide_id
        dset.attrs["save_path"] = str(path.parent)
        dset.attrs["target_mpp"] = float(target_mpp)
        dset.attrs["target_patch_px"] = int(patch_px)
