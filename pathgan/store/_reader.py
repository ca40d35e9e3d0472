"""Read a complete patch store, in batches."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from pathgan.errors import StoreError
from pathgan.store import _schema as S
from pathgan.store._writer import _array

__all__ = ["PatchStore", "read_store_attrs"]


def read_store_attrs(path: Path) -> dict[str, Any]:
    """The ``pathgan`` attributes of a complete store.

    Raises
    ------
    StoreError
        The path is not a Zarr group or lacks the completed metadata.
    SchemaMismatchError
        The store was written with another schema version.
    """
    path = Path(path)
    try:
        grp = zarr.open_group(path, mode="r")
    except Exception as err:  # zarr raises FileNotFoundError, ValueError, KeyError ... for non-stores
        raise StoreError(f"{path} is not a pathgan patch store: {err}") from err
    raw = grp.attrs.get(S.ATTRS_KEY)
    attrs: dict[str, Any] = dict(raw) if isinstance(raw, dict) else {}
    missing = [k for k in S.REQUIRED_ATTRS if k not in attrs]
    if missing or not attrs.get("complete"):
        raise StoreError(f"{path} is incomplete or not a pathgan store (missing attrs {missing or ['complete']})")
    S.StoreAttrs.from_dict(attrs, str(path))  # schema version, then every attribute's type and range
    return attrs


class PatchStore:
    """A complete patch store opened read-only.

    Examples
    --------
    >>> store = PatchStore("out/CMU-1.zarr")          # doctest: +SKIP
    >>> batch = store.read(np.arange(64))              # uint8 [64, 256, 256, 3]
    >>> w = store.latents("00012-pathologygan-64-cpu")  # float32 [N, w_dim], after pathgan encode
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.attrs = read_store_attrs(self.path)
        self._grp = zarr.open_group(self.path, mode="r")
        self._patches: Any = _array(self._grp, S.PATCHES)
        self.coords: np.ndarray = np.asarray(_array(self._grp, S.COORDS)[:], np.int64).reshape(-1, 2)
        self.tissue_fraction: np.ndarray = np.asarray(_array(self._grp, S.TISSUE_FRACTION)[:])

    def __len__(self) -> int:
        return int(self._patches.shape[0])

    def __repr__(self) -> str:
        return f"PatchStore({str(self.path)!r}, n={len(self)}, patch_px={self.patch_px}, mpp={self.mpp})"

    @property
    def meta(self) -> S.StoreAttrs:
        """The store's attributes, typed (``attrs`` is the same as a plain dict)."""
        return S.StoreAttrs.from_dict(self.attrs, str(self.path))

    @property
    def patches_per_shard(self) -> int:
        """Patches per shard file of the ``patches`` array, from its metadata (what the writer chose)."""
        shards = getattr(self._patches, "shards", None)
        return int(shards[0]) if shards else int(self._patches.chunks[0])

    @property
    def codec(self) -> tuple[str, int]:
        """``("jpeg", quality)`` or ``("zstd", 0)``: how the patches are encoded, from the array's codecs."""
        from pathgan.store._codec import JpegCodec

        codecs = list(self._patches.metadata.codecs)
        inner = list(getattr(codecs[0], "codecs", codecs)) if codecs else []
        jpeg = next((c for c in inner if isinstance(c, JpegCodec)), None)
        return ("jpeg", jpeg.level) if jpeg is not None else ("zstd", 0)

    @property
    def slide_id(self) -> str:
        return str(self.attrs["slide_id"])

    @property
    def patch_px(self) -> int:
        return int(self.attrs["patch_px"])

    @property
    def mpp(self) -> float:
        """Requested microns per pixel of the patches."""
        return float(self.attrs["mpp_requested"])

    def qc(self, name: str) -> np.ndarray:
        """A per-patch QC score: ``pen_fraction``, ``blur`` or ``white_fraction``."""
        key = f"qc/{name}"
        if key not in S.QC_ARRAYS:
            raise StoreError(f"unknown QC score {name!r}; available: {[k[3:] for k in S.QC_ARRAYS]}")
        return np.asarray(_array(self._grp, key)[:])

    def read(self, indices: np.ndarray | slice | list[int]) -> np.ndarray:
        """Patches ``uint8 [n, P, P, 3]`` at ``indices`` in one batched call (sorted internally)."""
        if isinstance(indices, slice):
            return np.asarray(self._patches[indices])
        idx = np.asarray(indices, np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"patch index out of range 0..{len(self) - 1} in {self.path}")
        out = np.empty((len(idx), self.patch_px, self.patch_px, 3), np.uint8)
        if not idx.size:
            return out
        # zarr 3.1's orthogonal selection on sharded arrays does per-pixel index arithmetic (7x
        # slower than slices for 64 scattered patches): read runs of consecutive indices as slices.
        uniq, inverse = np.unique(idx, return_inverse=True)
        breaks = np.flatnonzero(np.diff(uniq) != 1) + 1
        parts = [np.asarray(self._patches[int(run[0]) : int(run[-1]) + 1]) for run in np.split(uniq, breaks)]
        out[:] = np.concatenate(parts)[inverse]
        return out

    def iter_batches(self, batch_size: int = 256) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(indices, patches)`` in store order, shard-sized batches being the fastest."""
        for start in range(0, len(self), batch_size):
            stop = min(start + batch_size, len(self))
            yield np.arange(start, stop), np.asarray(self._patches[start:stop])

    def thumbnail(self) -> np.ndarray:
        return np.asarray(_array(self._grp, S.THUMBNAIL)[:])

    @property
    def thumbnail_shape(self) -> tuple[int, ...]:
        """``(h, w, 3)`` of the thumbnail, from the array's metadata (no pixels read)."""
        return tuple(int(d) for d in _array(self._grp, S.THUMBNAIL).shape)

    def mask(self, name: str) -> np.ndarray:
        """``tissue`` or ``pen`` mask at the thumbnail's resolution."""
        return np.asarray(_array(self._grp, f"masks/{name}")[:])

    def latents(self, run_id: str) -> np.ndarray:
        """Latents ``float32 [N, w_dim]`` of ``run_id`` (``pathgan encode``), row-aligned with ``coords``.

        Raises :class:`StoreError` when they are absent or incomplete.
        """
        from pathgan.store._latents import read_latents  # _latents imports this module

        return read_latents(self.path, run_id)

    @property
    def synthetic(self) -> bool:
        """True for a store of generated patches (``pathgan export-synthetic``)."""
        return bool(self.attrs.get("synthetic", False))

    def labels(self) -> np.ndarray:
        """Class name of every patch, str [N]: a synthetic store's ``labels`` array, else the slide's
        ``label`` (from the manifest) repeated.

        Raises :class:`StoreError` when the store has no label.
        """
        if self.synthetic and S.LABELS in self._grp:
            names = np.asarray([str(c) for c in self.attrs.get("class_names", [])], dtype=str)
            codes = np.asarray(_array(self._grp, S.LABELS)[:], np.int64)
            if codes.size and (codes.min() < 0 or codes.max() >= len(names)):
                raise StoreError(f"{self.path}: labels outside the {len(names)} class_names")
            return names[codes]
        label = self.attrs.get("label")
        if label is None or label == "":
            raise StoreError(f"{self.path} has no label (set the manifest's label column when tiling, "
                             "or give a label CSV)")
        return np.full(len(self), str(label))

    def latent_runs(self) -> dict[str, dict[str, Any]]:
        """``run_id -> {**provenance, complete, rows_done, n_rows, w_dim}`` for every latents array."""
        from pathgan.store._latents import latent_runs

        return latent_runs(self.path)
