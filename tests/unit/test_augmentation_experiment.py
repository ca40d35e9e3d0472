"""The augmentation experiment's pieces (pipelines/augmentation_experiment/experiment.py)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "pipelines" / "augmentation_experiment"))

import experiment as X


def test_density_labels_take_the_tails() -> None:
    d = np.arange(10, dtype=float)  # quantiles 0.3 / 0.7 of 0..9 are 2.7 and 6.3
    lab = X.density_labels(d, 0.3)
    assert list(lab) == ["sparse"] * 3 + [""] * 4 + ["dense"] * 3
    assert set(X.density_labels(d, 0.5)) == {"sparse", "dense"}  # the median split labels everything


def test_checkerboard_regions_never_let_train_and_test_pixels_meet() -> None:
    rng = np.random.default_rng(0)
    coords = rng.integers(0, 1000, size=(400, 2))
    f, block = 64.0, 200
    region = X.checkerboard_regions(coords, f, block)
    # Independent definition: a patch is inside square (i, j) iff it starts and ends in it.
    for (x, y), r in zip(coords, region, strict=True):
        i0, j0, i1, j1 = x // block, y // block, (x + 63) // block, (y + 63) // block
        if (i0, j0) != (i1, j1):
            assert r == -1
        else:
            assert r == (i0 + j0) % 2
    train, test = coords[region == 0], coords[region == 1]
    assert len(train) and len(test)
    # No train rectangle overlaps a test rectangle.
    dx = np.abs(train[:, None, 0] - test[None, :, 0])
    dy = np.abs(train[:, None, 1] - test[None, :, 1])
    assert not np.any((dx < f) & (dy < f))


def test_nested_subsets_are_nested_balanced_and_from_the_training_region() -> None:
    rng = np.random.default_rng(1)
    labels = rng.choice(np.array(["dense", "sparse", ""], dtype=object), size=500)
    region = rng.integers(-1, 2, size=500)
    sub = X.nested_subsets(labels, region, (5, 20, 40), seed=3)
    assert set(sub[5]) <= set(sub[20]) <= set(sub[40])
    for n, idx in sub.items():
        assert np.all(region[idx] == 0)
        assert sorted(labels[idx]).count("dense") == n and sorted(labels[idx]).count("sparse") == n
    with pytest.raises(ValueError, match="only"):
        X.nested_subsets(labels, region, (10_000,), seed=0)


def test_small_cnn_learns_separable_colours() -> None:
    rng = np.random.default_rng(0)

    def draw(n: int, colour: tuple[int, int, int]) -> np.ndarray:
        return np.clip(rng.normal(colour, 25, size=(n, 32, 32, 3)), 0, 255).astype(np.uint8)

    x = np.concatenate([draw(40, (120, 60, 150)), draw(40, (230, 180, 210))])
    y = np.repeat([0, 1], 40)
    cfg = X.ExperimentConfig(image_px=28, cnn_steps=60, cnn_batch=16)
    model = X.train_cnn(x, y, cfg=cfg, seed=0)
    xt = np.concatenate([draw(50, (120, 60, 150)), draw(50, (230, 180, 210))])
    m = X.metrics(X.predict(model, xt, 28), np.repeat([0, 1], 50))
    assert m["balanced_accuracy"] > 0.95 and m["auc"] > 0.99


def test_metrics_by_hand() -> None:
    p = np.array([0.9, 0.8, 0.3, 0.6, 0.1, 0.2])  # P(dense)
    y = np.array([0, 0, 0, 1, 1, 1])  # 0 = dense
    m = X.metrics(p, y)
    assert m["sensitivity"] == pytest.approx(2 / 3) and m["specificity"] == pytest.approx(2 / 3)
    assert m["accuracy"] == pytest.approx(4 / 6) and m["balanced_accuracy"] == pytest.approx(2 / 3)
    assert m["auc"] == pytest.approx(8 / 9)  # 8 of the 9 (dense, sparse) pairs are ordered


def test_summary_paired_difference_and_t_test_by_hand() -> None:
    rows = []
    for seed, (a, b) in enumerate([(0.5, 0.6), (0.6, 0.6), (0.7, 0.9)]):
        rows.append({"n_per_class": 10, "arm": "real", "seed": seed, "balanced_accuracy": a})
        rows.append({"n_per_class": 10, "arm": "real+synthetic", "seed": seed, "balanced_accuracy": b})
    (entry,) = X.summarise(rows, ("balanced_accuracy",))
    m = entry["balanced_accuracy"]
    assert m["real"] == pytest.approx((0.6, 0.1))
    assert m["difference"] == pytest.approx((0.1, 0.1))
    # t = 0.1 / (0.1 / sqrt 3) = sqrt 3 with 2 df; Student's t with 2 df has cdf 1/2 + t / (2 sqrt(2 + t^2)).
    t = math.sqrt(3)
    assert m["p_paired_t"] == pytest.approx(2 * (0.5 - t / (2 * math.sqrt(2 + t * t))), rel=1e-6)
    assert "| 10 | 0.600 +- 0.100 | 0.700 +- 0.173 | +0.100 +- 0.100 | 0.23 |" in X.markdown_table([entry])
