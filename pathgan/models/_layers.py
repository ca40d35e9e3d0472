"""Building blocks shared by the mapping network, generator and discriminator.

Every conv / linear weight is orthogonally initialised with a zero bias (as in the reference) and,
unless stated otherwise, wrapped in spectral normalisation
(:func:`torch.nn.utils.parametrizations.spectral_norm`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from pathgan.errors import ShapeError

__all__ = [
    "LRELU_SLOPE",
    "AdaIN",
    "NoiseInjection",
    "SelfAttention",
    "check_shape",
    "conv2d",
    "conv_transpose2d",
    "linear",
]

LRELU_SLOPE = 0.2
"""Negative slope of every LeakyReLU in G and D (the reference's 0.2)."""

_ADAIN_HEAD_GAIN = 1.0
"""Orthogonal-init gain of the AdaIN gamma/beta heads (gamma = 1 + delta). A small gain (0.1) made
AdaIN start as a plain instance norm, and the generator then learned to ignore w: on the real
56-px tiles, after 400 CPU steps the spread of samples across z was 0.03 (real patches: 0.17) with
gain 0.1 and 0.08 with gain 1.0."""

_NORM_EPS = 1e-5


def check_shape(x: torch.Tensor, shape: Sequence[int | None], name: str) -> None:
    """Raise :class:`ShapeError` (a ``ValueError``) unless ``x.shape`` matches ``shape`` (``None`` = any)."""
    if x.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, x.shape, strict=True)):
        want = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
        raise ShapeError(f"{name}: expected shape {want}, got {list(x.shape)}")


def _init(module: nn.Linear | nn.Conv2d | nn.ConvTranspose2d, gain: float = 1.0) -> None:
    nn.init.orthogonal_(module.weight, gain=gain)
    if module.bias is not None:
        nn.init.zeros_(module.bias)


def linear(in_features: int, out_features: int, *, sn: bool = True, gain: float = 1.0) -> nn.Module:
    """Orthogonally initialised ``nn.Linear`` ([N, in] -> [N, out]), spectrally normalised if ``sn``."""
    layer = nn.Linear(in_features, out_features)
    _init(layer, gain)
    return spectral_norm(layer) if sn else layer


def conv2d(in_channels: int, out_channels: int, kernel: int, *, stride: int = 1, sn: bool = True) -> nn.Module:
    """Orthogonally initialised ``nn.Conv2d`` with "same"-style padding ``(kernel - 1) // 2``
    for odd kernels and ``1`` for the 4x4 stride-2 downscale (exact halving of even sizes)."""
    padding = (kernel - 1) // 2 if kernel % 2 else kernel // 2 - 1
    layer = nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=padding)
    _init(layer)
    return spectral_norm(layer) if sn else layer


def conv_transpose2d(in_channels: int, out_channels: int, *, sn: bool = True) -> nn.Module:
    """2x upscale: 2x2 stride-2 transposed conv, [N, in, H, W] -> [N, out, 2H, 2W].

    A 2x2 kernel at stride 2 touches each output pixel exactly once (no checkerboard overlap)
    and is the size that reproduces the reference's parameter count.
    """
    layer = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2)
    _init(layer)
    return spectral_norm(layer) if sn else layer


class NoiseInjection(nn.Module):
    """Add per-channel scaled N(0, 1) noise: ``x + scale[c] * n``, one noise map [N, 1, H, W].

    The scale starts at 0 (as in StyleGAN): the network starts deterministic and learns how much
    stochastic detail to use; the gradient w.r.t. the scale is non-zero from the first step.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.zeros(channels))

    def forward(
        self, x: torch.Tensor, *, enabled: bool = True, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``x`` [N, C, H, W] -> [N, C, H, W]. ``generator`` must live on ``x.device``."""
        if not enabled:
            return x
        n, _, h, w = x.shape
        noise = torch.randn((n, 1, h, w), generator=generator, device=x.device, dtype=x.dtype)
        return x + self.scale.view(1, -1, 1, 1) * noise


class AdaIN(nn.Module):
    """Conditional instance norm: ``gamma(w) * normalise(x) + beta(w)``.

    ``[N, C, H, W]`` inputs are normalised per sample and channel over (H, W); flat ``[N, C]``
    dense outputs per sample over the feature axis. gamma and beta come from an MLP of w:
    ``linear(w_dim -> inter) + ReLU`` then two heads ``inter -> C``, ``inter = (C + w_dim) // 2``
    as in the reference (this MLP holds most of the generator's parameters).

    The hidden layer is spectrally normalised; the two heads are not, because spectral norm is
    invariant to the weight scale and would undo the chosen init scale of gamma = 1 + delta and beta.
    """

    def __init__(self, channels: int, w_dim: int) -> None:
        super().__init__()
        self.channels = channels
        self.w_dim = w_dim
        inter = (channels + w_dim) // 2
        self.hidden = linear(w_dim, inter)
        self.to_gamma = linear(inter, channels, sn=False, gain=_ADAIN_HEAD_GAIN)
        self.to_beta = linear(inter, channels, sn=False, gain=_ADAIN_HEAD_GAIN)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """``x`` [N, C, H, W] or [N, C], ``w`` [N, w_dim] -> same shape as ``x``."""
        check_shape(w, (x.shape[0], self.w_dim), "AdaIN w")
        if x.ndim == 4:
            check_shape(x, (None, self.channels, None, None), "AdaIN x")
            dims: tuple[int, ...] = (2, 3)
        else:
            check_shape(x, (None, self.channels), "AdaIN x")
            dims = (1,)
        mean = x.mean(dim=dims, keepdim=True)
        var = x.var(dim=dims, keepdim=True, unbiased=False)
        x = (x - mean) * torch.rsqrt(var + _NORM_EPS)
        h = F.relu(self.hidden(w))
        gamma = 1.0 + self.to_gamma(h)
        beta = self.to_beta(h)
        if x.ndim == 4:
            gamma = gamma[:, :, None, None]
            beta = beta[:, :, None, None]
        return gamma * x + beta


class SelfAttention(nn.Module):
    """SAGAN self-attention: ``x + gamma * attention(x)``, [N, C, H, W] -> [N, C, H, W].

    Query and key have ``max(C // 8, 1)`` channels, value ``C``; dot products are not scaled
    (as in SAGAN). ``gamma`` starts at 0, so the block is the identity at init.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        qk = max(channels // 8, 1)
        self.channels = channels
        self.query = conv2d(channels, qk, 1)
        self.key = conv2d(channels, qk, 1)
        self.value = conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_shape(x, (None, self.channels, None, None), "SelfAttention x")
        n, c, h, w = x.shape
        q = self.query(x).flatten(2)  # [N, C', HW]
        k = self.key(x).flatten(2)  # [N, C', HW]
        v = self.value(x).flatten(2)  # [N, C, HW]
        # Plain bmm + softmax rather than F.scaled_dot_product_attention: the gradient penalty
        # differentiates D twice, and the fused SDPA kernels have no double backward.
        attn = torch.softmax(torch.bmm(q.transpose(1, 2), k), dim=-1)  # [N, HW (query), HW (key)]
        o = torch.bmm(v, attn.transpose(1, 2)).view(n, c, h, w)
        return x + self.gamma * o
