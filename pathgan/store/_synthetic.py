"""Synthetic patch stores: generated patches in the real stores' schema (version 1), plus labels.

::

    synthetic.zarr/        attrs["pathgan"]: every required attribute, with slide_id "synthetic",
                           synthetic: true, class_names [K], label: null, generator provenance
      patches          uint8 [N, P, P, 3]  lossless (zstd), so the saved latents regenerate them exactly
      coords           int64 [N, 2]        fake but unique: row i at (i * P, 0), non-overlapping footprints
      tissue_fraction  float32 [N]         1
      qc/pen_fraction  float32 [N]         0
      qc/blur, qc/white_fraction           computed from the pixels, as for real stores
      labels           int16 [N]           index into attrs class_names (only in synthetic stores)
      thumbnail        uint8 [1, 1, 3]     placeholder: there is no slide
      masks/tissue, masks/pen  bool [1, 1]

Written like a real store: created under a temporary name, filled shard by shard, then renamed by
:func:`~pathgan.store.finalize_store` once complete.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import ZstdCodec

from pathgan.errors import ShapeError, StoreError
from pathgan.store import _schema as S
from pathgan.store._writer import create_store, finalize_store, temp_path_for, write_shard

__all__ = ["SYNTHETIC_SLIDE_ID", "SyntheticStoreWriter"]

SYNTHETIC_SLIDE_ID = "synthetic"


class SyntheticStoreWriter:
    """Write ``final`` (``synthetic.zarr``) from batches of generated patches, in row order.

    Parameters
    ----------
    final
        Path of the finished store; nothing is written there before :meth:`finish`.
    labels
        int [N]: the class index of every row (into ``class_names``), fixed up front.
    class_names
        The K class names (strings).
    patch_px
        Side of the square patches in pixels.
    patches_per_shard
        Rows per Zarr shard; :meth:`add` buffers rows until a shard is full.

    Raises
    ------
    ShapeError
        Labels outside ``[0, K)``, no rows, or a bad ``patch_px``.
    """

    def __init__(self, final: Path, *, labels: np.ndarray, class_names: Sequence[str], patch_px: int,
                 patches_per_shard: int = 256) -> None:
        labels = np.asarray(labels)
        if labels.ndim != 1 or not len(labels) or not np.issubdtype(labels.dtype, np.integer):
            raise ShapeError(f"labels: expected int [N >= 1], got {labels.dtype} {list(labels.shape)}")
        if labels.min() < 0 or labels.max() >= len(class_names):
            raise ShapeError(f"labels must lie in [0, {len(class_names)}) (the class names); got {labels.min()}..{labels.max()}")
        if patch_px < 1 or patches_per_shard < 1:
            raise ShapeError(f"patch_px and patches_per_shard must be >= 1, got {patch_px}, {patches_per_shard}")
        self.final = Path(final)
        self.class_names = [str(c) for c in class_names]
        self.patch_px = int(patch_px)
        self.n = len(labels)
        self.per_shard = int(patches_per_shard)
        self.rows_done = 0
        self.tmp = temp_path_for(self.final)
        n = self.n
        create_store(self.tmp, coords_xy=np.stack([np.arange(n) * self.patch_px, np.zeros(n, np.int64)], 1),
                     tissue_fraction=np.ones(n, np.float32), pen_fraction=np.zeros(n, np.float32),
                     patch_px=self.patch_px, patches_per_shard=self.per_shard, codec="zstd", jpeg_quality=90,
                     thumbnail=np.full((1, 1, 3), 255, np.uint8), tissue_mask=np.ones((1, 1), bool),
                     pen_mask=np.zeros((1, 1), bool))
        grp = zarr.open_group(self.tmp, mode="r+")
        grp.create_array(S.LABELS, data=labels.astype(np.int16), chunks=(min(n, 65536),),
                         compressors=ZstdCodec(level=3))
        self._buf: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._buffered = 0

    def add(self, patches: np.ndarray, blur: np.ndarray, white_fraction: np.ndarray) -> None:
        """Append rows: patches uint8 [b, P, P, 3] with their QC scores float [b] (blur, white fraction)."""
        patches = np.asarray(patches)
        if patches.dtype != np.uint8 or patches.shape[1:] != (self.patch_px, self.patch_px, 3):
            raise ShapeError(f"patches: expected uint8 [b, {self.patch_px}, {self.patch_px}, 3], "
                             f"got {patches.dtype} {list(patches.shape)}")
        if len(blur) != len(patches) or len(white_fraction) != len(patches):
            raise ShapeError(f"blur and white_fraction need {len(patches)} values each")
        if self.rows_done + self._buffered + len(patches) > self.n:
            raise ShapeError(f"more than the {self.n} rows this store was created for")
        self._buf.append((patches, np.asarray(blur, np.float32), np.asarray(white_fraction, np.float32)))
        self._buffered += len(patches)
        while self._buffered >= self.per_shard or (self._buffered and self.rows_done + self._buffered == self.n):
            self._write_shard()

    def _write_shard(self) -> None:
        patches, blur, white = (np.concatenate(parts) for parts in zip(*self._buf, strict=True))
        k = min(self.per_shard, len(patches))
        write_shard(self.tmp, self.rows_done, patches[:k], blur[:k], white[:k])
        self.rows_done += k
        self._buffered -= k
        self._buf = [(patches[k:], blur[k:], white[k:])] if self._buffered else []

    def finish(self, attrs: S.StoreAttrs | dict[str, Any]) -> Path:
        """Stamp the metadata (the caller's ``attrs`` with ``synthetic``, ``slide_id``, ``class_names``,
        ``patch_px``, ``n_patches`` set here) and rename to ``final``. Returns ``final``.

        Raises
        ------
        StoreError
            Not every row was added, or ``final`` exists.
        """
        if self.rows_done != self.n:
            raise StoreError(f"{self.final}: only {self.rows_done} of {self.n} synthetic patches written")
        mine = {"synthetic": True, "slide_id": SYNTHETIC_SLIDE_ID, "class_names": tuple(self.class_names),
                "patch_px": self.patch_px, "stride_px": self.patch_px, "n_patches": self.n, "footprint0": self.patch_px}
        if isinstance(attrs, S.StoreAttrs):
            full = attrs.replace(**mine)
        else:  # the caller's part as a dict: validated with the writer's part filled in
            full = S.StoreAttrs.from_dict({**attrs, **mine, "class_names": list(self.class_names)}, str(self.final))
        try:
            finalize_store(self.tmp, self.final, full)
        except FileExistsError as err:
            raise StoreError(str(err)) from err
        return self.final
