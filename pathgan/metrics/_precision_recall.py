"""Improved precision and recall (Kynkäänniemi et al. 2019) from k-NN manifold estimates."""

from __future__ import annotations

import numpy as np

from pathgan.errors import ConfigError, ShapeError
from pathgan.metrics._frechet import _as_features

__all__ = ["precision_recall"]


def _sq_norms(a: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, a)


# Squared distances below this fraction of |a|^2 + |b|^2 are round-off of the expansion
# below and are set to 0, so identical rows are at distance exactly 0.
_ROUNDOFF = 1e-12


def _distances(a: np.ndarray, b: np.ndarray, a_sq: np.ndarray, b_sq: np.ndarray) -> np.ndarray:
    """Euclidean distances between the rows of a and b via |a|^2 + |b|^2 - 2 a.b."""
    scale = a_sq[:, None] + b_sq[None, :]
    d2 = scale - 2.0 * (a @ b.T)
    d2[d2 <= _ROUNDOFF * scale] = 0.0
    return np.sqrt(d2)


def _knn_radii(feats: np.ndarray, sq: np.ndarray, k: int, batch_size: int) -> np.ndarray:
    """Distance of each row to its k-th nearest other row (the row itself is the 0th)."""
    n = feats.shape[0]
    radii = np.empty(n, dtype=np.float64)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        dist = _distances(feats[start:stop], feats, sq[start:stop], sq)
        rows = np.arange(stop - start)
        dist[rows, rows + start] = 0.0  # exact zero on the diagonal despite round-off
        radii[start:stop] = np.partition(dist, k, axis=1)[:, k]
    return radii


def _coverage(
    manifold: np.ndarray,
    m_sq: np.ndarray,
    radii: np.ndarray,
    queries: np.ndarray,
    q_sq: np.ndarray,
    batch_size: int,
) -> float:
    """Fraction of query rows inside at least one ball (manifold_i, radii_i)."""
    inside = 0
    for start in range(0, queries.shape[0], batch_size):
        stop = min(start + batch_size, queries.shape[0])
        dist = _distances(queries[start:stop], manifold, q_sq[start:stop], m_sq)
        inside += int(np.count_nonzero((dist <= radii[None, :]).any(axis=1)))
    return inside / queries.shape[0]


def precision_recall(
    f_real: np.ndarray,
    f_fake: np.ndarray,
    *,
    k: int = 3,
    batch_size: int = 1024,
) -> tuple[float, float]:
    """Improved precision and recall of generated features against real ones.

    Each set's manifold is the union of balls centred on its samples, each with the radius to
    that sample's k-th nearest neighbour in the same set. Precision is the fraction of fake
    samples inside the real manifold (fidelity); recall is the fraction of real samples inside
    the fake manifold (diversity). A point exactly on a ball's surface counts as inside.

    Parameters
    ----------
    f_real : (N, D) array
        Real features; N > k.
    f_fake : (M, D) array
        Fake features; M > k.
    k : int
        Neighbour rank of the radius (3 in the paper).
    batch_size : int
        Rows of the distance matrix computed at once; memory is about
        ``8 * batch_size * max(N, M)`` bytes.

    Returns
    -------
    precision, recall : float
        Both in [0, 1].
    """
    real = _as_features(f_real, "f_real")
    fake = _as_features(f_fake, "f_fake")
    if real.shape[1] != fake.shape[1]:
        raise ShapeError(f"feature dimensions differ: {real.shape[1]} vs {fake.shape[1]}")
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}")
    if real.shape[0] <= k or fake.shape[0] <= k:
        raise ShapeError(
            f"need more than k={k} samples per set, got {real.shape[0]} real, {fake.shape[0]} fake"
        )
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    r_sq, f_sq = _sq_norms(real), _sq_norms(fake)
    r_radii = _knn_radii(real, r_sq, k, batch_size)
    f_radii = _knn_radii(fake, f_sq, k, batch_size)
    precision = _coverage(real, r_sq, r_radii, fake, f_sq, batch_size)
    recall = _coverage(fake, f_sq, f_radii, real, r_sq, batch_size)
    return precision, recall
