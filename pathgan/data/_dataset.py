"""A torch Dataset over one or more patch stores, with a batched read path."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import torch
import torch.utils.data

from pathgan.data._filters import PatchFilter, filter_store
from pathgan.data._holdout import SpatialHoldout, checkerboard_regions, level0_mpp
from pathgan.data._sampler import BatchKey
from pathgan.data._transforms import center_offset, dihedral, resize, to_float_nchw
from pathgan.errors import ConfigError
from pathgan.store import PatchStore

__all__ = ["PatchDataset", "ResizeMode", "StoreInfo"]

ResizeMode = Literal["crop", "resize"]
Transform = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True, kw_only=True)
class StoreInfo:
    """What a dataset remembers of one store (small, picklable; no open handles).

    ``image_mpp`` is the microns per pixel of the images the dataset returns: the store's MPP when
    cropping, ``mpp * patch_px / image_px`` when resizing.
    """

    path: Path
    slide_id: str
    patch_px: int
    mpp: float
    image_mpp: float
    n_patches: int
    n_kept: int
    attrs: dict[str, Any]


class PatchDataset(torch.utils.data.Dataset[dict[str, Any]]):
    """Patches of one or more stores as float32 images ``[3, image_px, image_px]`` in [0, 1], each
    with its slide, level-0 coordinates and (with ``labels``) class.

    ``dataset[i]`` is one sample; a plain ``torch.utils.data.DataLoader(dataset, batch_size=B)``
    collates samples into the same batch that :meth:`get_batch` reads in one go (and that
    :func:`~pathgan.data.make_loader` yields): ``image``, ``slide``, ``index``, ``item``, ``coords``,
    ``slide_id`` and ``label``.

    The index of kept patches is built at construction from the stores' small arrays
    (tissue fraction, QC scores) without reading pixels. Stores are opened lazily in each process
    and never pickled, so the dataset is cheap to send to DataLoader workers.

    Random choices (crop offset, dihedral transform) come from a NumPy Generator seeded with
    ``(seed, epoch, dataset index)``, and ``transform`` runs under a torch RNG seeded from the
    batch, so a batch is the same whatever the number of workers.

    Parameters
    ----------
    stores : store paths (or open stores, of which only the path is kept); ``slide`` in the
        output is the position in this list.
    image_px : side of the returned images (the model's input size).
    min_tissue_fraction, max_white_fraction, max_pen_fraction, min_blur : see :class:`PatchFilter`.
    resize_mode : ``crop`` takes an ``image_px`` crop (random when ``random_crop``, else centred);
        ``resize`` shrinks the whole patch with antialiased bilinear interpolation (this changes the
        MPP by ``patch_px / image_px``). A patch of exactly ``image_px`` is returned as stored.
    random_crop : False for evaluation (centred crops).
    dihedral : apply one of the 8 rotations/mirrors at random per sample.
    transform : applied to each batch ``[B, 3, H, W] -> [B, 3, H, W]`` after cropping; the place
        for stain (HED) jitter. It must be picklable for worker processes; it may draw from the
        global torch RNG, which is seeded per batch here (NumPy's global RNG is not).
    seed : seeds the augmentations.
    labels : optional class index of every patch, one int array [n_patches] per store (-1 =
        unlabelled: the patch is left out). Batches then carry ``label`` int64 [B].
    holdout : keep only the patches wholly inside one part (train or test squares) of a spatial
        checkerboard (:class:`SpatialHoldout`); ``None`` keeps every patch.

    Raises
    ------
    StoreError
        A path is not a complete patch store (from :class:`PatchStore`, naming the path).
    ConfigError
        A store's ``patch_px`` is smaller than ``image_px``; stores differ in image MPP; every patch
        was filtered out (the message counts the removals per filter); invalid settings.
    """

    def __init__(
        self,
        stores: Sequence[PatchStore | str | Path],
        *,
        image_px: int,
        min_tissue_fraction: float | None = 0.5,
        max_white_fraction: float | None = 0.3,
        max_pen_fraction: float | None = None,
        min_blur: float | None = None,
        resize_mode: ResizeMode = "crop",
        random_crop: bool = True,
        dihedral: bool = True,
        transform: Transform | None = None,
        seed: int = 0,
        labels: Sequence[np.ndarray] | None = None,
        holdout: SpatialHoldout | None = None,
    ) -> None:
        if not stores:
            raise ConfigError("PatchDataset needs at least one store")
        if int(image_px) < 1:
            raise ConfigError(f"image_px={image_px!r} is not allowed; expected >= 1")
        if resize_mode not in get_args(ResizeMode):
            raise ConfigError(f"resize_mode={resize_mode!r} is not allowed; expected one of {get_args(ResizeMode)}")
        if int(seed) < 0:
            raise ConfigError(f"seed={seed!r} is not allowed; expected >= 0")
        if labels is not None and len(labels) != len(stores):
            raise ConfigError(f"labels: {len(labels)} arrays for {len(stores)} stores; expected one per store")
        if transform is not None and not callable(transform):
            raise ConfigError(f"transform must be callable, got {type(transform).__name__}")
        self.image_px = int(image_px)
        self.filters = PatchFilter(
            min_tissue_fraction=min_tissue_fraction,
            max_white_fraction=max_white_fraction,
            max_pen_fraction=max_pen_fraction,
            min_blur=min_blur,
        )
        self.resize_mode: ResizeMode = resize_mode
        self.random_crop = bool(random_crop)
        self.dihedral = bool(dihedral)
        self.transform = transform
        self.holdout = holdout
        self.seed = int(seed)
        self.epoch = 0

        opened = [s if isinstance(s, PatchStore) else PatchStore(s) for s in stores]
        infos: list[StoreInfo] = []
        slide_idx: list[np.ndarray] = []
        patch_idx: list[np.ndarray] = []
        coord_idx: list[np.ndarray] = []
        label_idx: list[np.ndarray] = []
        removed_total: dict[str, int] = {}
        for k, store in enumerate(opened):
            if store.patch_px < self.image_px:
                raise ConfigError(
                    f"store {store.path} (slide {store.slide_id!r}) has patch_px={store.patch_px}, smaller than "
                    f"the model's image_px={self.image_px}; re-tile with patch_px >= {self.image_px} "
                    "(patches are never upsampled)"
                )
            keep, removed = filter_store(store, self.filters)
            if holdout is not None:
                mx, my = level0_mpp(store.attrs)
                region = checkerboard_regions(store.coords[keep], store.attrs["footprint0"],
                                              (holdout.block_um / mx, holdout.block_um / my))
                n_before = len(keep)
                keep = keep[region == holdout.code]
                removed[f"outside {holdout.part} squares of {holdout.block_um:g} um"] = n_before - len(keep)
            if labels is not None:
                lab = np.asarray(labels[k]).reshape(-1)
                if len(lab) != len(store):
                    raise ConfigError(f"labels[{k}]: {len(lab)} values for the {len(store)} patches of {store.path}")
                n_before = len(keep)
                keep = keep[lab[keep] >= 0]
                if n_before > len(keep):
                    removed["unlabelled"] = removed.get("unlabelled", 0) + n_before - len(keep)
                label_idx.append(lab[keep].astype(np.int64))
            for reason, count in removed.items():
                removed_total[reason] = removed_total.get(reason, 0) + count
            scale = store.patch_px / self.image_px if resize_mode == "resize" else 1.0
            infos.append(StoreInfo(path=store.path, slide_id=store.slide_id, patch_px=store.patch_px, mpp=store.mpp,
                                   image_mpp=store.mpp * scale, n_patches=len(store), n_kept=len(keep),
                                   attrs=dict(store.attrs)))
            slide_idx.append(np.full(len(keep), k, np.int32))
            patch_idx.append(keep.astype(np.int32))
            coord_idx.append(np.asarray(store.coords, np.int64).reshape(-1, 2)[keep])
        _check_same_mpp(infos)
        self.stores: tuple[StoreInfo, ...] = tuple(infos)
        self._slide = np.concatenate(slide_idx)  # int32 [M]: store of each dataset item
        self._patch = np.concatenate(patch_idx)  # int32 [M]: patch index inside that store
        self._coords = np.concatenate(coord_idx).reshape(-1, 2)  # int64 [M, 2]: level-0 (x, y) of each item
        self._label = np.concatenate(label_idx) if labels is not None else None  # int64 [M] or None
        if len(self._slide) == 0:
            n_all = sum(i.n_patches for i in infos)
            detail = ", ".join(f"{c} by {r}" for r, c in removed_total.items()) or "no filter applied"
            raise ConfigError(
                f"all {n_all} patch(es) of {len(infos)} store(s) were filtered out ({detail}); "
                "relax the thresholds or check the stores"
            )
        # Open handles of this process only: DataLoader workers (forked or spawned) reopen their own.
        self._open: list[PatchStore] | None = opened
        self._pid = os.getpid()

    # -- pickling: paths and index arrays only ------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_open"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def _store(self, k: int) -> PatchStore:
        if self._open is None or self._pid != os.getpid():
            self._open = [PatchStore(info.path) for info in self.stores]
            self._pid = os.getpid()
        return self._open[k]

    # -- indexing -----------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._slide)

    def __repr__(self) -> str:
        return (f"PatchDataset(n={len(self)}, stores={len(self.stores)}, image_px={self.image_px}, "
                f"resize_mode={self.resize_mode!r}, dihedral={self.dihedral})")

    def set_epoch(self, epoch: int) -> None:
        """Epoch used by ``get_batch``/``__getitem__`` when a key does not carry one."""
        self.epoch = int(epoch)

    def locate(self, indices: np.ndarray | Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """``(store, patch)`` int64 [B] of dataset ``indices``."""
        idx = self._check(indices)
        return self._slide[idx].astype(np.int64), self._patch[idx].astype(np.int64)

    def __getitem__(self, key: int | Sequence[int] | np.ndarray | BatchKey) -> dict[str, Any]:
        """One sample (int key) or a batch (a sequence of indices or a :class:`BatchKey`).

        Returns
        -------
        For an int, one sample, the keys of :meth:`get_batch` without the batch dimension:
        ``image`` float32 [3, H, W], ``slide`` int (store position), ``index`` int (patch in its
        store), ``item`` int, ``coords`` int64 [2] (level-0 x, y), ``slide_id`` str and, with
        ``labels``, ``label`` int. ``DataLoader``'s default collation turns B of them into
        :meth:`get_batch`'s batch. Otherwise as :meth:`get_batch`.
        """
        if isinstance(key, BatchKey):
            return self.get_batch(key.indices, epoch=key.epoch)
        if isinstance(key, int | np.integer):
            b = self.get_batch([int(key)])
            numbers: dict[str, Any] = {k: int(b[k][0]) for k in ("slide", "index", "item", "label") if k in b}
            return {"image": b["image"][0], **numbers, "coords": b["coords"][0], "slide_id": b["slide_id"][0]}
        return self.get_batch(key)

    def get_batch(self, indices: Sequence[int] | np.ndarray, *, epoch: int | None = None) -> dict[str, Any]:
        """Read and prepare a batch with one ``PatchStore.read`` per store.

        Parameters
        ----------
        indices : B dataset indices (repeats allowed).
        epoch : seeds the augmentations with the dataset seed; default :attr:`epoch`.

        Returns
        -------
        ``image`` float32 [B, 3, image_px, image_px] in [0, 1]; ``slide`` int64 [B] (store
        position); ``index`` int64 [B] (patch index in its store); ``item`` int64 [B] (the
        dataset indices); ``coords`` int64 [B, 2] (level-0 x, y of each patch's top-left corner,
        as in the store); ``slide_id`` list of B str; with ``labels``, ``label`` int64 [B] (class
        index).
        """
        idx = self._check(indices)
        epoch = self.epoch if epoch is None else int(epoch)
        slide = self._slide[idx].astype(np.int64)
        patch = self._patch[idx].astype(np.int64)
        px = self.image_px
        out = torch.empty((len(idx), 3, px, px), dtype=torch.float32)
        for k in np.unique(slide):
            sel = np.flatnonzero(slide == k)
            raw = self._store(int(k)).read(patch[sel])  # uint8 [n, P, P, 3], one batched read
            images = self._prepare(raw, idx[sel], epoch)
            if len(sel) == len(idx):
                out = images
            else:
                out[torch.from_numpy(sel)] = images
        if self.transform is not None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(_batch_seed(self.seed, epoch, idx))
                out = self.transform(out)
        batch: dict[str, Any] = {
            "image": out, "slide": torch.from_numpy(slide), "index": torch.from_numpy(patch),
            "item": torch.from_numpy(idx), "coords": torch.from_numpy(self._coords[idx]),
            "slide_id": [self.stores[k].slide_id for k in slide],
        }
        if self._label is not None:
            batch["label"] = torch.from_numpy(self._label[idx])
        return batch

    def _check(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"dataset index out of range 0..{len(self) - 1}: {idx[(idx < 0) | (idx >= len(self))][:5]}")
        return idx

    def _prepare(self, raw: np.ndarray, items: np.ndarray, epoch: int) -> torch.Tensor:
        """uint8 (n, P, P, 3) -> float32 [n, 3, image_px, image_px]: crop/resize and dihedral."""
        patch_px, px = raw.shape[1], self.image_px
        crop = self.resize_mode == "crop" and patch_px > px
        span = patch_px - px + 1
        if not (self.dihedral or (crop and self.random_crop)):
            if crop:
                o = center_offset(patch_px, px)
                raw = raw[:, o : o + px, o : o + px]
        else:
            samples = []
            for patch, item in zip(raw, items, strict=True):
                rng = np.random.default_rng((self.seed, epoch, int(item)))
                k = int(rng.integers(8))  # always drawn, so crops do not depend on `dihedral`
                oy, ox = (int(v) for v in rng.integers(0, span, size=2)) if crop else (0, 0)
                if crop:
                    if not self.random_crop:
                        oy = ox = center_offset(patch_px, px)
                    patch = patch[oy : oy + px, ox : ox + px]
                samples.append(dihedral(patch, k) if self.dihedral else patch)
            raw = np.stack(samples)
        images = to_float_nchw(raw)
        return resize(images, px) if self.resize_mode == "resize" else images


def _batch_seed(seed: int, epoch: int, items: np.ndarray) -> int:
    """A 63-bit torch seed from (seed, epoch, the batch's dataset indices)."""
    ss = np.random.SeedSequence([seed, epoch, *(int(i) for i in items[:4096])], pool_size=4)
    return int(ss.generate_state(1, np.uint64)[0] >> np.uint64(1))


def _check_same_mpp(infos: Sequence[StoreInfo]) -> None:
    """Refuse stores whose returned images would differ in microns per pixel."""
    ref = infos[0].image_mpp
    if any(not math.isclose(i.image_mpp, ref, rel_tol=1e-6) for i in infos):
        listing = ", ".join(f"{i.path.name} ({i.slide_id}): {i.image_mpp:g}" for i in infos)
        raise ConfigError(
            f"stores give images at different resolutions (um/px): {listing}; "
            "a dataset must have one MPP: tile all slides at the same mpp (and patch_px when resizing)"
        )
