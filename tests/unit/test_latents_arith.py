"""pathgan.latents arithmetic against hand computations: lerp, slerp, directions, walks, projections."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pathgan.errors import ConfigError, ShapeError
from pathgan.latents._arith import (
    arithmetic,
    direction,
    interpolate,
    labels_by_quantile,
    lerp,
    project_out,
    slerp,
    walk,
)

RNG = np.random.default_rng(0)


def _angle(u: np.ndarray, v: np.ndarray) -> float:
    """Independent reference: the angle between two vectors, by arccos of the cosine."""
    u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
    return float(np.arccos(np.clip(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)), -1, 1)))


def test_lerp_endpoints_exact_and_equal_steps() -> None:
    a, b = RNG.normal(size=16).astype(np.float32), RNG.normal(size=16).astype(np.float32)
    out = lerp(a, b, 5)
    assert out.shape == (5, 16) and out.dtype == np.float32
    assert np.array_equal(out[0], a) and np.array_equal(out[-1], b)
    np.testing.assert_allclose(out[2], (a + b) / 2, atol=1e-6)
    np.testing.assert_allclose(np.diff(out, axis=0), np.tile((b - a) / 4, (4, 1)), atol=1e-6)


def test_slerp_equal_norms_keeps_norm_and_equal_angles() -> None:
    d = 64
    a = RNG.normal(size=d)
    b = RNG.normal(size=d)
    b = b / np.linalg.norm(b) * np.linalg.norm(a)  # equal norms
    out = slerp(a.astype(np.float32), b.astype(np.float32), 9)
    assert out.shape == (9, d)
    assert np.array_equal(out[0], a.astype(np.float32)) and np.array_equal(out[-1], b.astype(np.float32))
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), np.linalg.norm(a), rtol=1e-5)
    theta = _angle(a, b)
    steps = [_angle(out[i], out[i + 1]) for i in range(8)]
    np.testing.assert_allclose(steps, theta / 8, rtol=1e-3)
    # Every point stays in the plane of a and b: angle(a, p) + angle(p, b) == angle(a, b).
    for p in out:
        assert _angle(a, p) + _angle(p, b) == pytest.approx(theta, abs=1e-4)


def test_slerp_of_gaussian_z_keeps_the_shell_lerp_does_not() -> None:
    d = 200
    a, b = RNG.normal(size=d), RNG.normal(size=d)
    mid_s = slerp(a, b, 3)[1]
    mid_l = lerp(a, b, 3)[1]
    # Two independent N(0, I) samples are almost orthogonal: lerp's midpoint has norm ~ sqrt(d / 2).
    assert np.linalg.norm(mid_l) < 0.8 * np.sqrt(d)
    assert np.linalg.norm(mid_s) > 0.9 * np.sqrt(d)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_slerp_parallel_falls_back_to_lerp_without_nan(sign: float) -> None:
    a = RNG.normal(size=8)
    b = sign * 2.0 * a
    out = slerp(a, b, 4)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, lerp(a, b, 4), atol=1e-6)
    assert np.isfinite(slerp(np.zeros(8), a, 3)).all()


def test_interpolate_dispatches_by_space_and_accepts_torch() -> None:
    a, b = torch.randn(12, generator=torch.Generator().manual_seed(1)), torch.randn(12)
    np.testing.assert_array_equal(interpolate(a, b, 6, space="w"), lerp(a.numpy(), b.numpy(), 6))
    np.testing.assert_array_equal(interpolate(a, b, 6, space="z"), slerp(a.numpy(), b.numpy(), 6))
    assert interpolate(a, b).shape == (8, 12)
    with pytest.raises(ConfigError, match="'q'"):
        interpolate(a, b, space="q")  # type: ignore[arg-type]


@pytest.mark.parametrize("steps", [1, 0, -3, 2.5, True])
def test_steps_validated(steps: object) -> None:
    with pytest.raises(ConfigError, match="steps must be an integer >= 2"):
        lerp(np.zeros(3), np.ones(3), steps)  # type: ignore[arg-type]


def test_shapes_validated_with_received_shape_in_message() -> None:
    with pytest.raises(ShapeError, match=r"\[2, 3\]"):
        lerp(np.zeros((2, 3)), np.ones(3), 4)
    with pytest.raises(ShapeError, match="widths differ"):
        slerp(np.zeros(3), np.ones(4), 4)


def test_direction_is_difference_of_means() -> None:
    a, b = RNG.normal(size=(7, 10)), RNG.normal(loc=1.0, size=(5, 10))
    ref = a.sum(axis=0) / 7 - b.sum(axis=0) / 5  # hand mean
    np.testing.assert_allclose(direction(a, b), ref, rtol=1e-5, atol=1e-6)
    unit = direction(a, b, normalize=True)
    assert np.linalg.norm(unit) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(unit, ref / np.linalg.norm(ref), atol=1e-6)
    assert direction(a, b).dtype == np.float32


def test_direction_errors() -> None:
    with pytest.raises(ShapeError, match="empty"):
        direction(np.zeros((0, 4)), np.ones((3, 4)))
    with pytest.raises(ShapeError, match="widths differ"):
        direction(np.zeros((2, 4)), np.ones((3, 5)))
    with pytest.raises(ConfigError, match="same mean"):
        direction(np.ones((2, 4)), np.ones((3, 4)), normalize=True)


def test_arithmetic_reduces_sets_to_means() -> None:
    a, b, c = RNG.normal(size=(4, 6)), RNG.normal(size=6), RNG.normal(size=(3, 6))
    ref = a.mean(axis=0) - b + c.mean(axis=0)
    np.testing.assert_allclose(arithmetic(a, b, c), ref, atol=1e-6)
    assert arithmetic(b, b, c[0]).shape == (6,)
    np.testing.assert_allclose(arithmetic(b, b, c[0]), c[0], atol=1e-6)
    with pytest.raises(ShapeError, match="widths differ"):
        arithmetic(a, b, np.zeros(5))


def test_walk_shapes_and_values() -> None:
    w, d = RNG.normal(size=5), RNG.normal(size=5)
    alphas = [-2.0, 0.0, 0.5, 3.0]
    out = walk(w, d, alphas)
    assert out.shape == (4, 5)
    for i, al in enumerate(alphas):
        np.testing.assert_allclose(out[i], w + al * d, atol=1e-6)
    ws = RNG.normal(size=(3, 5))
    many = walk(ws, d, alphas)
    assert many.shape == (3, 4, 5)
    np.testing.assert_allclose(many[2, 3], ws[2] + 3.0 * d, atol=1e-6)
    with pytest.raises(ShapeError, match="widths differ"):
        walk(w, np.zeros(4), alphas)


def test_project_out_removes_only_that_component() -> None:
    x, d = RNG.normal(size=(6, 8)), RNG.normal(size=8)
    out = project_out(x, 3.0 * d)  # scale of the direction is irrelevant
    u = d / np.linalg.norm(d)
    np.testing.assert_allclose(out @ u, 0.0, atol=1e-5)
    # What is left differs from x only along d: the residual is parallel to d.
    resid = x - out
    np.testing.assert_allclose(resid, np.outer(x @ u, u), atol=1e-5)
    assert project_out(x[0], d).shape == (8,)
    with pytest.raises(ConfigError, match="zero"):
        project_out(x, np.zeros(8))


def test_labels_by_quantile_tertiles_and_nan() -> None:
    v = np.array([5.0, 1.0, 9.0, 3.0, np.nan, 7.0, 2.0, 8.0, 4.0, 6.0])
    low, high = labels_by_quantile(v)
    assert sorted(v[low]) == [1.0, 2.0, 3.0]
    assert sorted(v[high]) == [7.0, 8.0, 9.0]
    assert not (low & high).any() and not low[4] and not high[4]
    low, high = labels_by_quantile(v, q=(0.5, 0.5))
    assert not (low & high).any() and low.sum() + high.sum() == 9
    with pytest.raises(ConfigError, match="0 < q_low <= q_high < 1"):
        labels_by_quantile(v, q=(0.7, 0.3))
    with pytest.raises(ShapeError, match="1-D"):
        labels_by_quantile(np.zeros((2, 2)))
