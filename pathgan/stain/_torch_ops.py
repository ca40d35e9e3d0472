"""Torch kernels: the batched twins of :mod:`pathgan.stain._numpy_ops` (same conventions).

Every image of a batch is processed at once on the tensor's device: optical densities ``[N, P, 3]``
(``P = H * W`` pixels, interleaved as torch matmuls like it), per-image tissue masks ``[N, P]``
and tissue samples ``[N, m, 3]`` with validity ``[N, m]`` (tissue differs in amount from image to
image), per-image 3x3 moment matrices through ``torch.linalg.eigh``, masked percentiles through
``torch.topk``. Computation is float32 (float64 for float64 input).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from pathgan.errors import StainError
from pathgan.stain import _numpy_ops as npo
from pathgan.stain._inputs import ALLOWED

__all__ = [
    "from_rgb255",
    "gather_pixels",
    "lab_to_rgb255",
    "macenko_stains",
    "masked_quantile",
    "nnls2",
    "od_to_rgb255",
    "optical_density",
    "pair_angle_deg",
    "rgb255_to_lab",
    "sample_index",
    "tissue_mask",
    "to_rgb255",
    "vahadane_stains",
]

_LOG_WHITE = math.log(npo.OD_WHITE)


def to_rgb255(images: Tensor, name: str) -> tuple[Tensor, dict[str, Any]]:
    """``[N, 3, H, W]`` float RGB in 0..255 and what :func:`from_rgb255` needs to undo it.

    Accepts ``[3, H, W]`` or ``[N, 3, H, W]``, uint8 (0-255) or float in [0, 1].

    Raises
    ------
    StainError : another shape or dtype, float values outside [0, 1], or an empty tensor.
    """
    if images.ndim not in (3, 4) or images.shape[-3] != 3:
        raise StainError(f"{name}: got a tensor of shape {list(images.shape)}; expected [3, H, W] or "
                         "[N, 3, H, W] RGB")
    if images.numel() == 0:
        raise StainError(f"{name}: got an empty tensor of shape {list(images.shape)}; expected at least one pixel")
    single = images.ndim == 3
    x = images[None] if single else images
    if x.dtype == torch.uint8:
        rgb = x.float()
    elif x.is_floating_point():
        lo, hi = torch.aminmax(x)
        if float(lo) < 0.0 or float(hi) > 1.0:
            raise StainError(f"{name}: got float values in [{float(lo):.4g}, {float(hi):.4g}]; expected "
                             "[0, 1] (or a uint8 tensor with 0-255)")
        rgb = x.to(torch.float64 if x.dtype == torch.float64 else torch.float32) * 255.0
    else:
        raise StainError(f"{name}: got a tensor of dtype {x.dtype}; expected {ALLOWED}")
    return rgb, {"single": single, "dtype": images.dtype}


def from_rgb255(rgb: Tensor, like: dict[str, Any]) -> Tensor:
    """Undo :func:`to_rgb255`: uint8 input gets rounded uint8, float input gets [0, 1] floats."""
    rgb = rgb.clamp(0.0, 255.0)
    out = rgb.round().to(torch.uint8) if like["dtype"] == torch.uint8 else (rgb / 255.0).to(like["dtype"])
    return out[0] if like["single"] else out


def optical_density(rgb: Tensor) -> Tensor:
    """``[N, 3, H, W]`` RGB 0..255 -> ``[N, P, 3]`` optical density ``ln(256 / (rgb + 1))``."""
    n = rgb.shape[0]
    return (_LOG_WHITE - torch.log(rgb + 1.0)).permute(0, 2, 3, 1).reshape(n, -1, 3)


def od_to_rgb255(od: Tensor, shape: torch.Size) -> Tensor:
    """``[N, P, 3]`` optical density -> ``[N, 3, H, W]`` RGB 0..255 (unclamped, unrounded)."""
    n, _, h, w = shape
    return (npo.OD_WHITE * torch.exp(-od) - 1.0).reshape(n, h, w, 3).permute(0, 3, 1, 2)


def tissue_mask(rgb: Tensor, beta: float) -> Tensor:
    """``[N, 3, H, W]`` 0..255 -> ``[N, P]`` bool: tissue, as :func:`pathgan.stain._numpy_ops.tissue_mask`."""
    level = npo.TISSUE_LIGHT * math.exp(-beta) - 1.0
    return rgb.amax(dim=1).reshape(rgb.shape[0], -1) <= level


def sample_index(mask: Tensor, n_samples: int) -> tuple[Tensor, Tensor]:
    """Batched :func:`pathgan.stain._numpy_ops.sample_index`: ``[N, m]`` positions and validity.

    Slot ``j`` of row ``i`` holds the position of the True of rank ``j * s`` (``s = ceil(n_i / m)``),
    found by binary search in the running count of ``mask[i]``; slots past the last are invalid
    (position 0). No data-dependent shapes, so no host synchronisation.
    """
    count = mask.to(torch.int32).cumsum(dim=1, dtype=torch.int32)  # [N, P], non-decreasing
    n_true = count[:, -1:].long()
    stride = ((n_true + n_samples - 1) // n_samples).clamp_min(1)
    rank = torch.arange(n_samples, device=mask.device)[None, :] * stride  # [N, m]
    valid = rank < n_true
    position = torch.searchsorted(count, (rank + 1).to(torch.int32))  # first position with count > rank
    return torch.where(valid, position, torch.zeros_like(position)), valid


def gather_pixels(x: Tensor, index: Tensor) -> Tensor:
    """``x [N, P, C]`` at ``index [N, m]`` -> ``[N, m, C]``."""
    return x.gather(1, index[..., None].expand(*index.shape, x.shape[-1]))


def masked_quantile(values: Tensor, mask: Tensor, q: float) -> Tensor:
    """Per-row ``q``-quantile (numpy's default linear interpolation) of ``values[mask]``.

    Parameters
    ----------
    values, mask : ``[N, m]``; rows without any True give inf/nan (the caller replaces them).
    q : in [0, 1].

    Returns
    -------
    ``[N]``. Only the tail beyond the quantile is ranked (``torch.topk``), not the whole row.
    """
    count = mask.sum(dim=1)
    pos = q * (count - 1).clamp_min(0).to(values.dtype)
    lo = pos.floor().long()
    hi = torch.minimum(lo + 1, (count - 1).clamp_min(0))
    frac = pos - lo.to(values.dtype)
    if q <= 0.5:  # the k smallest, ascending: the r-th smallest sits at index r
        k = int(hi.max()) + 1
        top = torch.topk(values.masked_fill(~mask, math.inf), k, dim=1, largest=False).values
        a, b = top.gather(1, lo[:, None])[:, 0], top.gather(1, hi[:, None])[:, 0]
    else:  # the k largest, descending: the r-th smallest sits at index count - 1 - r
        k = max(int((count - lo).max()), 1)
        top = torch.topk(values.masked_fill(~mask, -math.inf), k, dim=1, largest=True).values
        a = top.gather(1, (count - 1 - lo).clamp(0, k - 1)[:, None])[:, 0]
        b = top.gather(1, (count - 1 - hi).clamp(0, k - 1)[:, None])[:, 0]
    return a + (b - a) * frac


def nnls2(od: Tensor, stains: Tensor, lam: float = 0.0) -> Tensor:
    """Batched :func:`pathgan.stain._numpy_ops.nnls2` (same closed form): ``od [N, P, 3]``,
    non-negative ``stains [N, 3, 2]`` -> ``[N, P, 2]``."""
    g = stains.transpose(1, 2) @ stains  # [N, 2, 2]
    diag = torch.diagonal(g, dim1=1, dim2=2)  # [N, 2]
    det = diag[:, 0] * diag[:, 1] - g[:, 0, 1] ** 2
    parallel = (det <= 1e-9 * diag[:, 0] * diag[:, 1])[:, None, None]
    h_only = torch.zeros_like(g)
    h_only[:, 0, 0] = 1.0 / diag[:, 0]
    g_inv = torch.where(parallel, h_only, torch.linalg.inv(torch.where(parallel, torch.eye(2, dtype=g.dtype, device=g.device), g)))
    y = od @ torch.cat([stains, stains @ g_inv], dim=2)  # [N, P, 4]: b, then u = G^-1 b
    if lam:
        y = y - torch.cat([torch.full_like(diag, lam), lam * g_inv.sum(dim=2)], dim=1)[:, None, :]
    b, u = y[..., :2], y[..., 2:]
    # u2 < 0: H alone; u1 < 0: E alone (the flip pairs each stain with the other's sign).
    alone = u.flip(-1) < 0
    return torch.where(alone, b.clamp_min(0.0) / diag[:, None, :], u.clamp_min(0.0))


def _finish_pair(v1: Tensor, v2: Tensor) -> Tensor:
    """``[N, 3]`` twice -> ``[N, 3, 2]``: floored at 1e-6, unit columns, H (larger red) first."""
    s = torch.stack([v1, v2], dim=-1).clamp_min(1e-6)
    s = s / s.norm(dim=1, keepdim=True)
    swap = (s[:, 0, 0] < s[:, 0, 1])[:, None, None]
    return torch.where(swap, s.flip(-1), s)


def pair_angle_deg(stains: Tensor) -> Tensor:
    """``[N, 3, 2]`` -> ``[N]`` angle between the two unit columns, in degrees."""
    cos = (stains[:, :, 0] * stains[:, :, 1]).sum(dim=1).clamp(-1.0, 1.0)
    return torch.rad2deg(torch.acos(cos))


def macenko_stains(t: Tensor, valid: Tensor, alpha: float) -> Tensor:
    """Batched :func:`pathgan.stain._numpy_ops.macenko_stains` on sampled tissue pixels.

    ``t [N, m, 3]`` with ``valid [N, m]``; returns ``[N, 3, 2]`` (garbage, possibly nan, for rows
    without valid pixels: the caller replaces them).
    """
    w = valid.to(t.dtype)
    moments = (t * w[..., None]).transpose(1, 2) @ t / w.sum(dim=1).clamp_min(1.0)[:, None, None]
    _, vecs = torch.linalg.eigh(moments.double())
    e = vecs[:, :, [2, 1]]
    e = (e * torch.where(e.sum(dim=1, keepdim=True) < 0, -1.0, 1.0)).to(t.dtype)  # [N, 3, 2]
    proj = t @ e  # [N, m, 2]
    ratio = proj[..., 1] / proj[..., 0].clamp_min(1e-12)
    lo = torch.atan(masked_quantile(ratio, valid, alpha / 100.0))
    hi = torch.atan(masked_quantile(ratio, valid, 1.0 - alpha / 100.0))
    v1 = (e @ torch.stack([lo.cos(), lo.sin()], dim=1)[..., None])[..., 0]
    v2 = (e @ torch.stack([hi.cos(), hi.sin()], dim=1)[..., None])[..., 0]
    return _finish_pair(v1, v2)


def vahadane_stains(t: Tensor, valid: Tensor, *, lam: float, n_samples: int, max_iter: int,
                    tol: float) -> Tensor:
    """Batched :func:`pathgan.stain._numpy_ops.vahadane_stains` on sampled tissue pixels ``t [N, m, 3]``.

    Each image stops (freezes) on its own when it converges, exactly as the numpy loop does; the
    loop ends when all have.
    """
    index, keep = sample_index(valid, min(n_samples, t.shape[1]))
    weight = keep.to(t.dtype)[..., None]
    v = gather_pixels(t, index) * weight
    n = t.shape[0]
    w = torch.as_tensor(npo.DEFAULT_STAIN_MATRIX, dtype=t.dtype, device=t.device).expand(n, 3, 2).clone()
    done = torch.zeros(n, dtype=torch.bool, device=t.device)
    for it in range(max_iter):
        c = nnls2(v, w, lam) * weight  # [N, m, 2]; unused slots do not count
        q = c.transpose(1, 2) @ c  # [N, 2, 2]
        a = v.transpose(1, 2) @ c  # [N, 3, 2]
        cols = [w[:, :, 0], w[:, :, 1]]
        for k in (0, 1):
            j = 1 - k
            qkk = q[:, k, k, None]
            col = (a[:, :, k] - cols[j] * q[:, j, k, None]).clamp_min(0.0) / qkk.clamp_min(1e-30)
            norm = col.norm(dim=1, keepdim=True)
            cols[k] = torch.where((qkk > 1e-12) & (norm > 0), col / norm.clamp_min(1e-30), cols[k])
        new = torch.stack(cols, dim=-1)
        moved = (new - w).abs().amax(dim=(1, 2))
        w = torch.where(done[:, None, None], w, new)
        done = done | (moved < tol)
        if it % 8 == 7 and bool(done.all()):
            break
    return _finish_pair(w[:, :, 0], w[:, :, 1])


# CIELAB, as the numpy kernels (skimage's constants: sRGB, D65, 2 degree observer).


def rgb255_to_lab(rgb: Tensor) -> Tensor:
    """``[N, 3, H, W]`` RGB 0..255 -> ``[N, P, 3]`` CIELAB."""
    n = rgb.shape[0]
    v = (rgb / 255.0).permute(0, 2, 3, 1).reshape(n, -1, 3)
    lin = torch.where(v > 0.04045, ((v + 0.055) / 1.055).pow(2.4), v / 12.92)
    xyz = lin @ torch.as_tensor(npo.XYZN_FROM_LINEAR.T, dtype=v.dtype, device=v.device)
    f = torch.where(xyz > 0.008856, xyz.clamp_min(0.008856).pow(1.0 / 3.0), 7.787 * xyz + 16.0 / 116.0)
    return torch.stack([116.0 * f[..., 1] - 16.0, 500.0 * (f[..., 0] - f[..., 1]),
                        200.0 * (f[..., 1] - f[..., 2])], dim=-1)


def lab_to_rgb255(lab: Tensor, shape: torch.Size) -> Tensor:
    """``[N, P, 3]`` CIELAB -> ``[N, 3, H, W]`` RGB 0..255 (negative Z clipped, as skimage)."""
    n, _, h, w = shape
    fy = (lab[..., 0] + 16.0) / 116.0
    f = torch.stack([lab[..., 1] / 500.0 + fy, fy, (fy - lab[..., 2] / 200.0).clamp_min(0.0)], dim=-1)
    xyz = torch.where(f > 0.2068966, f * f * f, (f - 16.0 / 116.0) / 7.787)
    lin = (xyz @ torch.as_tensor(npo.LINEAR_FROM_XYZN.T, dtype=lab.dtype, device=lab.device)).clamp_min(0.0)
    srgb = torch.where(lin > 0.0031308, 1.055 * lin.clamp_min(0.0031308).pow(1.0 / 2.4) - 0.055, 12.92 * lin)
    return (srgb.clamp(0.0, 1.0) * 255.0).reshape(n, h, w, 3).permute(0, 3, 1, 2)
