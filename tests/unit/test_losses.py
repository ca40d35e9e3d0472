"""Unit tests of pathgan.train.losses against hand computations and independent references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from pathgan.errors import ConfigError
from pathgan.train.losses import (
    d_loss,
    g_loss,
    gradient_penalty,
    is_finite,
    orthogonal_regularizer,
)

REAL = torch.tensor([2.0, 0.0], dtype=torch.float64)
FAKE = torch.tensor([1.0, -1.0], dtype=torch.float64)


def _nll_real(z: float) -> float:
    """-log(sigmoid(z)), written from the definition."""
    return -math.log(1.0 / (1.0 + math.exp(-z)))


def _nll_fake(z: float) -> float:
    """-log(1 - sigmoid(z)), written from the definition."""
    return -math.log(1.0 - 1.0 / (1.0 + math.exp(-z)))


# ---------------------------------------------------------------- adversarial losses


def test_relativistic_matches_hand_computation() -> None:
    mean_r, mean_f = 1.0, 0.0  # of [2, 0] and [1, -1]
    d_hand = np.mean([_nll_real(r - mean_f) for r in (2.0, 0.0)]) + np.mean(
        [_nll_fake(f - mean_r) for f in (1.0, -1.0)]
    )
    g_hand = np.mean([_nll_real(f - mean_r) for f in (1.0, -1.0)]) + np.mean(
        [_nll_fake(r - mean_f) for r in (2.0, 0.0)]
    )
    # closed forms for these logits: D = log(1 + e^-2) + log 2, G = log 2 + log(1 + e^-2) + ...
    assert d_hand == pytest.approx(math.log(1 + math.exp(-2)) + math.log(2))
    assert float(d_loss("relativistic", REAL, FAKE)) == pytest.approx(d_hand, abs=1e-12)
    assert float(g_loss("relativistic", REAL, FAKE)) == pytest.approx(g_hand, abs=1e-12)


def test_relativistic_is_stable_for_huge_logits() -> None:
    real = torch.tensor([1e4, -1e4])
    fake = torch.tensor([-1e4, 1e4])
    for fn in (d_loss, g_loss):
        value = fn("relativistic", real, fake)
        assert is_finite(value)
        value_grad = torch.tensor([1e4, -1e4], requires_grad=True)
        fn("relativistic", value_grad, fake).backward()
        assert value_grad.grad is not None and is_finite(value_grad.grad)


@pytest.mark.parametrize(
    ("kind", "d_hand", "g_hand"),
    [
        # hinge: D = mean(relu(1 - r)) + mean(relu(1 + f)) = mean(0, 1) + mean(2, 0); G = -mean(f)
        ("hinge", 0.5 + 1.0, 0.0),
        # non-saturating: D = mean(softplus(-r)) + mean(softplus(f)); G = mean(softplus(-f))
        (
            "nonsaturating",
            (math.log1p(math.exp(-2)) + math.log(2)) / 2 + (math.log1p(math.e) + math.log1p(math.exp(-1))) / 2,
            (math.log1p(math.exp(-1)) + math.log1p(math.e)) / 2,
        ),
        # wgan: D = mean(f) - mean(r) = 0 - 1; G = -mean(f) = 0
        ("wgan", -1.0, 0.0),
    ],
)
def test_other_losses_on_known_logits(kind: str, d_hand: float, g_hand: float) -> None:
    assert float(d_loss(kind, REAL, FAKE)) == pytest.approx(d_hand, abs=1e-12)  # type: ignore[arg-type]
    assert float(g_loss(kind, REAL, FAKE)) == pytest.approx(g_hand, abs=1e-12)  # type: ignore[arg-type]


def test_hinge_generator_uses_fake_logits_only() -> None:
    fake = torch.tensor([3.0, 1.0])
    assert float(g_loss("hinge", torch.zeros(2), fake)) == pytest.approx(-2.0)
    assert float(g_loss("wgan", torch.full((2,), 9.0), fake)) == pytest.approx(-2.0)


def test_column_logits_equal_flat_logits() -> None:
    for kind in ("relativistic", "hinge", "nonsaturating", "wgan"):
        flat = d_loss(kind, REAL, FAKE)  # type: ignore[arg-type]
        col = d_loss(kind, REAL[:, None], FAKE[:, None])  # type: ignore[arg-type]
        assert torch.equal(flat, col)


def test_bad_kind_and_shapes_are_rejected() -> None:
    with pytest.raises(ConfigError, match="'relativistic gradient penalty'"):
        d_loss("relativistic gradient penalty", REAL, FAKE)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\[N\], \[N, 1\] or \[N, 1 \+ K\]"):
        g_loss("hinge", REAL, torch.zeros(2, 2))


def test_patch_heads_are_two_terms_of_equal_weight() -> None:
    """[N, 1 + K] logits: the loss of the global column plus the loss of the K patch columns pooled,
    each computed as for plain logits (hand-built from the single-head losses)."""
    torch.manual_seed(0)
    real, fake = torch.randn(4, 1 + 9), torch.randn(4, 1 + 9)
    for kind in ("hinge", "nonsaturating", "relativistic", "wgan"):
        want_d = d_loss(kind, real[:, 0], fake[:, 0]) + d_loss(kind, real[:, 1:].reshape(-1), fake[:, 1:].reshape(-1))
        want_g = g_loss(kind, real[:, 0], fake[:, 0]) + g_loss(kind, real[:, 1:].reshape(-1), fake[:, 1:].reshape(-1))
        torch.testing.assert_close(d_loss(kind, real, fake), want_d)
        torch.testing.assert_close(g_loss(kind, real, fake), want_g)
    # hinge by hand for the patch term: mean over all N * K patch verdicts
    hand = torch.relu(1 - real[:, 1:]).mean() + torch.relu(1 + fake[:, 1:]).mean()
    torch.testing.assert_close(d_loss("hinge", real, fake) - d_loss("hinge", real[:, 0], fake[:, 0]), hand)


# ---------------------------------------------------------------- gradient penalty


def _small_conv_d() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(4, 4, 3, stride=2),
        nn.LeakyReLU(0.2),
        nn.Flatten(),
        nn.LazyLinear(1),
    ).double()


def _per_sample_reference(d: nn.Module, x_hat: Tensor) -> float:
    """One autograd call per single-sample batch, numpy norms: independent of batching."""
    penalties = []
    for i in range(x_hat.shape[0]):
        xi = x_hat[i : i + 1].detach().clone().requires_grad_(True)
        (gi,) = torch.autograd.grad(d(xi).sum(), xi)
        penalties.append((np.linalg.norm(gi.numpy().ravel()) - 1.0) ** 2)
    return float(np.mean(penalties))


def _reference_buggy_gp(d: nn.Module, x_hat: Tensor) -> float:
    """PathologyGAN's reduction, for contrast only: one norm per colour channel taken over the
    whole batch (N, H, W), and the channel penalties summed."""
    x = x_hat.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(d(x).sum(), x)
    per_channel = np.sqrt((g.numpy() ** 2).sum(axis=(0, 2, 3)))  # [C]
    return float(((per_channel - 1.0) ** 2).sum())


def test_gp_equals_per_sample_reference_when_real_equals_fake() -> None:
    d = _small_conv_d()
    x = torch.rand(5, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    d(x)  # materialise the lazy layer
    # real == fake makes every interpolate equal x, whatever eps is drawn.
    gp = gradient_penalty(d, x, x.clone(), generator=torch.Generator().manual_seed(2))
    assert gp.item() == pytest.approx(_per_sample_reference(d, x), rel=1e-10)


def test_gp_interpolates_per_sample_with_documented_eps() -> None:
    d = _small_conv_d()
    g = torch.Generator().manual_seed(3)
    real = torch.rand(4, 3, 8, 8, dtype=torch.float64, generator=g)
    fake = torch.rand(4, 3, 8, 8, dtype=torch.float64, generator=g)
    d(real)
    # the docstring promises eps = torch.rand(N, generator=generator)
    eps = torch.rand(4, generator=torch.Generator().manual_seed(7)).double().view(4, 1, 1, 1)
    x_hat = eps * real + (1 - eps) * fake
    gp = gradient_penalty(d, real, fake, generator=torch.Generator().manual_seed(7))
    assert gp.item() == pytest.approx(_per_sample_reference(d, x_hat), rel=1e-10)


class _LinearD(nn.Module):
    """D(x) = <a, x>: its input gradient is a for every sample, so GP = (||a|| - 1)^2 exactly."""

    def __init__(self, a: Tensor) -> None:
        super().__init__()
        self.a = nn.Parameter(a)

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(1) @ self.a


def test_gp_closed_form_for_linear_d_and_differs_from_reference_bug() -> None:
    a = torch.full((3 * 4 * 4,), 0.5, dtype=torch.float64)  # ||a|| = 0.5 * sqrt(48)
    d = _LinearD(a)
    g = torch.Generator().manual_seed(4)
    real = torch.rand(6, 3, 4, 4, dtype=torch.float64, generator=g)
    fake = torch.rand(6, 3, 4, 4, dtype=torch.float64, generator=g)
    gp = gradient_penalty(d, real, fake, generator=g)
    norm_a = 0.5 * math.sqrt(48)
    assert gp.item() == pytest.approx((norm_a - 1.0) ** 2, rel=1e-12)

    # the reference's reduction: per channel ||a_c|| * sqrt(N) = 0.5 * 4 * sqrt(6), summed over 3
    buggy = _reference_buggy_gp(d, real)
    assert buggy == pytest.approx(3 * (0.5 * 4 * math.sqrt(6) - 1.0) ** 2, rel=1e-12)
    assert abs(buggy - gp.item()) > 1.0


def test_gp_trains_the_discriminator() -> None:
    # Closed form for the linear D: d/da (||a|| - 1)^2 = 2 (||a|| - 1) a / ||a||.
    a = torch.tensor([3.0, 0.0, 4.0, 0.0], dtype=torch.float64)  # ||a|| = 5
    d = _LinearD(a.clone())
    real = torch.rand(3, 1, 2, 2, dtype=torch.float64)
    gp = gradient_penalty(d, real, torch.zeros_like(real))
    gp.backward()
    assert d.a.grad is not None
    torch.testing.assert_close(d.a.grad, 2 * (5.0 - 1.0) * a / 5.0)

    conv = _small_conv_d()
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    conv(x)
    gradient_penalty(conv, x, torch.rand_like(x)).backward()
    # every weight gets a gradient; the last bias cannot (it does not change dD/dx)
    weights = [m.weight for m in conv if isinstance(m, nn.Conv2d | nn.Linear)]
    assert len(weights) == 3
    assert all(w.grad is not None and float(w.grad.abs().sum()) > 0 for w in weights)


def test_gp_is_reproducible_and_checks_shapes() -> None:
    d = _small_conv_d()
    real, fake = torch.rand(3, 3, 8, 8).double(), torch.rand(3, 3, 8, 8).double()
    d(real)
    a = gradient_penalty(d, real, fake, generator=torch.Generator().manual_seed(0))
    b = gradient_penalty(d, real, fake, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="real and fake"):
        gradient_penalty(d, real, fake[:2])


# ---------------------------------------------------------------- orthogonal regulariser


def _numpy_ortho(weights: list[np.ndarray]) -> float:
    total = 0.0
    for w in weights:
        m = w.reshape(w.shape[0], -1)
        gram = m @ m.T
        total += float(((gram - np.diag(np.diag(gram))) ** 2).sum())
    return total


def test_ortho_is_zero_for_orthogonal_weights() -> None:
    layer = nn.Linear(16, 16, bias=False).double()
    nn.init.orthogonal_(layer.weight)
    assert orthogonal_regularizer(layer).item() == pytest.approx(0.0, abs=1e-12)
    nn.init.normal_(layer.weight)
    assert orthogonal_regularizer(layer).item() > 1.0


def test_ortho_matches_numpy_and_reads_spectral_norm_original() -> None:
    torch.manual_seed(0)
    conv, sn_linear, deconv = nn.Conv2d(3, 5, 3), spectral_norm(nn.Linear(7, 4)), nn.ConvTranspose2d(4, 2, 2)
    # LayerNorm has a weight but is not a conv/linear layer: it must not count
    model = nn.Sequential(conv, nn.ReLU(), sn_linear, deconv, nn.LayerNorm(4)).double()
    sn_original: Tensor = sn_linear.parametrizations.weight.original  # type: ignore[union-attr,assignment]
    weights = [conv.weight, sn_original, deconv.weight]
    expected = _numpy_ortho([w.detach().numpy() for w in weights])
    value = orthogonal_regularizer(model)
    assert value.item() == pytest.approx(expected, rel=1e-10)
    # differentiable w.r.t. the parameter the optimiser steps (not the normalised weight)
    value.backward()
    assert sn_original.grad is not None and float(sn_original.grad.abs().sum()) > 0


def test_ortho_without_layers_is_zero() -> None:
    assert float(orthogonal_regularizer(nn.ReLU())) == 0.0


def test_is_finite() -> None:
    assert is_finite(torch.tensor([1.0, -2.0]))
    assert not is_finite(torch.tensor([1.0, float("nan")]))
    assert not is_finite(torch.tensor(float("inf")))
