"""The labelled table of patch latents a classifier learns from: latents of one run, read from
encoded stores, with their slide and label (from the manifest or a tile-label CSV)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from pathgan import __version__
from pathgan.errors import ConfigError, ShapeError
from pathgan.labels import read_label_csv

__all__ = ["LatentTable"]

_MAX_LISTED = 20


@dataclass(frozen=True, eq=False)
class LatentTable:
    """Labelled patch latents gathered from patch stores, one row per patch.

    Attributes
    ----------
    latents : float32 ``[N, w_dim]``.
    labels : str ``[N]``, the class of each patch.
    slide_ids : str ``[N]``, the slide each patch belongs to (the grouping of the folds).
    store_index : int64 ``[N]``, index into ``store_paths`` (-1 for tables built from arrays).
    rows : int64 ``[N]``, the patch's row in its store (as in ``coords`` and ``latents``).
    coords : int64 ``[N, 2]``, level-0 ``(x, y)`` of each patch's top-left corner.
    splits : str ``[N]``, the manifest split of the patch's slide (``train``/``val``/``test``, or
        ``""`` when none was given).
    store_paths : the stores the rows came from.
    run_id : the latents' run (``latents/<run_id>`` in every store).
    label_source : ``{"kind": "manifest"}``, ``{"kind": "tile_csv", "path", "sha256"}`` or
        ``{"kind": "arrays"}``.
    latent_provenance : the latents' generator and encoder SHA-256 and ``refine_steps``.
    """

    latents: np.ndarray
    labels: np.ndarray
    slide_ids: np.ndarray
    store_index: np.ndarray
    rows: np.ndarray
    coords: np.ndarray
    splits: np.ndarray
    store_paths: tuple[Path, ...] = ()
    run_id: str = ""
    label_source: dict[str, Any] = field(default_factory=lambda: {"kind": "arrays"})
    latent_provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.latents)
        if self.latents.ndim != 2:
            raise ShapeError(f"latents must be [N, w_dim]; received shape {list(self.latents.shape)}")
        for name in ("labels", "slide_ids", "store_index", "rows", "splits"):
            if getattr(self, name).shape != (n,):
                raise ShapeError(f"{name} must have shape [{n}]; received {list(getattr(self, name).shape)}")
        if self.coords.shape != (n, 2):
            raise ShapeError(f"coords must have shape [{n}, 2]; received {list(self.coords.shape)}")
        if n and not np.all(np.isfinite(self.latents)):
            raise ShapeError("latents hold NaN or infinite values")

    @classmethod
    def from_arrays(cls, latents: Any, labels: Sequence[Any], slide_ids: Sequence[Any], *,
                    splits: Sequence[str] | None = None, run_id: str = "") -> LatentTable:
        """A table from in-memory arrays (notebooks, tests): rows numbered within each slide."""
        x = np.asarray(latents, np.float32)
        sid = np.asarray([str(s) for s in slide_ids])
        rows = np.zeros(len(sid), np.int64)
        for s in np.unique(sid):
            rows[sid == s] = np.arange(int((sid == s).sum()))
        return cls(latents=x, labels=np.asarray([str(v) for v in labels]), slide_ids=sid,
                   store_index=np.full(len(sid), -1, np.int64), rows=rows,
                   coords=np.zeros((len(sid), 2), np.int64),
                   splits=np.asarray(list(splits) if splits is not None else [""] * len(sid), dtype=str).reshape(-1),
                   run_id=run_id)

    @classmethod
    def from_stores(cls, stores: Sequence[str | Path], run_id: str, *,
                    labels_csv: str | Path | None = None) -> LatentTable:
        """Latents of ``run_id`` from every store, labelled by the manifest or a tile-label CSV.

        With ``labels_csv`` only the patches it lists are kept; without it every patch gets its
        store's slide-level ``label`` attribute (from the manifest given to ``pathgan tile``).

        Raises
        ------
        StoreError
            A store is not complete or has no complete latents of ``run_id``.
        ConfigError
            No stores; a store without a manifest label (and no CSV); stores whose latents come
            from different generator/encoder checkpoints; a malformed tile-label CSV (every
            problem listed with its row number: missing columns, unknown slide, coordinates that
            match no patch, duplicates, empty labels).
        """
        return _table_from_stores(stores, run_id, labels_csv)

    def __len__(self) -> int:
        return len(self.latents)

    @property
    def w_dim(self) -> int:
        return int(self.latents.shape[1])

    @property
    def classes(self) -> list[str]:
        """Sorted class names."""
        return sorted(set(self.labels.tolist()))

    @property
    def y(self) -> np.ndarray:
        """int64 ``[N]`` class index of each row into :attr:`classes`."""
        return np.searchsorted(np.asarray(self.classes), self.labels).astype(np.int64)

    @property
    def slides(self) -> list[str]:
        """Sorted unique slide ids."""
        return sorted(set(self.slide_ids.tolist()))

    def slide_labels(self) -> dict[str, str] | None:
        """The label of each slide when every slide's patches share one label, else None."""
        slides, inverse = np.unique(self.slide_ids, return_inverse=True)
        pairs = np.unique(np.stack([inverse, np.searchsorted(np.asarray(self.classes), self.labels)]), axis=1)
        if pairs.shape[1] != len(slides):  # some slide pairs with two labels
            return None
        classes = np.asarray(self.classes)
        return {str(slides[i]): str(classes[c]) for i, c in pairs.T.tolist()}

    def subset(self, mask: np.ndarray) -> LatentTable:
        """The rows where ``mask`` (bool ``[N]``) is True."""
        m = np.asarray(mask, bool)
        return replace(self, latents=self.latents[m], labels=self.labels[m], slide_ids=self.slide_ids[m],
                       store_index=self.store_index[m], rows=self.rows[m], coords=self.coords[m],
                       splits=self.splits[m])

    def provenance(self) -> dict[str, Any]:
        """JSON-safe description of where the rows came from (only stores that contribute rows)."""
        used = set(self.store_index.tolist())
        return {
            "run_id": self.run_id,
            "stores": [str(p.resolve()) for k, p in enumerate(self.store_paths) if k in used],
            "slide_ids": self.slides,
            "n_patches": len(self),
            "class_counts": {c: int((self.labels == c).sum()) for c in self.classes},
            "label_source": self.label_source,
            "latents": self.latent_provenance,
            "pathgan_version": __version__,
        }


def _table_from_stores(stores: Sequence[str | Path], run_id: str, labels_csv: str | Path | None) -> LatentTable:
    from pathgan.store import PatchStore, check_run_id, latents_attrs

    check_run_id(run_id)
    paths = [Path(p) for p in stores]
    if not paths:
        raise ConfigError("no patch stores given")
    opened = [PatchStore(p) for p in paths]
    latents = [s.latents(run_id) for s in opened]  # StoreError when absent or incomplete
    provenance = _latent_provenance(paths, run_id, [latents_attrs(p, run_id) for p in paths])
    widths = {w.shape[1] for w in latents}
    if len(widths) != 1:
        raise ConfigError(f"latents/{run_id} have different widths across stores: {sorted(widths)}")

    if labels_csv is None:
        unlabelled = [str(s.path) for s in opened if not s.attrs.get("label")]
        if unlabelled:
            raise ConfigError(
                f"{len(unlabelled)} store(s) carry no slide label (manifest column 'label'): "
                f"{unlabelled[:_MAX_LISTED]}; tile them with a manifest that has labels, or give a "
                "tile-label CSV (--labels, columns slide_id,x,y,label)"
            )
        selected = [np.arange(len(s)) for s in opened]
        labels = [np.full(len(s), str(s.attrs["label"]), dtype=object) for s in opened]
        source: dict[str, Any] = {"kind": "manifest"}
    else:
        selected, labels = _tile_labels(Path(labels_csv), opened)
        source = {"kind": "tile_csv", "path": str(Path(labels_csv).resolve()),
                  "sha256": hashlib.sha256(Path(labels_csv).read_bytes()).hexdigest()}

    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("x", "label", "slide", "store", "row", "coords", "split")}
    for k, (s, w, sel, lab) in enumerate(zip(opened, latents, selected, labels, strict=True)):
        parts["x"].append(w[sel])
        parts["label"].append(np.asarray(lab, dtype=object))
        parts["slide"].append(np.full(len(sel), s.slide_id, dtype=object))
        parts["store"].append(np.full(len(sel), k, np.int64))
        parts["row"].append(sel.astype(np.int64))
        parts["coords"].append(s.coords[sel])
        parts["split"].append(np.full(len(sel), str(s.attrs.get("split") or ""), dtype=object))
    return LatentTable(
        latents=np.concatenate(parts["x"]).astype(np.float32),
        labels=np.concatenate(parts["label"]).astype(str),
        slide_ids=np.concatenate(parts["slide"]).astype(str),
        store_index=np.concatenate(parts["store"]),
        rows=np.concatenate(parts["row"]),
        coords=np.concatenate(parts["coords"]).reshape(-1, 2),
        splits=np.concatenate(parts["split"]).astype(str),
        store_paths=tuple(paths), run_id=run_id, label_source=source, latent_provenance=provenance,
    )


def _latent_provenance(paths: list[Path], run_id: str, attrs: list[dict[str, Any]]) -> dict[str, Any]:
    """The generator/encoder identity shared by every store's latents; ConfigError if they differ."""
    keys = ("checkpoint_sha256", "encoder_sha256", "refine_steps")
    first = {k: attrs[0].get(k) for k in keys}
    for p, a in zip(paths, attrs, strict=True):
        other = {k: a.get(k) for k in keys}
        if other != first:
            raise ConfigError(
                f"latents/{run_id} of {p} were made by another generator/encoder than those of {paths[0]} "
                f"({other} vs {first}); re-encode the stores with one run (`pathgan encode --run ...`)"
            )
    return {**first, "w_dim": attrs[0].get("w_dim")}


def _tile_labels(csv_path: Path, opened: list[Any]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Rows and labels selected per store by a tile-label CSV (read strictly by
    :func:`pathgan.labels.read_label_csv`); ConfigError listing every problem with its line."""
    # slide -> (x, y) -> [(store index, row)]: a slide tiled into several stores labels each of them.
    where: dict[str, dict[tuple[int, int], list[tuple[int, int]]]] = {}
    for k, s in enumerate(opened):
        lookup = where.setdefault(s.slide_id, {})
        for row, (x, y) in enumerate(s.coords.tolist()):
            lookup.setdefault((int(x), int(y)), []).append((k, row))

    def on_a_patch(sid: str, xy: tuple[int, int]) -> str | None:
        if sid not in where:
            return f"slide_id {sid!r} is not among the stores' slides {sorted(where)[:_MAX_LISTED]}"
        if xy not in where[sid]:
            return (f"no patch of slide {sid!r} has its level-0 top-left corner at (x, y) = {xy}; "
                    "x, y must equal a row of the store's coords")
        return None

    table = read_label_csv(csv_path, strict=True, tiles_only=True, check=on_a_patch,
                           what=f"tile-label CSV {csv_path}")
    chosen: list[list[int]] = [[] for _ in opened]
    chosen_labels: list[list[str]] = [[] for _ in opened]
    for sid, tiles in table.tile.items():
        for xy, label in tiles.items():
            for k, row in where[sid][xy]:
                chosen[k].append(row)
                chosen_labels[k].append(label)
    selected, labels = [], []
    for rows, labs in zip(chosen, chosen_labels, strict=True):
        order = np.argsort(np.asarray(rows, np.int64), kind="stable")
        selected.append(np.asarray(rows, np.int64)[order])
        labels.append(np.asarray(labs, dtype=object)[order])
    return selected, labels
