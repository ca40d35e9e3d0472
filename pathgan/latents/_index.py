"""Nearest real patches to a latent: which tissue in the stores does this ``w`` look like?"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from sklearn.neighbors import NearestNeighbors

from pathgan.errors import ConfigError, ShapeError, StoreError
from pathgan.latents._arith import as_array
from pathgan.store import PatchStore

__all__ = ["LatentIndex", "Metric", "Neighbour"]

Metric = Literal["euclidean", "cosine"]
_METRICS: tuple[str, ...] = ("euclidean", "cosine")


@dataclass(frozen=True)
class Neighbour:
    """One real patch near a query latent.

    ``(x, y)`` is the patch's top-left corner in level-0 pixels of its slide; ``row`` its index in
    the store; ``distance`` in the index's metric (cosine distance is ``1 - cos``).
    """

    store: Path
    slide_id: str
    row: int
    x: int
    y: int
    distance: float


class LatentIndex:
    """Nearest-neighbour search over the latents of real patches.

    Parameters
    ----------
    latents : ``[N, d]`` latents of real patches (e.g. encoder outputs).
    store_paths : the stores the patches come from.
    store_index : int ``[N]``, which entry of ``store_paths`` holds each patch.
    rows : int ``[N]``, each patch's row in its store.
    coords : int ``[N, 2]``, each patch's level-0 ``(x, y)``.
    slide_ids : one slide id per store.
    metric : ``"euclidean"`` or ``"cosine"``.

    Raises
    ------
    ShapeError
        Arrays of inconsistent lengths or shapes, or no latent at all.
    ConfigError
        Unknown ``metric``, or a ``store_index`` outside ``store_paths``.

    Examples
    --------
    >>> index = LatentIndex.from_stores(stores, run_id="00012-pathgan224")   # doctest: +SKIP
    >>> hits = index.query(w, k=8)                                            # doctest: +SKIP
    >>> pixels = index.patches(hits)                                          # uint8 [8, P, P, 3]
    """

    def __init__(
        self,
        latents: Any,
        *,
        store_paths: Sequence[str | Path],
        store_index: Any,
        rows: Any,
        coords: Any,
        slide_ids: Sequence[str],
        metric: Metric = "euclidean",
    ) -> None:
        if metric not in _METRICS:
            raise ConfigError(f"metric must be one of {list(_METRICS)}; received {metric!r}")
        x = as_array(latents, "latents").astype(np.float32)
        if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
            raise ShapeError(f"latents must be a non-empty [N, d] array; received shape {list(x.shape)}")
        n = x.shape[0]
        self.store_paths: list[Path] = [Path(p) for p in store_paths]
        self.slide_ids: list[str] = [str(s) for s in slide_ids]
        if len(self.slide_ids) != len(self.store_paths):
            raise ShapeError(
                f"slide_ids must hold one id per store: {len(self.slide_ids)} ids for {len(self.store_paths)} stores"
            )
        self.store_index = np.asarray(store_index, np.int64)
        self.rows = np.asarray(rows, np.int64)
        self.coords = np.asarray(coords, np.int64)
        for name, arr, shape in (
            ("store_index", self.store_index, (n,)),
            ("rows", self.rows, (n,)),
            ("coords", self.coords, (n, 2)),
        ):
            if arr.shape != shape:
                raise ShapeError(f"{name} must have shape {list(shape)} (one per latent); received {list(arr.shape)}")
        if self.store_index.min() < 0 or self.store_index.max() >= len(self.store_paths):
            raise ConfigError(
                f"store_index must lie in 0..{len(self.store_paths) - 1} (one per store path); "
                f"received values {int(self.store_index.min())}..{int(self.store_index.max())}"
            )
        self.metric: Metric = metric
        self.latents = x  # [N, d] float32
        # sklearn picks brute force for cosine and for wide latents, a tree for narrow euclidean ones;
        # all are exact.
        self._nn = NearestNeighbors(metric=metric).fit(x)
        self._stores: dict[Path, PatchStore] = {}

    @classmethod
    def from_stores(cls, stores: Sequence[str | Path], run_id: str, **kw: Any) -> LatentIndex:
        """An index over every patch of ``stores``, with the latents ``run_id`` wrote into them.

        ``kw`` is passed to the constructor (``metric``).

        Raises
        ------
        StoreError
            A store is unreadable, has no latents for ``run_id``, or their count differs from its
            number of patches.
        ShapeError
            The stores' latents have different widths.
        """
        from pathgan.store import read_latents  # written by the encode stage, beside the coords

        paths = [Path(p) for p in stores]
        if not paths:
            raise ConfigError("from_stores needs at least one store path; received none")
        latents, index, rows, coords, slide_ids = [], [], [], [], []
        for i, path in enumerate(paths):
            store = PatchStore(path)
            w = np.asarray(read_latents(path, run_id))
            if w.ndim != 2 or w.shape[0] != len(store):
                raise StoreError(
                    f"{path} holds {len(store)} patches but its latents for run {run_id!r} have shape {list(w.shape)}"
                )
            latents.append(w)
            index.append(np.full(len(store), i, np.int64))
            rows.append(np.arange(len(store), dtype=np.int64))
            coords.append(store.coords)
            slide_ids.append(store.slide_id)
        widths = {str(p): int(w.shape[1]) for p, w in zip(paths, latents, strict=True)}
        if len(set(widths.values())) != 1:
            raise ShapeError(f"latent widths differ between stores: {widths}")
        return cls(
            np.concatenate(latents),
            store_paths=paths,
            store_index=np.concatenate(index),
            rows=np.concatenate(rows),
            coords=np.concatenate(coords),
            slide_ids=slide_ids,
            **kw,
        )

    def __len__(self) -> int:
        return int(self.latents.shape[0])

    def __repr__(self) -> str:
        return (
            f"LatentIndex(n={len(self)}, d={self.latents.shape[1]}, stores={len(self.store_paths)}, "
            f"metric={self.metric!r})"
        )

    def query(self, w: Any, k: int = 8) -> list[Neighbour] | list[list[Neighbour]]:
        """The ``k`` nearest real patches, closest first.

        Parameters
        ----------
        w : one latent ``[d]`` or several ``[m, d]``.
        k : neighbours per latent, ``1 <= k <= len(self)``.

        Returns
        -------
        ``list[Neighbour]`` for ``w [d]``; ``list[list[Neighbour]]`` (one list per row) for ``w [m, d]``.

        Raises
        ------
        ShapeError
            ``w`` is not ``[d]`` / ``[m, d]`` of the index's width.
        ConfigError
            ``k`` out of range.
        """
        q = as_array(w, "w")
        single = q.ndim == 1
        q = q[None] if single else q
        d = self.latents.shape[1]
        if q.ndim != 2 or q.shape[1] != d:
            raise ShapeError(f"w must be [d] or [m, d] with d={d}; received shape {list(as_array(w, 'w').shape)}")
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= len(self):
            raise ConfigError(f"k must be an integer in 1..{len(self)} (the index size); received {k!r}")
        dist, idx = self._nn.kneighbors(q.astype(np.float32), n_neighbors=int(k))  # [m, k] each
        out = [[self._neighbour(int(j), float(dj)) for j, dj in zip(ir, dr, strict=True)] for ir, dr in zip(idx, dist, strict=True)]
        return out[0] if single else out

    def _neighbour(self, j: int, distance: float) -> Neighbour:
        s = int(self.store_index[j])
        return Neighbour(
            store=self.store_paths[s],
            slide_id=self.slide_ids[s],
            row=int(self.rows[j]),
            x=int(self.coords[j, 0]),
            y=int(self.coords[j, 1]),
            distance=distance,
        )

    def patches(self, neighbours: Sequence[Neighbour]) -> np.ndarray:
        """Pixels of ``neighbours``, in their order: uint8 ``[k, P, P, 3]``.

        Reads each store once (one batched :meth:`PatchStore.read` per store); stores stay open on
        the index for later calls.

        Raises
        ------
        ConfigError
            ``neighbours`` is empty or is a nested list (pass ``query(...)[i]``).
        StoreError
            A store cannot be read, or stores have different patch sizes.
        """
        items = list(neighbours)
        if not items:
            raise ConfigError("patches needs at least one Neighbour; received an empty list")
        if not all(isinstance(n, Neighbour) for n in items):
            raise ConfigError(
                "patches takes a flat list of Neighbour (one query's result); for several queries "
                "call it once per list"
            )
        by_store: dict[Path, list[int]] = {}
        for pos, n in enumerate(items):
            by_store.setdefault(n.store, []).append(pos)
        out: np.ndarray | None = None
        for path, positions in by_store.items():
            store = self._store(path)
            pixels = store.read([items[p].row for p in positions])  # [n, P, P, 3]
            if out is None:
                out = np.empty((len(items), *pixels.shape[1:]), np.uint8)
            elif out.shape[1:] != pixels.shape[1:]:
                raise StoreError(
                    f"{path} has patches of shape {list(pixels.shape[1:])}, other stores {list(out.shape[1:])}; "
                    "read them separately"
                )
            out[positions] = pixels
        assert out is not None
        return out

    def _store(self, path: Path) -> PatchStore:
        store = self._stores.get(path)
        if store is None:
            store = self._stores[path] = PatchStore(path)
        return store
