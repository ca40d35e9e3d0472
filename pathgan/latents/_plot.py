"""Figures for latent notebooks: image strips and grids, 2-D maps of latents.

Every function returns a fresh :class:`matplotlib.figure.Figure` built without pyplot, so nothing
is shown, nothing leaks between calls, and it works under the Agg backend. In a notebook, after
``%matplotlib inline``, ``IPython.display.display(fig)`` shows it (or end a cell with ``fig``);
elsewhere call ``fig.savefig(path)``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from pathgan.errors import ConfigError, ShapeError
from pathgan.latents._arith import as_array

__all__ = ["ProjectionMethod", "grid", "project_2d", "projection_plot", "strip"]

ProjectionMethod = Literal["auto", "umap", "pca"]

#: Inches per image cell.
_CELL_IN = 1.6
#: UMAP needs more points than its neighbourhood size (15 by default); below that "auto" uses PCA.
_UMAP_MIN_POINTS = 16


def _image_stack(images: Any, *, ndim: tuple[int, ...] = (4,)) -> np.ndarray:
    if hasattr(images, "detach"):
        images = images.detach().cpu()
    arr = np.asarray(images)
    if arr.ndim not in ndim or arr.shape[-1] != 3 or arr.shape[0] == 0:
        want = " or ".join({4: "[N, H, W, 3]", 5: "[rows, cols, H, W, 3]"}[n] for n in ndim)
        raise ShapeError(f"images must be a non-empty RGB {want}; received shape {list(arr.shape)}")
    return arr


def _bare(ax: Axes) -> None:
    """No ticks or frame, but keep the axis so a y-label can still name the row."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def strip(images: Any, *, labels: Sequence[Any] | None = None, title: str | None = None) -> Figure:
    """One row of images, e.g. an interpolation or a walk.

    Parameters
    ----------
    images : ``[N, H, W, 3]``, uint8 or float in ``[0, 1]``.
    labels : one caption per image (e.g. the walk's alphas), or None.
    title : figure title.

    Raises
    ------
    ShapeError
        ``images`` is not ``[N, H, W, 3]`` or ``labels`` has another length.
    """
    arr = _image_stack(images)
    n = len(arr)
    if labels is not None and len(labels) != n:
        raise ShapeError(f"labels must hold one caption per image: {len(labels)} labels for {n} images")
    fig = Figure(figsize=(_CELL_IN * n, _CELL_IN + (0.5 if title else 0.25)), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    for i, (ax, img) in enumerate(zip(axes, arr, strict=True)):
        ax.imshow(img)
        _bare(ax)
        if labels is not None:
            ax.set_title(str(labels[i]), fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def grid(
    images: Any,
    *,
    ncols: int = 8,
    row_labels: Sequence[Any] | None = None,
    title: str | None = None,
) -> Figure:
    """Images on a grid, filled row by row.

    Parameters
    ----------
    images : ``[N, H, W, 3]`` laid out ``ncols`` per row (unused cells are blank), or
        ``[rows, cols, H, W, 3]`` laid out as given (``ncols`` is then ignored), e.g. one walk per row.
    ncols : images per row for ``[N, H, W, 3]`` input.
    row_labels : one label per row, written left of it, or None.
    title : figure title.

    Raises
    ------
    ShapeError
        ``images`` has another shape or ``row_labels`` another length than the rows.
    ConfigError
        ``ncols`` < 1.
    """
    arr = _image_stack(images, ndim=(4, 5))
    if arr.ndim == 5:
        nrows, ncols = arr.shape[:2]
        arr = arr.reshape(-1, *arr.shape[2:])
    else:
        if isinstance(ncols, bool) or not isinstance(ncols, int | np.integer) or ncols < 1:
            raise ConfigError(f"ncols must be a positive integer; received {ncols!r}")
        ncols = min(int(ncols), len(arr))
        nrows = -(-len(arr) // ncols)
    if row_labels is not None and len(row_labels) != nrows:
        raise ShapeError(f"row_labels must hold one label per row: {len(row_labels)} labels for {nrows} rows")
    fig = Figure(figsize=(_CELL_IN * ncols, _CELL_IN * nrows + (0.5 if title else 0.1)), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        _bare(ax)
        if i < len(arr):
            ax.imshow(arr[i])
    if row_labels is not None:
        for r, label in enumerate(row_labels):
            axes[r, 0].set_ylabel(str(label), fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def project_2d(
    latents: Any, *, method: ProjectionMethod = "auto", seed: int = 0
) -> tuple[np.ndarray, str]:
    """2-D coordinates of latents for a map.

    Parameters
    ----------
    latents : ``[N, d]``, ``N >= 2``, ``d >= 2``.
    method : ``"umap"`` (needs ``pip install 'pathgan[umap]'``), ``"pca"``, or ``"auto"``: UMAP when
        umap-learn is installed and there are at least 16 latents, else PCA.
    seed : random state of UMAP (PCA is deterministic).

    Returns
    -------
    ``(coords, method_used)``: float32 ``[N, 2]`` and ``"umap"`` or ``"pca"``.

    Raises
    ------
    ConfigError
        Unknown ``method``, or ``"umap"`` without umap-learn installed.
    ShapeError
        ``latents`` is not ``[N, d]`` with ``N, d >= 2``.
    """
    if method not in ("auto", "umap", "pca"):
        raise ConfigError(f"method must be 'auto', 'umap' or 'pca'; received {method!r}")
    x = as_array(latents, "latents")
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 2:
        raise ShapeError(f"latents must be [N, d] with N >= 2 and d >= 2; received shape {list(x.shape)}")
    has_umap = importlib.util.find_spec("umap") is not None
    if method == "umap" and not has_umap:
        raise ConfigError("method='umap' needs umap-learn: pip install 'pathgan[umap]' (or use method='pca')")
    use_umap = method == "umap" or (method == "auto" and has_umap and len(x) >= _UMAP_MIN_POINTS)
    if use_umap:
        import umap

        coords = umap.UMAP(n_components=2, random_state=seed).fit_transform(x)
        return np.asarray(coords, np.float32), "umap"
    from sklearn.decomposition import PCA

    # "full" is exact LAPACK SVD; sklearn's "auto" may pick the randomized solver.
    coords = PCA(n_components=2, svd_solver="full").fit_transform(x)
    return np.asarray(coords, np.float32), "pca"


def _label_order(labels: Sequence[Any]) -> list[Any]:
    uniq = list(dict.fromkeys(labels))  # first-appearance order
    try:
        return sorted(uniq)
    except TypeError:  # mixed types (e.g. ints and strings) keep first-appearance order
        return uniq


def projection_plot(coords: Any, labels: Sequence[Any] | None, *, title: str | None = None) -> Figure:
    """Scatter of 2-D coordinates coloured by a categorical label, with a legend.

    Parameters
    ----------
    coords : ``[N, 2]``, e.g. from :func:`project_2d`.
    labels : ``N`` categorical labels (strings or ints: slide ids, classes, quantile groups), or
        None for one colour and no legend.
    title : axes title.

    Raises
    ------
    ShapeError
        ``coords`` is not ``[N, 2]`` or ``labels`` has another length.
    """
    xy = as_array(coords, "coords")
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ShapeError(f"coords must be [N, 2]; received shape {list(xy.shape)}")
    fig = Figure(figsize=(6.0, 5.0), layout="constrained")
    ax = fig.subplots()
    size = float(np.clip(2000 / max(len(xy), 1), 2, 30))  # smaller dots for bigger clouds
    if labels is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=size, alpha=0.7, linewidths=0)
    else:
        labs = [x.item() if isinstance(x, np.generic) else x for x in labels]
        if len(labs) != len(xy):
            raise ShapeError(f"labels must hold one label per point: {len(labs)} labels for {len(xy)} points")
        order = _label_order(labs)
        n = len(order)
        if n <= 20:  # qualitative palettes; integer input indexes their colours directly
            colours = colormaps["tab10" if n <= 10 else "tab20"](np.arange(n))
        else:
            colours = colormaps["turbo"](np.linspace(0.0, 1.0, n))
        lab_arr = np.empty(len(labs), dtype=object)
        lab_arr[:] = labs
        for i, lab in enumerate(order):
            sel = lab_arr == lab
            ax.scatter(xy[sel, 0], xy[sel, 1], s=size, alpha=0.7, linewidths=0, color=colours[i], label=str(lab))
        ax.legend(markerscale=max(1.0, 30 / size) ** 0.5, fontsize=8, loc="best", frameon=False,
                  ncols=1 if len(order) <= 12 else 2)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    return fig
