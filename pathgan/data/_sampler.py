"""Batches of dataset indices that carry their epoch, so workers need no shared state."""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import torch.utils.data

from pathgan.errors import ConfigError

__all__ = ["BatchKey", "EpochBatchSampler"]


class BatchKey(NamedTuple):
    """What :class:`EpochBatchSampler` yields and ``PatchDataset.__getitem__`` accepts.

    Attributes
    ----------
    epoch : seeds the per-sample augmentations together with the dataset's seed.
    indices : int64 [B] dataset indices.
    """

    epoch: int
    indices: np.ndarray


class EpochBatchSampler(torch.utils.data.Sampler[BatchKey]):
    """Yield :class:`BatchKey` batches; a seeded permutation per epoch when ``shuffle``.

    The order depends only on ``(seed, epoch)``. Each ``iter()`` uses the current epoch and then
    advances it, so ``for epoch ...: for batch in loader`` sees a new order every pass;
    :meth:`set_epoch` picks the epoch of the next pass explicitly (e.g. when resuming).

    Parameters
    ----------
    n : dataset length.
    batch_size : indices per batch.
    shuffle : permute per epoch (False: ascending order, for evaluation).
    seed : seed of the permutations.
    drop_last : drop the final short batch.
    rank, world : with several training processes, each takes ``batch[rank::world]`` of the same
        global batch (so ``batch_size`` is the global batch).
    """

    def __init__(self, n: int, batch_size: int, *, shuffle: bool, seed: int, drop_last: bool,
                 rank: int = 0, world: int = 1) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size={batch_size!r} is not allowed; expected >= 1")
        if n < 1 or (drop_last and n < batch_size):
            raise ConfigError(
                f"the dataset has {n} patch(es), fewer than batch_size={batch_size} with drop_last={drop_last}"
            )
        self.n, self.batch_size, self.shuffle, self.seed, self.drop_last = n, batch_size, shuffle, seed, drop_last
        self.rank, self.world = rank, world
        self._epoch = 0
        self._start = 0

    @property
    def epoch(self) -> int:
        """The epoch the next ``iter()`` will use."""
        return self._epoch

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """The epoch of the next pass, and how many of its batches to skip (resuming mid-epoch)."""
        self._epoch, self._start = int(epoch), int(start)

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    def __iter__(self) -> Iterator[BatchKey]:
        epoch, start = self._epoch, self._start
        self._epoch, self._start = epoch + 1, 0
        order = (
            np.random.default_rng([self.seed, epoch]).permutation(self.n)
            if self.shuffle
            else np.arange(self.n, dtype=np.int64)
        )
        for b in range(start, len(self)):
            yield BatchKey(epoch, order[b * self.batch_size : (b + 1) * self.batch_size][self.rank :: self.world])
