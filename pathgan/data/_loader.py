"""The DataLoader a training loop should use: whole batches per worker call."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader

from pathgan.data._dataset import PatchDataset
from pathgan.data._sampler import EpochBatchSampler

__all__ = ["make_loader"]


def _identity(batch: Any) -> Any:
    """Batches arrive ready from ``get_batch``; nothing to collate."""
    return batch


def make_loader(
    dataset: PatchDataset,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
    num_workers: int,
    drop_last: bool = True,
    pin_memory: bool = False,
    prefetch_factor: int | None = None,
    rank: int = 0,
    world: int = 1,
) -> DataLoader[Any]:
    """A DataLoader that yields ready batches from :meth:`PatchDataset.get_batch`.

    It uses ``batch_size=None`` with an :class:`EpochBatchSampler` as ``sampler``: each worker call
    receives a whole :class:`BatchKey` and reads it grouped by store, one slice read per run of
    consecutive patches, instead of B separate ``__getitem__`` calls. Each batch is a function of
    ``(dataset seed, epoch, indices)`` only, so it does not depend on ``num_workers``; workers are
    persistent because the epoch travels with the key.

    Each ``for batch in loader`` pass uses the sampler's next epoch (0, 1, ...); to resume, call
    ``loader.sampler.set_epoch(epoch)`` before iterating.

    Parameters
    ----------
    dataset : the patches.
    batch_size : images per batch.
    shuffle : seeded permutation per epoch (training) or ascending order (evaluation).
    seed : seed of the permutations (the dataset's own seed drives augmentations).
    num_workers : worker processes (0 = load in the calling process).
    drop_last : drop the final short batch (keeps batch shapes fixed for training).
    pin_memory : page-locked output for faster host-to-GPU copies.
    prefetch_factor : batches loaded ahead per worker (default 2 with workers).
    rank, world : this process's share of each global batch (see :class:`EpochBatchSampler`).

    Returns
    -------
    DataLoader yielding :meth:`PatchDataset.get_batch`'s ``dict(image=float32 [B, 3, H, W],
    slide=int64 [B], index=int64 [B], item=int64 [B], coords=int64 [B, 2], slide_id=list of B str)``
    (and ``label=int64 [B]`` with labels).

    Raises
    ------
    ConfigError
        ``batch_size < 1``, or fewer patches than ``batch_size`` with ``drop_last``.
    """
    sampler = EpochBatchSampler(len(dataset), batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last,
                                rank=rank, world=world)
    extra: dict[str, Any] = {}
    if num_workers > 0:
        extra["persistent_workers"] = True
        if prefetch_factor is not None:
            extra["prefetch_factor"] = prefetch_factor
    return DataLoader(
        dataset,  # type: ignore[arg-type]
        batch_size=None,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=_identity,
        # Its own generator: DataLoader otherwise draws a worker base seed from torch's global RNG
        # at every pass, so training results would depend on how often iteration restarted.
        generator=torch.Generator().manual_seed(seed),
        pin_memory=pin_memory,
        **extra,
    )
