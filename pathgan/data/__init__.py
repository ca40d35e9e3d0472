"""Torch datasets over patch stores: slide-level splits, filtering, batched reads, provenance."""

from pathgan.data._classes import ClassLabels, class_labels
from pathgan.data._dataset import PatchDataset, ResizeMode, StoreInfo
from pathgan.data._filters import PatchFilter
from pathgan.data._holdout import HoldoutPart, SpatialHoldout, checkerboard_regions, level0_mpp
from pathgan.data._loader import make_loader
from pathgan.data._provenance import data_fingerprint, describe
from pathgan.data._sampler import BatchKey, EpochBatchSampler
from pathgan.data._split import SPLITS, split_stores

__all__ = [
    "SPLITS",
    "BatchKey",
    "ClassLabels",
    "EpochBatchSampler",
    "HoldoutPart",
    "PatchDataset",
    "PatchFilter",
    "ResizeMode",
    "SpatialHoldout",
    "StoreInfo",
    "checkerboard_regions",
    "class_labels",
    "data_fingerprint",
    "describe",
    "level0_mpp",
    "make_loader",
    "split_stores",
]
