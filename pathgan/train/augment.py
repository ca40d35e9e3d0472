"""Training-time image augmentations on ``[N, C, H, W]`` tensors in [0, 1].

* :func:`diff_augment`: differentiable augmentations applied to both real and generated batches
  right before the discriminator (DiffAugment, Zhao et al. 2020), so a small data set does not
  let the discriminator memorise it while the generator still sees un-augmented targets.
* :func:`dihedral` / :func:`random_dihedral`: the 8 rotations/flips of a square patch (tissue has
  no preferred orientation; PathologyGAN trained on all 8).

Stain augmentation (HED jitter) lives in :mod:`pathgan.stain`.

Randomness comes only from the ``torch.Generator`` passed in (drawn on that generator's device),
so a seeded run is reproducible; every random parameter is drawn per sample.
"""

from __future__ import annotations

import torch
from torch import Tensor

from pathgan.errors import ConfigError, ShapeError

__all__ = [
    "POLICIES",
    "cutout",
    "diff_augment",
    "dihedral",
    "invert_dihedral",
    "random_dihedral",
    "translate",
]

POLICIES = ("color", "translation", "translation_reflect", "cutout")


def _check_images(x: Tensor) -> None:
    if x.ndim != 4:
        raise ShapeError(f"expected images [N, C, H, W], got shape {list(x.shape)}")


def _uniform(
    n: int, low: float, high: float, x: Tensor, generator: torch.Generator | None
) -> Tensor:
    """``[N, 1, 1, 1]`` per-sample ``U[low, high)`` on ``x``'s device and dtype."""
    device = generator.device if generator is not None else x.device
    u = torch.rand(n, generator=generator, device=device).to(x.device, x.dtype)
    return (low + (high - low) * u).view(n, 1, 1, 1)


def _randint(
    n: int, low: int, high: int, x: Tensor, generator: torch.Generator | None
) -> Tensor:
    """``[N]`` per-sample integers in ``[low, high)`` on ``x``'s device."""
    device = generator.device if generator is not None else x.device
    return torch.randint(low, high, (n,), generator=generator, device=device).to(x.device)


def _as_index(v: Tensor | int, n: int, device: torch.device) -> Tensor:
    t = torch.as_tensor(v, device=device, dtype=torch.long)
    return t.expand(n) if t.ndim == 0 else t


def translate(x: Tensor, dx: Tensor | int, dy: Tensor | int, *, reflect: bool = False) -> Tensor:
    """Shift each image by whole pixels, filling with zeros (or with the mirror image of the edge).

    ``out[n, :, i, j] = x[n, :, i - dy[n], j - dx[n]]`` where that pixel exists, else 0: positive
    ``dx`` moves content right (towards larger column index), positive ``dy`` moves it down. With
    ``reflect`` a source index outside the image is mirrored back in about the edge pixel
    (``-1 -> 1``, ``W -> W - 2``, numpy's ``"reflect"`` padding), so no black band appears.

    Parameters
    ----------
    x : ``[N, C, H, W]`` images.
    dx, dy : ``[N]`` integer shifts in pixels (or one int for all); with ``reflect``, ``|d| < size``.

    Returns
    -------
    ``[N, C, H, W]``, differentiable w.r.t. ``x``.
    """
    _check_images(x)
    n, c, h, w = x.shape
    dx_t = _as_index(dx, n, x.device)
    dy_t = _as_index(dy, n, x.device)
    rows = torch.arange(h, device=x.device)[None, :] - dy_t[:, None]  # [N, H] source rows
    cols = torch.arange(w, device=x.device)[None, :] - dx_t[:, None]  # [N, W] source cols
    if reflect:
        rows = torch.where(rows < 0, -rows, torch.where(rows >= h, 2 * (h - 1) - rows, rows))
        cols = torch.where(cols < 0, -cols, torch.where(cols >= w, 2 * (w - 1) - cols, cols))
    # Clamp-and-mask rather than pad-to-max-shift: no data-dependent shape, so no host sync.
    valid = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
    flat = rows.clamp(0, h - 1)[:, :, None] * w + cols.clamp(0, w - 1)[:, None, :]  # [N, H, W]
    out = torch.gather(x.reshape(n, c, h * w), 2, flat.reshape(n, 1, h * w).expand(n, c, h * w))
    return out.reshape(n, c, h, w) * valid[:, None].to(x.dtype)


def cutout(x: Tensor, cx: Tensor | int, cy: Tensor | int, size: int) -> Tensor:
    """Zero one ``size`` x ``size`` square per image (clipped at the borders).

    The square of image ``n`` covers rows ``[cy - size // 2, cy - size // 2 + size)`` and columns
    ``[cx - size // 2, cx - size // 2 + size)``.

    Parameters
    ----------
    x : ``[N, C, H, W]`` images.
    cx, cy : ``[N]`` integer centres (column, row) in pixels, or one int for all.
    size : side of the square in pixels.

    Returns
    -------
    ``[N, C, H, W]``, differentiable w.r.t. ``x`` (zero gradient inside the square).
    """
    _check_images(x)
    n, _, h, w = x.shape
    x0 = _as_index(cx, n, x.device) - size // 2
    y0 = _as_index(cy, n, x.device) - size // 2
    cols = torch.arange(w, device=x.device)[None, :]
    rows = torch.arange(h, device=x.device)[None, :]
    in_cols = (cols >= x0[:, None]) & (cols < x0[:, None] + size)  # [N, W]
    in_rows = (rows >= y0[:, None]) & (rows < y0[:, None] + size)  # [N, H]
    keep = ~(in_rows[:, :, None] & in_cols[:, None, :])  # [N, H, W]
    return x * keep[:, None].to(x.dtype)


def _color(x: Tensor, generator: torch.Generator | None) -> Tensor:
    n = x.shape[0]
    x = x + _uniform(n, -0.5, 0.5, x, generator)  # brightness
    grey = x.mean(dim=1, keepdim=True)  # per-pixel channel mean: saturation pivots around grey
    x = (x - grey) * _uniform(n, 0.0, 2.0, x, generator) + grey
    mean = x.mean(dim=(1, 2, 3), keepdim=True)  # per-image mean: contrast pivots around it
    return (x - mean) * _uniform(n, 0.5, 1.5, x, generator) + mean


def _translation(x: Tensor, generator: torch.Generator | None, reflect: bool = False) -> Tensor:
    n, _, h, w = x.shape
    max_dy, max_dx = round(h / 8), round(w / 8)
    dx = _randint(n, -max_dx, max_dx + 1, x, generator)
    dy = _randint(n, -max_dy, max_dy + 1, x, generator)
    return translate(x, dx, dy, reflect=reflect)


def _translation_reflect(x: Tensor, generator: torch.Generator | None) -> Tensor:
    return _translation(x, generator, reflect=True)


def _cutout(x: Tensor, generator: torch.Generator | None) -> Tensor:
    n, _, h, w = x.shape
    size = max(1, round(min(h, w) / 2))
    # Centres anywhere in the image: near the borders only part of the square is cut.
    cx = _randint(n, 0, w, x, generator)
    cy = _randint(n, 0, h, x, generator)
    return cutout(x, cx, cy, size)


_OPS = {"color": _color, "translation": _translation, "translation_reflect": _translation_reflect, "cutout": _cutout}


def diff_augment(
    x: Tensor,
    policy: str = "color,translation,cutout",
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Differentiable augmentation (DiffAugment) of a batch about to enter the discriminator.

    Apply it to the real and to the generated batch alike (each with its own random draw).

    * ``color``: brightness ``+U[-0.5, 0.5]``, saturation ``x U[0, 2]`` around each pixel's
      channel mean, contrast ``x U[0.5, 1.5]`` around each image's mean. Values may leave [0, 1];
      the discriminator does not care.
    * ``translation``: integer shift of up to 1/8 of the height/width, zero fill (DiffAugment's).
    * ``translation_reflect``: the same shift with the edge mirrored in (StyleGAN2-ADA's integer
      translation): the discriminator never sees a black band that real tissue does not have, so
      the generator cannot pass off dark frames as "translated" real patches.
    * ``cutout``: one square of half the (smaller) side zeroed at a random centre.

    Parameters
    ----------
    x : ``[N, C, H, W]`` images in [0, 1].
    policy : comma-separated ops from :data:`POLICIES`, applied in the order given; ``""`` = none.
    generator : source of all random parameters (one draw per sample and op).

    Returns
    -------
    ``[N, C, H, W]``, differentiable w.r.t. ``x``; ``x`` itself when the policy is empty.

    Raises
    ------
    ConfigError : the policy names an unknown op.
    """
    _check_images(x)
    ops = [p.strip() for p in policy.split(",") if p.strip()]
    unknown = [p for p in ops if p not in _OPS]
    if unknown:
        raise ConfigError(f"diffaugment={policy!r} names unknown op(s) {unknown}; allowed: {POLICIES}")
    for op in ops:
        x = _OPS[op](x, generator)
    return x


def _dihedral_source(k: Tensor, size: int) -> Tensor:
    """``[N, S, S]`` flat source index of every output pixel for the transforms ``k``.

    Transform ``k`` is ``rot90^(k % 4) o fliplr^(k // 4)``, the same as
    ``np.rot90(np.fliplr(a) if k >= 4 else a, k % 4)`` on ``(H, W)``: first an optional
    left-right flip, then ``k % 4`` counter-clockwise quarter turns.
    """
    last = size - 1
    i = torch.arange(size, device=k.device)[:, None].expand(size, size)
    j = torch.arange(size, device=k.device)[None, :].expand(size, size)
    # np.rot90(a, r)[i, j] == a[src_row, src_col] for r = 0, 1, 2, 3.
    src_row = torch.stack([i, j, last - i, last - j])[k % 4]  # [N, S, S]
    src_col = torch.stack([j, last - i, last - j, i])[k % 4]
    flip = (k >= 4)[:, None, None]
    src_col = torch.where(flip, last - src_col, src_col)  # fliplr(a)[p, q] == a[p, last - q]
    return src_row * size + src_col


def dihedral(x: Tensor, k: Tensor) -> Tensor:
    """Apply one of the 8 dihedral transforms to each square image.

    Parameters
    ----------
    x : ``[N, C, S, S]`` images.
    k : ``[N]`` integers in 0..7: ``k % 4`` counter-clockwise quarter turns applied after a
        left-right flip when ``k >= 4`` (``np.rot90(np.fliplr(img) if k >= 4 else img, k % 4)``).

    Returns
    -------
    ``[N, C, S, S]``, differentiable w.r.t. ``x``. :func:`invert_dihedral` gives the undoing ``k``.

    Raises
    ------
    ValueError : images are not square or ``k`` has the wrong shape.
    """
    _check_images(x)
    n, c, h, w = x.shape
    if h != w:
        raise ShapeError(f"dihedral transforms need square images, got H={h}, W={w}")
    if k.shape != (n,):
        raise ShapeError(f"k must have shape [{n}], got {list(k.shape)}")
    src = _dihedral_source(k.to(x.device, torch.long), h).reshape(n, 1, h * w)
    out = torch.gather(x.reshape(n, c, h * w), 2, src.expand(n, c, h * w))
    return out.reshape(n, c, h, w)


def invert_dihedral(k: Tensor) -> Tensor:
    """``[N]`` transforms that undo ``k``: quarter turns invert to ``(4 - r) % 4``; a flip followed
    by a rotation is its own inverse (a reflection)."""
    return torch.where(k >= 4, k, (4 - k) % 4)


def random_dihedral(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """:func:`dihedral` with ``k ~ U{0..7}`` drawn per sample from ``generator``."""
    _check_images(x)
    return dihedral(x, _randint(x.shape[0], 0, 8, x, generator))
