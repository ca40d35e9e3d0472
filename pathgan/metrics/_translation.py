"""How well a stain/site translation A -> B worked: colour statistics and structure preservation.

Pure functions of uint8 image batches ``(N, H, W, 3)``; :func:`translation_metrics` gathers them.

Stain statistics (lower = closer to domain B), each reported *before* (A vs B), *after*
(translated A vs B) and as a *floor* (two halves of B, what "indistinguishable" looks like):

* ``hist_w1``: 1-D Wasserstein-1 distance between the per-channel RGB intensity distributions of
  the tissue pixels, averaged over R, G, B, in intensity units of [0, 1] (a uniform shift of
  every pixel's red value by ``d`` grey levels gives ``d / 255 / 3``).
* ``hed_mean``: Euclidean distance between the mean haematoxylin and eosin optical densities of
  the tissue pixels (colour deconvolution, Ruifrok & Johnston 2001, ``skimage.color.rgb2hed``),
  in rgb2hed units.

* ``macenko_angle``: mean angle (degrees) between the haematoxylin stain vectors and between the
  eosin stain vectors of the two sets, each set's stain matrix estimated by Macenko et al. (2009)
  on its pooled pixels (:class:`pathgan.stain.Macenko`); ``None`` when a set has too little
  tissue or no two separable stains (the reason is given in ``macenko_note``).

"Tissue pixels" exclude near-white pixels (all channels > 215, the stores' white rule): both
domains share the glass background, which would otherwise dilute every difference.

Structure preservation: ``ssim_h`` is the mean SSIM (Wang et al. 2004) between the haematoxylin
channel of each input and of its translation; nuclei are what must not move. It is reported with
the identity baseline (1 by definition, computed as a check) and a *shuffled* baseline: SSIM
between unrelated inputs (a derangement), what an output that ignored its input would score.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pathgan.errors import ShapeError

__all__ = [
    "WHITE_LEVEL",
    "haematoxylin",
    "hed_means",
    "histogram_w1",
    "macenko_stain_matrix",
    "rgb_histograms",
    "ssim_pairs",
    "stain_angles",
    "tissue_pixels",
    "translation_metrics",
]

WHITE_LEVEL = 215  # the stores' white rule (pathgan.store.WHITE_LEVEL), repeated: metrics do no store I/O
_CHUNK = 32  # images per colour-deconvolution call (bounds the float64 intermediates)


def _check_batch(name: str, images: np.ndarray, min_n: int = 1) -> np.ndarray:
    arr = np.asarray(images)
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3 or len(arr) < min_n:
        raise ShapeError(f"{name}: expected uint8 (N >= {min_n}, H, W, 3), got {arr.dtype} {list(arr.shape)}")
    return arr


def tissue_pixels(images: np.ndarray, white_level: int = WHITE_LEVEL) -> np.ndarray:
    """uint8 (M, 3): the pixels of ``images`` (N, H, W, 3) not brighter than ``white_level`` in
    every channel; all pixels when none is (a blank set still has a colour distribution)."""
    px = _check_batch("images", images).reshape(-1, 3)
    keep = ~(px > white_level).all(axis=1)
    return px[keep] if keep.any() else px


def rgb_histograms(images: np.ndarray, white_level: int = WHITE_LEVEL) -> np.ndarray:
    """float64 (3, 256): normalised R, G, B histograms of the tissue pixels (each row sums to 1)."""
    px = tissue_pixels(images, white_level)
    hist = np.stack([np.bincount(px[:, c], minlength=256) for c in range(3)]).astype(np.float64)
    return hist / hist.sum(axis=1, keepdims=True)


def histogram_w1(hist_a: np.ndarray, hist_b: np.ndarray) -> np.ndarray:
    """float64 (3,): per-channel Wasserstein-1 distance of two (3, 256) histograms over grey levels
    0..255, in units of [0, 1] intensity (the area between the two cumulative distributions)."""
    a, b = np.asarray(hist_a, np.float64), np.asarray(hist_b, np.float64)
    if a.shape != (3, 256) or b.shape != (3, 256):
        raise ShapeError(f"histogram_w1: expected two (3, 256) histograms, got {list(a.shape)} and {list(b.shape)}")
    return np.abs(np.cumsum(a, axis=1) - np.cumsum(b, axis=1))[:, :-1].sum(axis=1) / 255.0


def _hed(images: np.ndarray) -> np.ndarray:
    """float32 (N, H, W, 3) H, E, D optical densities (``skimage.color.rgb2hed``), in chunks."""
    from skimage.color import rgb2hed

    arr = _check_batch("images", images)
    out = np.empty(arr.shape, np.float32)
    for s in range(0, len(arr), _CHUNK):
        out[s : s + _CHUNK] = rgb2hed(arr[s : s + _CHUNK])
    return out


def hed_means(images: np.ndarray, white_level: int = WHITE_LEVEL) -> np.ndarray:
    """float64 (2,): mean haematoxylin and eosin optical density of the tissue pixels."""
    from skimage.color import rgb2hed

    px = tissue_pixels(images, white_level)
    return np.asarray(rgb2hed(px[None])[0, :, :2].mean(axis=0), np.float64)


def haematoxylin(images: np.ndarray) -> np.ndarray:
    """float32 (N, H, W): the haematoxylin channel of ``rgb2hed`` (optical-density units, >= 0)."""
    return _hed(images)[..., 0]


def ssim_pairs(h_a: np.ndarray, h_b: np.ndarray, data_range: float) -> np.ndarray:
    """float64 (N,): SSIM of each pair of single-channel images (N, H, W) with a common ``data_range``."""
    from skimage.metrics import structural_similarity

    if h_a.shape != h_b.shape or h_a.ndim != 3:
        raise ShapeError(f"ssim_pairs: expected two (N, H, W) arrays of one shape, got {list(h_a.shape)} "
                         f"and {list(h_b.shape)}")
    return np.array([structural_similarity(x, y, data_range=data_range) for x, y in zip(h_a, h_b, strict=True)],
                    np.float64)


def _derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A random permutation with no fixed point (n >= 2): a rotation of a random order."""
    order = rng.permutation(n)
    perm = np.empty(n, np.int64)
    perm[order] = np.roll(order, 1)
    return perm


def macenko_stain_matrix(images: np.ndarray, max_px: int = 1 << 20) -> np.ndarray:
    """float64 (3, 2): the Macenko stain matrix (rows R, G, B; unit columns H, E) of the pooled
    pixels of ``images`` (N, H, W, 3), estimated on at most ``max_px`` evenly spaced pixels.

    Raises
    ------
    StainError : too little tissue, or the two stain directions are not separable.
    """
    from pathgan.stain import Macenko

    px = _check_batch("images", images).reshape(-1, 3)
    if len(px) > max_px:
        px = px[np.linspace(0, len(px) - 1, max_px).astype(np.int64)]
    fitted = Macenko().fit(px.reshape(1, -1, 1, 3))  # one (k, 1) "image": fit pools its pixels
    assert fitted.target is not None
    return np.asarray(fitted.target.stain_matrix, np.float64)


def stain_angles(m_a: np.ndarray, m_b: np.ndarray) -> np.ndarray:
    """float64 (2,): angles in degrees between the H columns and between the E columns of two (3, 2)
    stain matrices."""
    a = np.asarray(m_a, np.float64) / np.linalg.norm(m_a, axis=0)
    b = np.asarray(m_b, np.float64) / np.linalg.norm(m_b, axis=0)
    return np.degrees(np.arccos(np.clip((a * b).sum(axis=0), -1.0, 1.0)))


def _stain(x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    from pathgan.errors import PathganError

    out: dict[str, Any] = {"hist_w1": float(histogram_w1(rgb_histograms(x), rgb_histograms(y)).mean()),
                           "hed_mean": float(np.linalg.norm(hed_means(x) - hed_means(y)))}
    try:
        out["macenko_angle"] = float(stain_angles(macenko_stain_matrix(x), macenko_stain_matrix(y)).mean())
    except PathganError as err:  # StainError: too little tissue / inseparable stains in one set
        out["macenko_angle"], out["macenko_note"] = None, str(err)
    except ImportError as err:  # pathgan.stain is optional for these metrics
        out["macenko_angle"], out["macenko_note"] = None, f"pathgan.stain unavailable ({err})"
    return out


def translation_metrics(source: np.ndarray, translated: np.ndarray, target: np.ndarray, *,
                        seed: int = 0) -> dict[str, Any]:
    """Stain distances and structure preservation of one translation direction.

    Parameters
    ----------
    source : uint8 (N >= 2, H, W, 3), patches of the source domain.
    translated : uint8 (N, H, W, 3), their translations, row for row.
    target : uint8 (M >= 2, h, w, 3), patches of the target domain (any size).
    seed : seeds the shuffled baseline and the split of ``target`` into halves.

    Returns
    -------
    dict with, for ``hist_w1``, ``hed_mean`` and ``macenko_angle`` (see the module docstring), ``<name>_before``
    (source vs target), ``<name>_after`` (translated vs target) and ``<name>_floor`` (one half of
    target vs the other); ``ssim_h``, ``ssim_h_identity``, ``ssim_h_shuffled`` (means over N) and
    ``ssim_h_std``; ``hed_source``, ``hed_translated``, ``hed_target`` (mean H and E optical
    densities); ``h_data_range`` (the SSIM data range: the 99.9th percentile of the source's
    haematoxylin); ``n_source``, ``n_target``.

    Raises
    ------
    ShapeError : not uint8 batches, fewer than 2 images, or ``translated`` not shaped like ``source``.
    """
    src = _check_batch("source", source, 2)
    out = _check_batch("translated", translated, 2)
    tgt = _check_batch("target", target, 2)
    if out.shape != src.shape:
        raise ShapeError(f"translated {list(out.shape)} must have the shape of source {list(src.shape)}")
    rng = np.random.default_rng(seed)
    half = rng.permutation(len(tgt))
    floor = _stain(tgt[half[: len(tgt) // 2]], tgt[half[len(tgt) // 2 :]])
    before, after = _stain(src, tgt), _stain(out, tgt)
    res: dict[str, Any] = {}
    for name in ("hist_w1", "hed_mean", "macenko_angle"):
        res.update({f"{name}_before": before[name], f"{name}_after": after[name], f"{name}_floor": floor[name]})
    notes = [f"{k}: {d['macenko_note']}" for k, d in (("before", before), ("after", after), ("floor", floor))
             if "macenko_note" in d]
    if notes:
        res["macenko_note"] = "; ".join(notes)
    h_src, h_out = haematoxylin(src), haematoxylin(out)
    data_range = max(float(np.percentile(h_src, 99.9)), 1e-3)
    ssim = ssim_pairs(h_src, h_out, data_range)
    res.update(
        ssim_h=float(ssim.mean()),
        ssim_h_std=float(ssim.std()),
        ssim_h_identity=float(ssim_pairs(h_src, h_src, data_range).mean()),
        ssim_h_shuffled=float(ssim_pairs(h_src, h_src[_derangement(len(src), rng)], data_range).mean()),
        hed_source=hed_means(src).tolist(),
        hed_translated=hed_means(out).tolist(),
        hed_target=hed_means(tgt).tolist(),
        h_data_range=data_range,
        n_source=len(src),
        n_target=len(tgt),
    )
    return res
