"""Latent arithmetic for notebooks: interpolation, directions, walks, projections.

Pure numpy; no model, no I/O. A latent is a float vector ``[d]`` (``d`` = ``w_dim`` or ``z_dim``) and a
set of latents is ``[n, d]``. Torch tensors are accepted and converted (``detach().cpu()``); results
are float32 numpy arrays, computed in float64.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from pathgan.errors import ConfigError, ShapeError

__all__ = [
    "arithmetic",
    "direction",
    "interpolate",
    "labels_by_quantile",
    "lerp",
    "project_out",
    "slerp",
    "walk",
]

#: Below this ``sin(angle)`` two vectors count as (anti)parallel and ``slerp`` falls back to ``lerp``
#: (the slerp weights divide by ``sin(angle)``).
_PARALLEL_SIN = 1e-7


def as_array(x: Any, name: str) -> np.ndarray:
    """``x`` (numpy array, torch tensor or nested sequence) as a float64 numpy array."""
    if hasattr(x, "detach"):  # a torch tensor; torch is not imported here just to check the type
        x = x.detach().cpu().double()  # bfloat16 has no numpy dtype
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ShapeError(f"{name} must be a numeric array; received {type(x).__name__}") from err
    return arr


def _vector(x: Any, name: str) -> np.ndarray:
    arr = as_array(x, name)
    if arr.ndim != 1 or arr.size == 0:
        raise ShapeError(f"{name} must be one latent vector [d]; received shape {list(arr.shape)}")
    return arr


def _set(x: Any, name: str) -> np.ndarray:
    """A set of latents ``[n, d]`` (a single vector ``[d]`` is a set of one)."""
    arr = as_array(x, name)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise ShapeError(f"{name} must be latents [n, d] or one latent [d]; received shape {list(arr.shape)}")
    if arr.shape[0] == 0:
        raise ShapeError(f"{name} is an empty set of latents (shape {list(arr.shape)}); its mean is undefined")
    return arr


def _same_width(pairs: Sequence[tuple[str, np.ndarray]]) -> int:
    widths = {name: int(arr.shape[-1]) for name, arr in pairs}
    if len(set(widths.values())) != 1:
        raise ShapeError(f"latent widths differ: {widths}")
    return next(iter(widths.values()))


def _steps(steps: int) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 2:
        raise ConfigError(f"steps must be an integer >= 2 (both endpoints are included); received {steps!r}")
    return int(steps)


def lerp(a: Any, b: Any, steps: int) -> np.ndarray:
    """Linear interpolation from ``a`` to ``b``.

    Parameters
    ----------
    a, b : latent vectors ``[d]``.
    steps : number of points, >= 2; the first is exactly ``a`` and the last exactly ``b``.

    Returns
    -------
    float32 ``[steps, d]``.

    Raises
    ------
    ShapeError
        ``a`` or ``b`` is not a vector, or their widths differ.
    ConfigError
        ``steps`` < 2.
    """
    a, b = _vector(a, "a"), _vector(b, "b")
    _same_width([("a", a), ("b", b)])
    t = np.linspace(0.0, 1.0, _steps(steps))[:, None]  # [steps, 1]; exactly 0 and 1 at the ends
    return ((1.0 - t) * a + t * b).astype(np.float32)


def slerp(a: Any, b: Any, steps: int) -> np.ndarray:
    """Spherical interpolation from ``a`` to ``b`` (for Gaussian ``z``).

    The point at ``t`` is ``sin((1-t)θ)/sin θ · a + sin(tθ)/sin θ · b`` with ``θ`` the angle between
    ``a`` and ``b``: for inputs of equal norm every point keeps that norm and the angle advances in
    equal steps. When ``a`` and ``b`` are (anti)parallel, or one is zero, the great circle is
    undefined and this falls back to :func:`lerp`.

    Returns
    -------
    float32 ``[steps, d]``, first row exactly ``a`` and last row exactly ``b``.

    Raises
    ------
    ShapeError, ConfigError
        As :func:`lerp`.
    """
    a, b = _vector(a, "a"), _vector(b, "b")
    _same_width([("a", a), ("b", b)])
    n = _steps(steps)
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 or nb == 0.0:
        return lerp(a, b, n)
    cos = float(np.clip(np.dot(a, b) / (na * nb), -1.0, 1.0))
    theta = float(np.arccos(cos))
    sin = float(np.sin(theta))
    if sin < _PARALLEL_SIN:
        return lerp(a, b, n)
    t = np.linspace(0.0, 1.0, n)[:, None]  # [steps, 1]
    out = (np.sin((1.0 - t) * theta) / sin) * a + (np.sin(t * theta) / sin) * b
    out[0], out[-1] = a, b  # exact endpoints, whatever the rounding of sin(θ)/sin(θ)
    return out.astype(np.float32)


def interpolate(a: Any, b: Any, steps: int = 8, space: Literal["w", "z"] = "w") -> np.ndarray:
    """Interpolate between two latents the way their space calls for.

    ``space="w"`` uses :func:`lerp`: the mapping network's ``w`` space is learned to be roughly
    linear (StyleGAN's perceptual path length is measured with lerp in ``w``). ``space="z"`` uses
    :func:`slerp`: ``z ~ N(0, I)`` in ``d`` dimensions has almost all its mass near the sphere of
    radius ``sqrt(d)``, so a straight line between two samples passes through low-norm ``z`` the
    mapping never saw in training, while the great circle stays on the shell.

    Returns
    -------
    float32 ``[steps, d]`` with both endpoints included.

    Raises
    ------
    ConfigError
        ``space`` is not ``"w"`` or ``"z"``, or ``steps`` < 2.
    ShapeError
        ``a``, ``b`` are not vectors of equal width.
    """
    if space == "w":
        return lerp(a, b, steps)
    if space == "z":
        return slerp(a, b, steps)
    raise ConfigError(f"space must be 'w' (linear) or 'z' (spherical); received {space!r}")


def direction(latents_a: Any, latents_b: Any, *, normalize: bool = False) -> np.ndarray:
    """The direction from set ``b`` to set ``a``: ``mean(a) - mean(b)``.

    The difference-of-means recipe of PathologyGAN's and StyleGAN's latent arithmetic (an
    "InterFaceGAN-lite": the normal of a linear boundary between the two sets, without fitting an
    SVM). ``walk(w, direction(high, low), alphas)`` then moves ``w`` from "low" towards "high".

    Parameters
    ----------
    latents_a, latents_b : ``[n_a, d]`` and ``[n_b, d]`` (a single ``[d]`` counts as a set of one).
    normalize : return a unit vector, so walk steps ``alpha`` are in latent-norm units.

    Returns
    -------
    float32 ``[d]``.

    Raises
    ------
    ShapeError
        A set is empty or not ``[n, d]``, or the widths differ.
    ConfigError
        ``normalize`` is asked for and the two means coincide (a zero direction has no unit length).
    """
    a, b = _set(latents_a, "latents_a"), _set(latents_b, "latents_b")
    _same_width([("latents_a", a), ("latents_b", b)])
    d = a.mean(axis=0) - b.mean(axis=0)
    if normalize:
        norm = float(np.linalg.norm(d))
        if norm == 0.0:
            raise ConfigError("the two sets have the same mean: the direction is zero and cannot be normalised")
        d = d / norm
    return d.astype(np.float32)


def arithmetic(a: Any, b: Any, c: Any) -> np.ndarray:
    """Latent analogy ``a - b + c`` ("a is to b as ? is to c").

    Each argument is one latent ``[d]`` or a set ``[n, d]``; a set is replaced by its mean first
    (PathologyGAN averages a few latents per concept so one sample's quirks cancel out).

    Returns
    -------
    float32 ``[d]``.

    Raises
    ------
    ShapeError
        An argument is empty or not ``[d]`` / ``[n, d]``, or the widths differ.
    """
    sa, sb, sc = _set(a, "a"), _set(b, "b"), _set(c, "c")
    _same_width([("a", sa), ("b", sb), ("c", sc)])
    return (sa.mean(axis=0) - sb.mean(axis=0) + sc.mean(axis=0)).astype(np.float32)


def walk(w: Any, direction: Any, alphas: Any) -> np.ndarray:
    """Points ``w + alpha * direction`` for each ``alpha``.

    Parameters
    ----------
    w : one latent ``[d]`` or several ``[n, d]``.
    direction : ``[d]``, e.g. from :func:`direction`.
    alphas : 1-D sequence of step sizes, e.g. ``np.linspace(-3, 3, 7)``.

    Returns
    -------
    float32 ``[len(alphas), d]`` for ``w [d]``, ``[n, len(alphas), d]`` for ``w [n, d]``.

    Raises
    ------
    ShapeError
        ``w`` is not ``[d]`` / ``[n, d]``, ``direction`` is not ``[d]`` of the same width, or
        ``alphas`` is not 1-D.
    """
    wa = as_array(w, "w")
    if wa.ndim not in (1, 2) or wa.shape[-1] == 0:
        raise ShapeError(f"w must be one latent [d] or latents [n, d]; received shape {list(wa.shape)}")
    da = _vector(direction, "direction")
    _same_width([("w", wa), ("direction", da)])
    al = as_array(alphas, "alphas")
    if al.ndim != 1:
        raise ShapeError(f"alphas must be a 1-D sequence; received shape {list(al.shape)}")
    out = wa[..., None, :] + al[:, None] * da  # [(n,) len(alphas), d]
    return out.astype(np.float32)


def project_out(latents: Any, direction: Any) -> np.ndarray:
    """Remove the component of ``latents`` along ``direction``.

    For conditional manipulation: project a second direction (or the latents) orthogonal to one
    attribute's direction, so walking along it leaves that attribute unchanged to first order
    (InterFaceGAN's conditional editing).

    Parameters
    ----------
    latents : ``[d]`` or ``[n, d]``.
    direction : ``[d]``, any non-zero length.

    Returns
    -------
    float32 of the shape of ``latents``, orthogonal to ``direction``.

    Raises
    ------
    ShapeError
        Shapes are not ``[d]`` / ``[n, d]`` and ``[d]`` of one width.
    ConfigError
        ``direction`` is zero.
    """
    x = as_array(latents, "latents")
    if x.ndim not in (1, 2) or x.shape[-1] == 0:
        raise ShapeError(f"latents must be [d] or [n, d]; received shape {list(x.shape)}")
    u = _vector(direction, "direction")
    _same_width([("latents", x), ("direction", u)])
    norm = float(np.linalg.norm(u))
    if norm == 0.0:
        raise ConfigError("direction is the zero vector; there is no component to remove")
    u = u / norm
    return (x - (x @ u)[..., None] * u).astype(np.float32)


def labels_by_quantile(
    values: Any, q: tuple[float, float] = (1 / 3, 2 / 3)
) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the lowest and highest groups of a measured property.

    Handy for making a direction from a per-patch measurement, e.g.
    ``low, high = labels_by_quantile(nuclei_density(images))`` then
    ``direction(w[high], w[low])``.

    Parameters
    ----------
    values : ``[N]`` numbers; NaN values fall in neither group.
    q : ``(q_low, q_high)`` with ``0 < q_low <= q_high < 1``; ``low`` holds values ``<=`` the
        ``q_low`` quantile, ``high`` those ``>=`` the ``q_high`` quantile (ties at a shared
        quantile go to ``low`` only, so the masks never overlap).

    Returns
    -------
    ``(low_mask, high_mask)``, boolean ``[N]`` each.

    Raises
    ------
    ShapeError
        ``values`` is not 1-D or has no finite value.
    ConfigError
        ``q`` is out of range or decreasing.
    """
    v = as_array(values, "values")
    if v.ndim != 1:
        raise ShapeError(f"values must be 1-D [N]; received shape {list(v.shape)}")
    try:
        q_low, q_high = (float(x) for x in q)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"q must be two quantiles (q_low, q_high); received {q!r}") from err
    if not 0.0 < q_low <= q_high < 1.0:
        raise ConfigError(f"q must satisfy 0 < q_low <= q_high < 1; received {q!r}")
    finite = np.isfinite(v)
    if not finite.any():
        raise ShapeError(f"values has no finite entry (N={v.size}); quantiles are undefined")
    lo, hi = np.quantile(v[finite], [q_low, q_high])
    low = finite & (v <= lo)
    high = finite & (v >= hi) & ~low
    return low, high
