"""Image -> w encoder (arXiv 2004.06517): a residual convolutional trunk down to the stem grid, then dense layers.

Unlike the discriminator it has no spectral norm: it is a regressor, and the norm's Lipschitz bound
only slows it. Its output is de-standardised with the mean and spread of the generator's w, kept
as buffers, so the network itself predicts numbers of order one in every dimension.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pathgan.config import ModelConfig
from pathgan.errors import ConfigError
from pathgan.models._layers import LRELU_SLOPE, check_shape, conv2d, linear

__all__ = ["Encoder"]


class _EStage(nn.Module):
    """Residual block at the input width, then a 4x4 stride-2 downscale: [N, in, H, W] -> [N, out, H/2, W/2]."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = conv2d(in_channels, in_channels, 3, sn=False)
        self.conv2 = conv2d(in_channels, in_channels, 3, sn=False)
        self.down = conv2d(in_channels, out_channels, 4, stride=2, sn=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.conv1(x), LRELU_SLOPE)
        x = x + F.leaky_relu(self.conv2(h), LRELU_SLOPE) * 0.5
        return F.leaky_relu(self.down(x), LRELU_SLOPE)


class Encoder(nn.Module):
    """images [N, 3, image_px, image_px] in [0, 1] -> w [N, w_dim].

    Parameters
    ----------
    cfg : the run's model configuration (image size, w size, dense width).
    channels : stage widths, one per 2x downscale; ``None`` = ``cfg.d_channels``.

    Buffers ``w_mean`` and ``w_std`` [w_dim] hold the statistics of the generator's w (the trainer
    sets them from the mapping network); :meth:`standardized` gives the raw, standardised output.
    """

    w_mean: torch.Tensor
    w_std: torch.Tensor

    def __init__(self, cfg: ModelConfig, channels: tuple[int, ...] | None = None) -> None:
        super().__init__()
        channels = tuple(channels) if channels is not None else cfg.d_channels
        if len(channels) != cfg.n_stages:
            raise ConfigError(f"encoder channels={channels!r} is not allowed; expected {cfg.n_stages} "
                              f"widths for {cfg.image_px} px (one per 2x downscale to {cfg.stem_px} px)")
        self.cfg = cfg
        self.channels = channels
        self.from_rgb = conv2d(3, channels[0], 3, sn=False)
        stages = []
        in_ch = channels[0]
        for out_ch in channels:
            stages.append(_EStage(in_ch, out_ch))
            in_ch = out_ch
        self.stages = nn.Sequential(*stages)
        self.dense = linear(cfg.stem_px * cfg.stem_px * in_ch, cfg.dense_units, sn=False)
        self.out = linear(cfg.dense_units, cfg.w_dim, sn=False)
        self.register_buffer("w_mean", torch.zeros(cfg.w_dim))
        self.register_buffer("w_std", torch.ones(cfg.w_dim))

    def standardized(self, x: torch.Tensor) -> torch.Tensor:
        """``(w - w_mean) / w_std`` as predicted for ``x``: [N, 3, px, px] -> [N, w_dim]."""
        px = self.cfg.image_px
        check_shape(x, (None, 3, px, px), "Encoder x")
        h = F.leaky_relu(self.from_rgb(x * 2.0 - 1.0), LRELU_SLOPE)
        h = self.stages(h)  # [N, C, stem_px, stem_px]
        h = F.leaky_relu(self.dense(h.flatten(1)), LRELU_SLOPE)
        out: torch.Tensor = self.out(h)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.standardized(x) * self.w_std + self.w_mean
