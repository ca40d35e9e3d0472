"""PathologyGAN discriminator: images [N, 3, H, W] in [0, 1] -> logits [N]."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pathgan.config import ModelConfig
from pathgan.models._layers import LRELU_SLOPE, SelfAttention, check_shape, conv2d, linear

__all__ = ["Discriminator"]

_GRID_PX = 7


class _DStage(nn.Module):
    """Residual block at the input width, optional attention, then a 4x4 stride-2 downscale.

    [N, in, H, W] -> [N, out, H/2, W/2]. No normalisation (spectral norm only), as in the reference.
    """

    def __init__(self, in_channels: int, out_channels: int, attention: bool) -> None:
        super().__init__()
        self.conv1 = conv2d(in_channels, in_channels, 3)
        self.conv2 = conv2d(in_channels, in_channels, 3)
        self.attention: nn.Module = SelfAttention(in_channels) if attention else nn.Identity()
        self.down = conv2d(in_channels, out_channels, 4, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.conv1(x), LRELU_SLOPE)
        x = x + F.leaky_relu(self.conv2(h), LRELU_SLOPE)
        x = self.attention(x)
        return F.leaky_relu(self.down(x), LRELU_SLOPE)


class Discriminator(nn.Module):
    """Residual discriminator of the reference; attention where the feature map is ``attention_px``."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        stages = []
        in_ch, px = 3, cfg.image_px
        for out_ch in cfg.d_channels:
            stages.append(_DStage(in_ch, out_ch, attention=px == cfg.attention_px))
            in_ch, px = out_ch, px // 2
        self.stages = nn.Sequential(*stages)
        self.dense = linear(_GRID_PX * _GRID_PX * in_ch, cfg.dense_units)
        self.logit = linear(cfg.dense_units, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` [N, 3, image_px, image_px] in [0, 1] -> unnormalised logits [N]."""
        px = self.cfg.image_px
        check_shape(x, (None, 3, px, px), "Discriminator x")
        h = self.stages(x)  # [N, C, 7, 7]
        h = F.leaky_relu(self.dense(h.flatten(1)), LRELU_SLOPE)
        logits: torch.Tensor = self.logit(h).squeeze(1)
        return logits
