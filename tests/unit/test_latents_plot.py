"""Latent figures: axes and image counts, PCA against numpy SVD, the UMAP switch."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
from matplotlib.figure import Figure

from pathgan.errors import ConfigError, ShapeError
from pathgan.latents import _plot
from pathgan.latents._plot import grid, project_2d, projection_plot, strip

RNG = np.random.default_rng(0)


def _images(n: int, px: int = 6) -> np.ndarray:
    return RNG.integers(0, 256, size=(n, px, px, 3), dtype=np.uint8)


def _n_images(fig: Figure) -> int:
    return sum(len(ax.images) for ax in fig.axes)


def test_strip_one_row_with_labels() -> None:
    fig = strip(_images(5), labels=[-2, -1, 0, 1, 2], title="walk")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 5 and _n_images(fig) == 5
    assert [ax.get_title() for ax in fig.axes] == ["-2", "-1", "0", "1", "2"]
    assert fig.get_suptitle() == "walk"
    with pytest.raises(ShapeError, match="3 labels for 5 images"):
        strip(_images(5), labels=[1, 2, 3])


def test_strip_shows_the_given_pixels() -> None:
    imgs = _images(3)
    fig = strip(imgs)
    for ax, img in zip(fig.axes, imgs, strict=True):
        np.testing.assert_array_equal(np.asarray(ax.images[0].get_array()), img)


def test_grid_fills_rows_and_leaves_blank_cells() -> None:
    fig = grid(_images(10), ncols=4, row_labels=["a", "b", "c"], title="t")
    assert len(fig.axes) == 12 and _n_images(fig) == 10
    assert [fig.axes[i].get_ylabel() for i in (0, 4, 8)] == ["a", "b", "c"]
    fig5 = grid(_images(6).reshape(2, 3, 6, 6, 3))  # [rows, cols, H, W, 3]
    assert len(fig5.axes) == 6 and _n_images(fig5) == 6
    assert len(grid(_images(3), ncols=8).axes) == 3  # never wider than the images
    with pytest.raises(ShapeError, match="2 labels for 3 rows"):
        grid(_images(10), ncols=4, row_labels=["a", "b"])
    with pytest.raises(ConfigError, match="ncols"):
        grid(_images(3), ncols=0)
    with pytest.raises(ShapeError, match=r"\[4, 6, 6\]"):
        grid(np.zeros((4, 6, 6), np.uint8))


def test_figures_do_not_touch_pyplot() -> None:
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    strip(_images(2))
    grid(_images(2))
    projection_plot(RNG.normal(size=(5, 2)), ["a"] * 5)
    assert plt.get_fignums() == before


def test_pca_projection_matches_numpy_svd_up_to_sign() -> None:
    x = RNG.normal(size=(40, 12)) * np.linspace(3, 0.1, 12)  # distinct variances: a stable top-2
    coords, used = project_2d(x.astype(np.float32), method="pca")
    assert used == "pca" and coords.shape == (40, 2) and coords.dtype == np.float32
    xc = x - x.mean(axis=0)
    u, s, _ = np.linalg.svd(xc, full_matrices=False)
    ref = u[:, :2] * s[:2]
    for j in range(2):
        sign = np.sign(coords[:, j] @ ref[:, j])
        np.testing.assert_allclose(coords[:, j], sign * ref[:, j], rtol=1e-3, atol=1e-3)


def test_auto_without_umap_uses_pca_and_explicit_umap_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_plot.importlib.util, "find_spec", lambda name: None)
    coords, used = project_2d(RNG.normal(size=(30, 4)))
    assert used == "pca" and coords.shape == (30, 2)
    with pytest.raises(ConfigError, match=r"pip install 'pathgan\[umap\]'"):
        project_2d(RNG.normal(size=(30, 4)), method="umap")
    with pytest.raises(ConfigError, match="'tsne'"):
        project_2d(RNG.normal(size=(30, 4)), method="tsne")  # type: ignore[arg-type]
    with pytest.raises(ShapeError, match="N >= 2"):
        project_2d(RNG.normal(size=(1, 4)), method="pca")


def test_auto_with_umap_installed_calls_it_with_the_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, object]] = []

    class FakeUMAP:
        def __init__(self, **kw: object) -> None:
            calls.append(kw)

        def fit_transform(self, x: np.ndarray) -> np.ndarray:
            return np.asarray(x)[:, :2] + 100.0

    monkeypatch.setitem(sys.modules, "umap", types.SimpleNamespace(UMAP=FakeUMAP))
    monkeypatch.setattr(_plot.importlib.util, "find_spec", lambda name: object())
    x = RNG.normal(size=(20, 5))
    coords, used = project_2d(x, seed=7)
    assert used == "umap" and calls == [{"n_components": 2, "random_state": 7}]
    np.testing.assert_allclose(coords, x[:, :2] + 100.0, rtol=1e-6)
    _, used_small = project_2d(x[:5])  # too few points for UMAP's neighbourhoods
    assert used_small == "pca"


def test_projection_plot_one_collection_per_label_with_legend() -> None:
    xy = RNG.normal(size=(30, 2))
    labels = ["stroma", "tumour", "lymph"] * 10
    fig = projection_plot(xy, labels, title="latent map")
    (ax,) = fig.axes
    assert len(ax.collections) == 3
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["lymph", "stroma", "tumour"]
    lymph = ax.collections[0].get_offsets()
    np.testing.assert_allclose(np.asarray(lymph), xy[2::3])
    assert ax.get_title() == "latent map"
    ints = projection_plot(xy, np.arange(30) % 4)
    assert [t.get_text() for t in ints.axes[0].get_legend().get_texts()] == ["0", "1", "2", "3"]
    many = projection_plot(xy, [str(i) for i in range(30)])
    assert len(many.axes[0].collections) == 30
    nolab = projection_plot(xy, None)
    assert len(nolab.axes[0].collections) == 1 and nolab.axes[0].get_legend() is None
    with pytest.raises(ShapeError, match="29 labels for 30 points"):
        projection_plot(xy, labels[:29])
    with pytest.raises(ShapeError, match=r"\[N, 2\]"):
        projection_plot(RNG.normal(size=(5, 3)), ["a"] * 5)
