"""All sample-quality metrics from two feature matrices in one call."""

from __future__ import annotations

import numpy as np

from pathgan.errors import ShapeError
from pathgan.metrics._frechet import _as_features, fid_from_features
from pathgan.metrics._kid import kid
from pathgan.metrics._precision_recall import precision_recall

__all__ = ["evaluate_features"]


def evaluate_features(
    real_feats: np.ndarray,
    fake_feats: np.ndarray,
    *,
    seed: int = 0,
    k: int = 3,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
) -> dict[str, float | int]:
    """FID, KID, precision/recall, and the real-vs-real FID floor.

    FID is strongly biased upwards when N is small compared with the feature dimension
    (2,048 for Inception): two random halves of the *same* real tiles can score FID ~40-60 at
    a few hundred samples. So FID is reported together with ``fid_floor``, the FID between two
    disjoint random halves of the real features (``n_floor`` rows each), and ``fid_matched``,
    the FID between one of those halves and ``n_floor`` random fake rows, which is directly
    comparable with the floor. A ``fid_matched`` below the floor against the training tiles
    suggests memorisation. KID is unbiased and preferable at small N; report it with its std.

    Parameters
    ----------
    real_feats : (N, D) array
        Features of real images; N >= 4 for the floor.
    fake_feats : (M, D) array
        Features of generated images; M > k.
    seed : int
        Seeds the real split, the fake subset and the KID subsets.
    k : int
        Neighbour rank for precision/recall.
    kid_subsets, kid_subset_size : int
        Passed to :func:`kid`.

    Returns
    -------
    dict
        ``fid``, ``kid_mean``, ``kid_std``, ``precision``, ``recall``, ``fid_floor``,
        ``fid_matched`` (floats) and ``n_real``, ``n_fake``, ``n_floor`` (ints).
    """
    real = _as_features(real_feats, "real_feats")
    fake = _as_features(fake_feats, "fake_feats")
    if real.shape[1] != fake.shape[1]:
        raise ShapeError(f"feature dimensions differ: {real.shape[1]} vs {fake.shape[1]}")
    n_real, n_fake = real.shape[0], fake.shape[0]
    n_floor = min(n_real // 2, n_fake)
    if n_floor < 2:
        raise ShapeError(
            f"need at least 4 real and 2 fake feature vectors, got {n_real} and {n_fake}"
        )
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n_real)
    half_a, half_b = real[perm[:n_floor]], real[perm[n_floor : 2 * n_floor]]
    fake_sub = fake[rng.choice(n_fake, n_floor, replace=False)]
    kid_mean, kid_std = kid(
        real, fake, n_subsets=kid_subsets, subset_size=kid_subset_size, seed=seed
    )
    precision, recall = precision_recall(real, fake, k=k)
    return {
        "fid": fid_from_features(real, fake),
        "kid_mean": kid_mean,
        "kid_std": kid_std,
        "precision": precision,
        "recall": recall,
        "n_real": n_real,
        "n_fake": n_fake,
        "fid_floor": fid_from_features(half_a, half_b),
        "fid_matched": fid_from_features(half_a, fake_sub),
        "n_floor": n_floor,
    }
