"""PathologyGAN discriminator: images [N, 3, H, W] in [0, 1] -> logits [N]."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pathgan.config import ModelConfig
from pathgan.errors import ShapeError
from pathgan.models._layers import LRELU_SLOPE, SelfAttention, check_shape, conv2d, linear
from pathgan.models._mapping import check_classes

__all__ = ["Discriminator", "MinibatchStd"]

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


class MinibatchStd(nn.Module):
    """Minibatch standard deviation (Karras et al. 2018; StyleGAN2's form with one feature).

    [N, C, H, W] -> [N, C + 1, H, W]: the samples are split into groups of ``min(group, N)``
    (sample ``n`` belongs to group ``n % (N // G)``); the std of every feature across a group, averaged over
    (C, H, W), is appended to each of its members as a constant map. A collapsed generator gives
    a batch with a small std, which the discriminator can then see.

    It couples the samples of a group, so D's output for one sample depends on its groupmates:
    real and fake batches must be passed separately (the training loop does) and the gradient
    penalty's per-sample gradients include (small) cross-sample terms, as in StyleGAN2.

    Raises
    ------
    ShapeError : ``N`` is not a multiple of the group size (a smaller ``N`` uses one group).
    """

    def __init__(self, group: int) -> None:
        super().__init__()
        if group < 1:
            raise ValueError(f"group must be >= 1, got {group}")
        self.group = group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_shape(x, (None, None, None, None), "MinibatchStd x")
        n, c, h, w = x.shape
        g = min(self.group, n)
        if n % g:
            raise ShapeError(f"MinibatchStd: batch of {n} is not a multiple of the group size {g}")
        y = x.reshape(g, n // g, c, h, w)  # [G, M, C, H, W]
        y = (y.var(dim=0, unbiased=False) + 1e-8).sqrt()  # [M, C, H, W]
        y = y.mean(dim=(1, 2, 3))  # [M]
        y = y.repeat(g).view(n, 1, 1, 1).expand(n, 1, h, w)  # [N, 1, H, W]
        return torch.cat([x, y.to(x.dtype)], dim=1)


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
        self.mbstd: nn.Module = nn.Identity()
        if cfg.mbstd_group > 0:
            self.mbstd = MinibatchStd(cfg.mbstd_group)
            in_ch += 1
        self.dense = linear(_GRID_PX * _GRID_PX * in_ch, cfg.dense_units)
        self.logit = linear(cfg.dense_units, 1)
        if cfg.n_classes:
            # Projection discriminator: logit + <embed(c), features>, with the embedding under
            # spectral norm like every other layer of D.
            embed = nn.Embedding(cfg.n_classes, cfg.dense_units)
            nn.init.normal_(embed.weight, std=0.02)
            self.embed = nn.utils.parametrizations.spectral_norm(embed)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` [N, 3, image_px, image_px] in [0, 1] (and classes ``c`` int64 [N] when the model is
        conditional) -> unnormalised logits [N]."""
        px = self.cfg.image_px
        check_shape(x, (None, 3, px, px), "Discriminator x")
        c = check_classes(c, self.cfg.n_classes, x.shape[0], "Discriminator")
        h = self.mbstd(self.stages(x))  # [N, C (+1 with mbstd), 7, 7]
        h = F.leaky_relu(self.dense(h.flatten(1)), LRELU_SLOPE)  # [N, dense_units]
        logits: torch.Tensor = self.logit(h).squeeze(1)
        if c is not None:
            logits = logits + (self.embed(c) * h).sum(dim=1)
        return logits
