"""NumPy kernels: optical density, stain-matrix estimation, concentrations and CIELAB.

Conventions, shared with the torch kernels of :mod:`pathgan.stain._torch_ops` (which mirror these
step by step, so both backends give the same numbers up to float rounding):

* Pixels are planar here: one image is ``(3, P)`` (channels R, G, B by ``P = H * W`` pixels), so
  every per-channel operation runs over contiguous memory.
* Optical density per channel ``od = ln(256 / (rgb + 1))`` for ``rgb`` in 0..255: white (255) is 0,
  black is ln 256 ~ 5.5 (finite, no clipping needed). Its inverse is ``rgb = 256 exp(-od) - 1``.
* Tissue pixels have optical density at least ``beta`` (Macenko et al. 2009; 0.15) in all three
  channels, measured from a light level of 240 as in their reference code and torchstain: every
  channel at most 205 for beta = 0.15 (:func:`tissue_level`).
* Statistics (stain directions, percentiles) use an even, deterministic subsample of the tissue
  pixels: every ``ceil(n_tissue / n_samples)``-th in raster order (:func:`sample_index`), so an
  image is normalised the same in any batch and on either backend.
* A stain matrix is ``(3, 2)``: rows R, G, B; column 0 haematoxylin (H), column 1 eosin (E); each
  column has unit norm and positive entries, and ``od ~ S @ c`` for concentrations ``c (2, P)``.
* H is the column with the larger red optical density. Haematoxylin is blue-purple and absorbs red
  strongly (Ruifrok and Johnston: R, G, B = 0.65, 0.70, 0.29), eosin is pink and absorbs mostly
  green (0.07, 0.99, 0.11); the gap is wide on every H&E image we have seen.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "DEFAULT_MAX_CONCENTRATIONS",
    "DEFAULT_STAIN_MATRIX",
    "OD_WHITE",
    "TISSUE_LIGHT",
    "finish_pair",
    "lab_to_rgb",
    "macenko_stains",
    "nnls2",
    "od_to_rgb",
    "optical_density",
    "pair_angle_deg",
    "rgb_to_lab",
    "sample_index",
    "tissue_level",
    "tissue_mask",
    "vahadane_stains",
]

OD_WHITE = 256.0
# beta is measured from this light level, as in Macenko et al.'s reference code and torchstain
# (Io = 240): glass is rarely pure white, and pale pixels just under it carry noisy directions.
TISSUE_LIGHT = 240.0
_OD_LUT = (np.log(OD_WHITE) - np.log(np.arange(1, 257, dtype=np.float64))).astype(np.float32)
_FLOOR = 1e-6  # smallest stain-vector entry: keeps every optical density strictly positive

# The reference H&E of Macenko et al.'s MATLAB code (HERef, maxCRef), also torchstain's default:
# the fallback of an estimate with too little tissue, and Vahadane's starting dictionary.
DEFAULT_STAIN_MATRIX = np.array([[0.5626, 0.2159], [0.7201, 0.8012], [0.4062, 0.5581]])
DEFAULT_MAX_CONCENTRATIONS = np.array([1.9705, 1.0308])


def optical_density(pixels: np.ndarray) -> np.ndarray:
    """``(P, 3)`` uint8 -> ``(3, P)`` float32 optical density (a 256-entry table, no per-pixel logs)."""
    return np.take(_OD_LUT, pixels.T)


def od_to_rgb(od: np.ndarray) -> np.ndarray:
    """Inverse of :func:`optical_density`: ``(P, 3)`` (may be a transposed view) -> ``(P, 3)`` uint8,
    rounded and clipped."""
    rgb = np.exp(-od, order="C")
    rgb *= OD_WHITE
    rgb -= 1.0
    return np.clip(np.rint(rgb, out=rgb), 0, 255, out=rgb).astype(np.uint8)


def tissue_level(beta: float) -> int:
    """Largest uint8 value of a tissue pixel: optical density at least ``beta`` above a light level
    of :data:`TISSUE_LIGHT` (205 for beta = 0.15)."""
    return math.floor(TISSUE_LIGHT * math.exp(-beta) - 1.0 + 1e-9)


def tissue_mask(pixels: np.ndarray, beta: float) -> np.ndarray:
    """``(P, 3)`` uint8 -> ``(P,)`` bool: tissue, every channel at most :func:`tissue_level` (compared
    on uint8, no logs)."""
    brightest = np.maximum(np.maximum(pixels[:, 0], pixels[:, 1]), pixels[:, 2])
    return brightest <= tissue_level(beta)


def sample_index(mask: np.ndarray, n_samples: int) -> np.ndarray:
    """Positions of every ``ceil(n / n_samples)``-th True of ``mask`` (at most ``n_samples``)."""
    where = np.flatnonzero(mask)
    return where[:: max(1, -(-len(where) // n_samples))]


def nnls2(od: np.ndarray, stains: np.ndarray, lam: float = 0.0) -> np.ndarray:
    """Non-negative concentrations of two stains, exactly, for every pixel at once.

    Minimises ``0.5 |od - S c|^2 + lam * sum(c)`` over ``c >= 0`` (``lam = 0``: non-negative least
    squares; ``lam > 0``: the non-negative lasso of Vahadane's dictionary learning). With two
    unknowns and non-negative stain vectors (so ``S1 . S2 >= 0``) the KKT conditions give it in
    closed form from the unconstrained solution ``u = G^-1 b`` (``G = S^T S``, ``b = S^T od - lam``):
    ``c = u`` when ``u >= 0``; H alone, ``c = (max(b1, 0) / G11, 0)``, when ``u2 < 0``; E alone when
    ``u1 < 0`` (both negative implies ``b <= 0`` and ``c = 0``).

    Parameters
    ----------
    od : ``(3, P)`` float32 optical densities.
    stains : ``(3, 2)`` stain matrix with non-negative entries.
    lam : L1 weight (>= 0).

    Returns
    -------
    ``(2, P)`` float32 concentrations (H, E).
    """
    s = np.asarray(stains, dtype=np.float64)
    g = s.T @ s
    det = g[0, 0] * g[1, 1] - g[0, 1] ** 2
    # Parallel stains: u = (b1 / G11, 0), which the rule below turns into "H alone".
    g_inv = np.diag([1.0 / g[0, 0], 0.0]) if det <= 1e-9 * g[0, 0] * g[1, 1] else np.linalg.inv(g)
    # One product gives b (rows 0-1) and u (rows 2-3).
    out = np.concatenate([s.T, g_inv @ s.T]).astype(np.float32) @ od
    if lam:
        out[:2] -= np.float32(lam)
        out[2:] -= (g_inv @ np.full(2, lam)).astype(np.float32)[:, None]
    b1, b2, u1, u2 = out
    h_alone, e_alone = u2 < 0, u1 < 0
    c = np.maximum(out[2:], 0.0)
    c[0] = np.where(h_alone, np.maximum(b1, 0.0) / np.float32(g[0, 0]), c[0])
    c[1] = np.where(e_alone, np.maximum(b2, 0.0) / np.float32(g[1, 1]), c[1])
    return c


def finish_pair(v1: np.ndarray, v2: np.ndarray) -> np.ndarray:
    """Two stain directions -> a ``(3, 2)`` stain matrix: entries floored at 1e-6, unit columns, H first."""
    s = np.maximum(np.stack([v1, v2], axis=1).astype(np.float64), _FLOOR)
    s /= np.linalg.norm(s, axis=0, keepdims=True)
    return s if s[0, 0] >= s[0, 1] else s[:, ::-1].copy()


def pair_angle_deg(stains: np.ndarray) -> float:
    """Angle between the two columns of a ``(3, 2)`` unit stain matrix, in degrees."""
    return float(np.degrees(np.arccos(np.clip(stains[:, 0] @ stains[:, 1], -1.0, 1.0))))


def macenko_stains(tissue_od: np.ndarray, alpha: float) -> np.ndarray:
    """Macenko et al. (2009) stain matrix from the ``(3, n)`` optical densities of tissue pixels.

    The tissue optical densities span a plane: its basis is the top two eigenvectors of their
    second-moment matrix (uncentred, as Macenko's SVD: Beer-Lambert mixing is linear, so the plane
    passes through the origin). Both are turned towards positive density; the first then has
    positive entries (Perron-Frobenius), so every tissue pixel projects on it positively and its
    angle ``phi = atan(p2 / p1)`` in the plane lies in (-90, 90) degrees and never wraps. The stains
    are the directions at the ``alpha`` and ``100 - alpha`` percentiles of ``phi`` (taken on the
    monotone ``p2 / p1``: no per-pixel arctangent).
    """
    moments = (tissue_od @ tissue_od.T).astype(np.float64) / tissue_od.shape[1]
    _, vecs = np.linalg.eigh(moments)
    e = vecs[:, [2, 1]]  # largest, second largest eigenvalue
    e *= np.where(e.sum(axis=0) < 0, -1.0, 1.0)
    proj = e.T.astype(np.float32) @ tissue_od  # [2, n]
    ratio = proj[1] / np.maximum(proj[0], np.float32(1e-12))
    lo, hi = np.arctan(np.percentile(ratio, [alpha, 100.0 - alpha]))
    return finish_pair(e @ np.array([np.cos(lo), np.sin(lo)]), e @ np.array([np.cos(hi), np.sin(hi)]))


def vahadane_stains(tissue_od: np.ndarray, *, lam: float, n_samples: int, max_iter: int,
                    tol: float) -> np.ndarray:
    """Vahadane et al. (2016) sparse non-negative stain matrix from ``(3, n)`` tissue optical densities.

    Minimises ``0.5 |V - W C|^2 + lam |C|_1`` over ``C >= 0`` and ``W >= 0`` with unit columns, on
    every ``ceil(n / n_samples)``-th pixel ``V``. Alternates the exact two-stain non-negative lasso
    for ``C`` (:func:`nnls2`) with one HALS step per stain for ``W`` (projected onto the
    non-negative unit sphere), from the reference H&E, until no entry of ``W`` moves by more than
    ``tol`` or ``max_iter`` rounds have run.
    """
    v = tissue_od[:, :: max(1, -(-tissue_od.shape[1] // n_samples))]
    w = DEFAULT_STAIN_MATRIX.astype(np.float32)
    for _ in range(max_iter):
        c = nnls2(v, w, lam)
        q = c @ c.T  # [2, 2]
        a = v @ c.T  # [3, 2]
        new = w.copy()
        for k in (0, 1):
            j = 1 - k
            if q[k, k] > 1e-12:
                col = np.maximum(a[:, k] - new[:, j] * q[j, k], 0.0) / q[k, k]
                norm = float(np.linalg.norm(col))
                if norm > 0:
                    new[:, k] = col / norm
        moved = float(np.abs(new - w).max())
        w = new
        if moved < tol:
            break
    return finish_pair(w[:, 0], w[:, 1])


# CIELAB as skimage.color.rgb2lab / lab2rgb (sRGB, D65, 2 degree observer), in float32 with a
# lookup table for the sRGB decoding of uint8: several times faster than skimage's float64 path.
_XYZ_FROM_RGB = np.array([[0.412453, 0.357580, 0.180423],
                          [0.212671, 0.715160, 0.072169],
                          [0.019334, 0.119193, 0.950227]])
_WHITE_D65 = np.array([0.95047, 1.0, 1.08883])
_LEVELS = np.arange(256, dtype=np.float64) / 255.0
_LINEAR_LUT = np.where(_LEVELS > 0.04045, ((_LEVELS + 0.055) / 1.055) ** 2.4, _LEVELS / 12.92).astype(np.float32)
XYZN_FROM_LINEAR = _XYZ_FROM_RGB / _WHITE_D65[:, None]  # column vector: xyz / white = this @ rgb
LINEAR_FROM_XYZN = np.linalg.inv(_XYZ_FROM_RGB) * _WHITE_D65[None, :]


def rgb_to_lab(pixels: np.ndarray) -> np.ndarray:
    """``(P, 3)`` uint8 sRGB -> ``(3, P)`` float32 CIELAB (L in 0-100), as ``skimage.color.rgb2lab``."""
    xyz = XYZN_FROM_LINEAR.astype(np.float32) @ _LINEAR_LUT[pixels.T]
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + np.float32(16.0 / 116.0))
    return np.stack([116.0 * f[1] - 16.0, 500.0 * (f[0] - f[1]), 200.0 * (f[1] - f[2])])


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """``(3, P)`` float32 CIELAB -> ``(P, 3)`` uint8 sRGB, as ``skimage.color.lab2rgb`` (negative Z clipped)."""
    fy = (lab[0] + 16.0) / 116.0
    f = np.stack([lab[1] / 500.0 + fy, fy, np.maximum(fy - lab[2] / 200.0, 0.0)])
    xyz = np.where(f > 0.2068966, f * f * f, (f - np.float32(16.0 / 116.0)) / np.float32(7.787))
    lin = np.maximum(xyz.T @ LINEAR_FROM_XYZN.T.astype(np.float32), 0.0)  # (P, 3), C order
    srgb = np.where(lin > 0.0031308, 1.055 * np.power(lin, np.float32(1.0 / 2.4)) - 0.055, 12.92 * lin)
    return np.clip(np.rint(srgb * 255.0), 0, 255).astype(np.uint8)
