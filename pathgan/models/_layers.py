"""Building blocks shared by the mapping network, generator and discriminator.

Two weight parametrisations (``ModelConfig.weights``):

* ``spectral`` (the reference): every conv / linear weight is orthogonally initialised with a zero
  bias and, unless stated otherwise, wrapped in spectral normalisation
  (:func:`torch.nn.utils.parametrizations.spectral_norm`).
* ``equalized`` (StyleGAN's equalized learning rate, Karras et al. 2018): weights are stored as
  N(0, 1) and scaled by ``1 / sqrt(fan_in)`` at every call, so Adam's per-parameter step moves every
  layer at the same relative speed; activations keep unit variance through LeakyReLU by a gain of
  sqrt(2) (:func:`lrelu`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from pathgan.errors import ShapeError

__all__ = [
    "LRELU_SLOPE",
    "AdaIN",
    "EqualizedConv2d",
    "EqualizedLinear",
    "ModulatedConv2d",
    "NoiseInjection",
    "SelfAttention",
    "StyledBatchNorm",
    "check_shape",
    "conv2d",
    "conv_transpose2d",
    "linear",
    "lrelu",
    "refresh_batch_stats",
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


def lrelu(x: torch.Tensor, equalized: bool = False) -> torch.Tensor:
    """LeakyReLU(0.2); with ``equalized`` times sqrt(2), which keeps unit-variance inputs at unit
    variance (He et al. 2015) when weights are not normalised by their init."""
    y = F.leaky_relu(x, LRELU_SLOPE)
    return y * _SQRT2 if equalized else y


_SQRT2 = 2.0**0.5


class EqualizedLinear(nn.Module):
    """``[N, in] -> [N, out]`` with equalized learning rate: ``x @ (W * lr_mul / sqrt(in)).T + b * lr_mul``.

    ``lr_mul`` < 1 slows this layer's learning relative to the rest (StyleGAN's mapping network uses
    0.01): the stored weight is ``1 / lr_mul`` larger, so Adam's steps are ``lr_mul`` smaller in effect.
    """

    def __init__(self, in_features: int, out_features: int, *, bias: bool = True, bias_init: float = 0.0,
                 lr_mul: float = 1.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init) / lr_mul)) if bias else None
        self.w_gain = lr_mul / in_features**0.5
        self.lr_mul = lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.bias * self.lr_mul if self.bias is not None else None
        return F.linear(x, self.weight * self.w_gain, b)


class EqualizedConv2d(nn.Module):
    """``nn.Conv2d`` (or the 2x2 stride-2 transposed conv) with equalized learning rate.

    Padding as :func:`conv2d`: ``(k - 1) // 2`` for odd kernels, ``k // 2 - 1`` for the 4x4
    stride-2 downscale. ``transposed`` makes it a ``k``x``k`` stride-``k`` upscale (no overlap).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, *, stride: int = 1, bias: bool = True,
                 transposed: bool = False) -> None:
        super().__init__()
        self.transposed = transposed
        shape = (in_channels, out_channels, kernel, kernel) if transposed else (out_channels, in_channels, kernel, kernel)
        self.weight = nn.Parameter(torch.randn(shape))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.w_gain = 1.0 / (in_channels * kernel * kernel) ** 0.5
        self.stride = kernel if transposed else stride
        self.padding = 0 if transposed else ((kernel - 1) // 2 if kernel % 2 else kernel // 2 - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight * self.w_gain
        if self.transposed:
            return F.conv_transpose2d(x, w, self.bias, stride=self.stride)
        return F.conv2d(x, w, self.bias, stride=self.stride, padding=self.padding)


class ModulatedConv2d(nn.Module):
    """StyleGAN2's weight (de)modulation by a style vector, in its batched, non-grouped form.

    ``s = affine(w)`` [N, in] scales the input channels, the shared weight convolves, and
    ``d = 1 / sqrt(sum_{in, k} (W s)^2)`` [N, out] rescales each output channel back to unit
    variance. This equals a per-sample convolution with weights ``W * s * d`` (Karras et al. 2020)
    but uses one ordinary convolution for the whole batch, which is what CPUs are fast at. It
    replaces AdaIN's instance normalisation, whose per-feature-map statistics cause the "droplet"
    artefacts StyleGAN2 removed.

    ``transposed`` makes the conv a 2x2 stride-2 upscale; ``demodulate=False`` is for toRGB layers.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, w_dim: int, *, demodulate: bool = True,
                 transposed: bool = False) -> None:
        super().__init__()
        self.conv = EqualizedConv2d(in_channels, out_channels, kernel, bias=False, transposed=transposed)
        self.affine = EqualizedLinear(w_dim, in_channels, bias_init=1.0)
        self.demodulate = demodulate
        self.in_channels, self.w_dim = in_channels, w_dim

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """``x`` [N, in, H, W], ``w`` [N, w_dim] -> [N, out, H', W'] (no bias, no activation)."""
        check_shape(w, (x.shape[0], self.w_dim), "ModulatedConv2d w")
        style = self.affine(w)  # [N, in]
        x = self.conv(x * style[:, :, None, None].to(x.dtype))
        if self.demodulate:
            weight = self.conv.weight * self.conv.w_gain
            # sum over kernel taps of W^2: [out, in] (a transposed conv stores [in, out, k, k]).
            wsq = weight.square().sum(dim=(2, 3))
            wsq = wsq.T if self.conv.transposed else wsq
            d = torch.rsqrt(style.float().square() @ wsq.float().T + 1e-8)  # [N, out]
            x = x * d[:, :, None, None].to(x.dtype)
        return x


def _init(module: nn.Linear | nn.Conv2d | nn.ConvTranspose2d, gain: float = 1.0) -> None:
    nn.init.orthogonal_(module.weight, gain=gain)
    if module.bias is not None:
        nn.init.zeros_(module.bias)


def linear(in_features: int, out_features: int, *, sn: bool = True, gain: float = 1.0,
           equalized: bool = False, lr_mul: float = 1.0) -> nn.Module:
    """Orthogonally initialised ``nn.Linear`` ([N, in] -> [N, out]), spectrally normalised if ``sn``;
    with ``equalized`` an :class:`EqualizedLinear` instead (``sn`` and ``gain`` then do not apply)."""
    if equalized:
        return EqualizedLinear(in_features, out_features, lr_mul=lr_mul)
    layer = nn.Linear(in_features, out_features)
    _init(layer, gain)
    return spectral_norm(layer) if sn else layer


def conv2d(in_channels: int, out_channels: int, kernel: int, *, stride: int = 1, sn: bool = True,
           equalized: bool = False) -> nn.Module:
    """Orthogonally initialised ``nn.Conv2d`` with "same"-style padding ``(kernel - 1) // 2``
    for odd kernels and ``1`` for the 4x4 stride-2 downscale (exact halving of even sizes);
    with ``equalized`` an :class:`EqualizedConv2d` of the same geometry."""
    if equalized:
        return EqualizedConv2d(in_channels, out_channels, kernel, stride=stride)
    padding = (kernel - 1) // 2 if kernel % 2 else kernel // 2 - 1
    layer = nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=padding)
    _init(layer)
    return spectral_norm(layer) if sn else layer


def conv_transpose2d(in_channels: int, out_channels: int, *, sn: bool = True, equalized: bool = False) -> nn.Module:
    """2x upscale: 2x2 stride-2 transposed conv, [N, in, H, W] -> [N, out, 2H, 2W].

    A 2x2 kernel at stride 2 touches each output pixel exactly once (no checkerboard overlap)
    and is the size that reproduces the reference's parameter count.
    """
    if equalized:
        return EqualizedConv2d(in_channels, out_channels, 2, transposed=True)
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

    def __init__(self, channels: int, w_dim: int, *, equalized: bool = False) -> None:
        super().__init__()
        self.channels = channels
        self.w_dim = w_dim
        inter = (channels + w_dim) // 2
        self.hidden = linear(w_dim, inter, equalized=equalized)
        self.to_gamma = linear(inter, channels, sn=False, gain=_ADAIN_HEAD_GAIN, equalized=equalized)
        self.to_beta = linear(inter, channels, sn=False, gain=_ADAIN_HEAD_GAIN, equalized=equalized)

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


class StyledBatchNorm(nn.Module):
    """Conditional batch norm: ``gamma(w) * batchnorm(x) + beta(w)`` (BigGAN's conditional BN, with
    w in place of the class embedding), [N, C, H, W] -> [N, C, H, W].

    Statistics are over (N, H, W) while training and the running averages in eval mode, so an
    evaluated generator is a deterministic, per-sample function of w (refresh the running averages
    of an averaged generator with :func:`refresh_batch_stats`). Normalising over the batch makes a
    collapsed batch impossible to hide: every channel must vary across samples. gamma = 1 + delta and
    beta are single linear maps of w.
    """

    def __init__(self, channels: int, w_dim: int, *, equalized: bool = False) -> None:
        super().__init__()
        self.channels, self.w_dim = channels, w_dim
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.to_gamma = linear(w_dim, channels, sn=False, gain=_ADAIN_HEAD_GAIN, equalized=equalized)
        self.to_beta = linear(w_dim, channels, sn=False, gain=_ADAIN_HEAD_GAIN, equalized=equalized)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        check_shape(x, (None, self.channels, None, None), "StyledBatchNorm x")
        check_shape(w, (x.shape[0], self.w_dim), "StyledBatchNorm w")
        x = self.bn(x)
        gamma = 1.0 + self.to_gamma(w)
        return gamma[:, :, None, None] * x + self.to_beta(w)[:, :, None, None]


@torch.no_grad()
def refresh_batch_stats(forward: Callable[[int], object], module: nn.Module, n_batches: int = 16,
                        batch: int = 64) -> bool:
    """Re-estimate the running statistics of every batch norm in ``module`` as the plain average over
    ``n_batches`` calls of ``forward(batch)`` in training mode ("standing statistics"). Returns
    False (and does nothing) when ``module`` has no batch norm. ``module`` is left in eval mode.
    """
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return False
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calls below
    module.train()
    try:
        for _ in range(n_batches):
            forward(batch)
    finally:
        for m, mom in zip(norms, momenta, strict=True):
            m.momentum = mom
        module.eval()
    return True


class SelfAttention(nn.Module):
    """SAGAN self-attention: ``x + gamma * attention(x)``, [N, C, H, W] -> [N, C, H, W].

    Query and key have ``max(C // 8, 1)`` channels, value ``C``; dot products are not scaled
    (as in SAGAN). ``gamma`` starts at 0, so the block is the identity at init.
    """

    def __init__(self, channels: int, *, equalized: bool = False) -> None:
        super().__init__()
        qk = max(channels // 8, 1)
        self.channels = channels
        self.query = conv2d(channels, qk, 1, equalized=equalized)
        self.key = conv2d(channels, qk, 1, equalized=equalized)
        self.value = conv2d(channels, channels, 1, equalized=equalized)
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
