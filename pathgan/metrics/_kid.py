"""Kernel Inception Distance: unbiased MMD^2 with a cubic polynomial kernel over random subsets."""

from __future__ import annotations

import numpy as np

from pathgan.errors import ConfigError, ShapeError
from pathgan.metrics._frechet import _as_features

__all__ = ["kid", "mmd2_unbiased"]


def _poly_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (x . y / D + 1)^3 for all row pairs."""
    d = x.shape[1]
    return (x @ y.T / d + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 between two equal-size samples with k(x, y) = (x . y / D + 1)^3.

    ``MMD^2_u = sum_{i!=j} k(x_i,x_j)/(m(m-1)) + sum_{i!=j} k(y_i,y_j)/(m(m-1))
    - 2 sum_{i,j} k(x_i,y_j)/m^2`` (Gretton et al. 2012; Binkowski et al. 2018).

    Parameters
    ----------
    x, y : (m, D) arrays
        The two samples; m >= 2.

    Returns
    -------
    float
        The estimate; unbiased, so it can be negative when the distributions match.
    """
    x = _as_features(x, "x")
    y = _as_features(y, "y")
    if x.shape != y.shape:
        raise ShapeError(f"x and y must have the same shape, got {x.shape} and {y.shape}")
    m = x.shape[0]
    if m < 2:
        raise ShapeError(f"need at least 2 samples per set, got {m}")
    k_xx = _poly_kernel(x, x)
    k_yy = _poly_kernel(y, y)
    k_xy = _poly_kernel(x, y)
    same = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(same - 2.0 * k_xy.sum() / (m * m))


def kid(
    f_real: np.ndarray,
    f_fake: np.ndarray,
    *,
    n_subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel Inception Distance: mean and spread of MMD^2 over random subsets.

    Each subset draws ``m = min(subset_size, N, M)`` rows without replacement from each set,
    independently, using ``rng = np.random.default_rng(seed)`` in the order
    ``rng.choice(N, m, replace=False)`` then ``rng.choice(M, m, replace=False)`` per subset,
    and evaluates :func:`mmd2_unbiased`. Multiply by 1e3 for the usual "KID x 1e3" scale.

    Parameters
    ----------
    f_real : (N, D) array
        Features of the real images.
    f_fake : (M, D) array
        Features of the generated images (same D).
    n_subsets : int
        Number of random subsets.
    subset_size : int
        Rows per subset, clipped to min(N, M). When it equals N == M every subset is the whole
        data (in another order), so the standard deviation is 0.
    seed : int
        Seed of the subset sampling.

    Returns
    -------
    mean, std : float
        Mean and population standard deviation (ddof=0) of the subset estimates.
    """
    real = _as_features(f_real, "f_real")
    fake = _as_features(f_fake, "f_fake")
    if real.shape[1] != fake.shape[1]:
        raise ConfigError(f"feature dimensions differ: {real.shape[1]} vs {fake.shape[1]}")
    if n_subsets < 1:
        raise ConfigError(f"n_subsets must be >= 1, got {n_subsets}")
    m = min(int(subset_size), real.shape[0], fake.shape[0])
    if m < 2:
        raise ShapeError(f"KID needs at least 2 samples per set, got subset size {m}")
    rng = np.random.default_rng(seed)
    values = np.empty(n_subsets, dtype=np.float64)
    for i in range(n_subsets):
        idx_real = rng.choice(real.shape[0], m, replace=False)
        idx_fake = rng.choice(fake.shape[0], m, replace=False)
        values[i] = mmd2_unbiased(real[idx_real], fake[idx_fake])
    return float(values.mean()), float(values.std())
