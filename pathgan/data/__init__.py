"""Torch datasets over patch stores: slide-level splits, filtering, batched reads, provenance."""

from pathgan.data._dataset import PatchDataset, ResizeMode, StoreInfo
from pathgan.data._filters import PatchFilter
from pathgan.data._loader import make_loader
from pathgan.data._provenance import data_fingerprint, describe
from pathgan.data._sampler import BatchKey, EpochBatchSampler
from pathgan.data._split import SPLITS, split_stores

__all__ = [
    "SPLITS",
    "BatchKey",
    "EpochBatchSampler",
    "PatchDataset",
    "PatchFilter",
    "ResizeMode",
    "StoreInfo",
    "data_fingerprint",
    "describe",
    "make_loader",
    "split_stores",
]
