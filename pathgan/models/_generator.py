"""PathologyGAN generator: style slots ws [N, 1 + n_stages, w_dim] -> images [N, 3, H, W] in [0, 1]."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pathgan.config import ModelConfig
from pathgan.models._layers import (
    LRELU_SLOPE,
    AdaIN,
    NoiseInjection,
    SelfAttention,
    check_shape,
    conv2d,
    conv_transpose2d,
    linear,
)

__all__ = ["Generator"]

GRID_PX = 7
"""Side of the grid the dense stem reshapes into; every native size is 7 * 2**L."""


class _StyledConv(nn.Module):
    """conv -> noise -> AdaIN(w) -> LeakyReLU, [N, in, H, W] -> [N, out, H', W']."""

    def __init__(self, conv: nn.Module, out_channels: int, w_dim: int) -> None:
        super().__init__()
        self.conv = conv
        self.noise = NoiseInjection(out_channels)
        self.norm = AdaIN(out_channels, w_dim)

    def forward(
        self, x: torch.Tensor, w: torch.Tensor, *, noise: bool, generator: torch.Generator | None
    ) -> torch.Tensor:
        x = self.noise(self.conv(x), enabled=noise, generator=generator)
        return F.leaky_relu(self.norm(x, w), LRELU_SLOPE)


class _GStage(nn.Module):
    """One generator stage at resolution H -> 2H, all styled by the same w slot.

    Residual block at the input width (two styled 3x3 convs; skip is the identity), then a 2x
    transposed-conv upscale to ``out_channels`` + noise + AdaIN + LReLU, then optional attention.
    Keeping the residual block at the input width is what reproduces the reference's 187M.
    """

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, attention: bool) -> None:
        super().__init__()
        self.res1 = _StyledConv(conv2d(in_channels, in_channels, 3), in_channels, w_dim)
        self.res2 = _StyledConv(conv2d(in_channels, in_channels, 3), in_channels, w_dim)
        self.up = _StyledConv(conv_transpose2d(in_channels, out_channels), out_channels, w_dim)
        self.attention: nn.Module = SelfAttention(out_channels) if attention else nn.Identity()

    def forward(
        self, x: torch.Tensor, w: torch.Tensor, *, noise: bool, generator: torch.Generator | None
    ) -> torch.Tensor:
        h = self.res1(x, w, noise=noise, generator=generator)
        x = x + self.res2(h, w, noise=noise, generator=generator)
        x = self.up(x, w, noise=noise, generator=generator)
        out: torch.Tensor = self.attention(x)
        return out


class Generator(nn.Module):
    """Style-based residual generator of the reference.

    Slot 0 of ``ws`` styles the dense stem (w -> dense_units -> 7*7*g_stem_channels, each with
    AdaIN + LReLU), slot ``i`` styles stage ``i`` (7 * 2**(i-1) -> 7 * 2**i px).
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.n_slots = 1 + cfg.n_stages
        stem_features = GRID_PX * GRID_PX * cfg.g_stem_channels
        self.dense1 = linear(cfg.w_dim, cfg.dense_units)
        self.norm1 = AdaIN(cfg.dense_units, cfg.w_dim)
        self.dense2 = linear(cfg.dense_units, stem_features)
        # The reference's largest layer: with 12,544 features its AdaIN MLP alone is ~161M parameters.
        self.norm2 = AdaIN(stem_features, cfg.w_dim)
        stages = []
        in_ch = cfg.g_stem_channels
        for i, out_ch in enumerate(cfg.g_channels):
            out_px = GRID_PX * 2 ** (i + 1)
            stages.append(_GStage(in_ch, out_ch, cfg.w_dim, attention=out_px == cfg.attention_px))
            in_ch = out_ch
        self.stages = nn.ModuleList(stages)
        self.to_rgb = conv2d(in_ch, 3, 3)

    def forward(
        self,
        ws: torch.Tensor,
        *,
        noise: bool = True,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Synthesise images.

        Parameters
        ----------
        ws : [N, n_slots, w_dim] style vectors (see ``broadcast_w`` / ``mix_styles``).
        noise : add per-pixel noise; ``False`` (with ``eval()``, which freezes spectral norm's
            power iteration) makes the output a deterministic function of ``ws``.
        generator : ``torch.Generator`` on ``ws.device`` for reproducible noise.

        Returns
        -------
        images : [N, 3, image_px, image_px] in [0, 1].
        """
        cfg = self.cfg
        check_shape(ws, (None, self.n_slots, cfg.w_dim), "Generator ws")
        n = ws.shape[0]
        w0 = ws[:, 0]
        x = F.leaky_relu(self.norm1(self.dense1(w0), w0), LRELU_SLOPE)
        x = F.leaky_relu(self.norm2(self.dense2(x), w0), LRELU_SLOPE)
        x = x.view(n, cfg.g_stem_channels, GRID_PX, GRID_PX)  # [N, C, 7, 7]
        for i, stage in enumerate(self.stages):
            x = stage(x, ws[:, i + 1], noise=noise, generator=generator)
        img = torch.sigmoid(self.to_rgb(x))
        check_shape(img, (n, 3, cfg.image_px, cfg.image_px), "Generator output")
        return img
