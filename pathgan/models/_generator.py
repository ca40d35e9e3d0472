"""PathologyGAN generator: style slots ws [N, 1 + n_stages, w_dim] -> images [N, 3, H, W] in [0, 1]."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pathgan.config import ModelConfig
from pathgan.models._layers import (
    AdaIN,
    ModulatedConv2d,
    NoiseInjection,
    SelfAttention,
    StyledBatchNorm,
    check_shape,
    conv2d,
    conv_transpose2d,
    linear,
    lrelu,
)

__all__ = ["Generator"]


class _StyledConv(nn.Module):
    """One styled convolution, [N, in, H, W] -> [N, out, H', W'].

    ``adain`` (the reference): conv -> noise -> AdaIN(w) -> LeakyReLU.
    ``modulated``: conv with weights (de)modulated by w -> noise -> bias -> LeakyReLU (x sqrt 2).
    ``batchnorm``: conv -> noise -> conditional batch norm (gamma, beta linear in w) -> LeakyReLU.
    ``up`` makes it a 2x upscale: a 2x2 stride-2 transposed conv, or interpolation then a 3x3 conv.
    """

    def __init__(self, in_channels: int, out_channels: int, cfg: ModelConfig, *, up: bool = False,
                 noise: bool = True) -> None:
        super().__init__()
        eq = cfg.weights == "equalized"
        self.modulated = cfg.style == "modulated"
        self.interpolate = cfg.upsample if up and cfg.upsample != "transposed" else None
        transposed = up and cfg.upsample == "transposed"
        self.conv: nn.Module
        if self.modulated:
            self.conv = ModulatedConv2d(in_channels, out_channels, 2 if transposed else 3, cfg.w_dim,
                                        transposed=transposed)
            self.bias = nn.Parameter(torch.zeros(out_channels))
        else:
            self.conv = (conv_transpose2d(in_channels, out_channels, equalized=eq) if transposed
                         else conv2d(in_channels, out_channels, 3, equalized=eq))
            self.norm: nn.Module = (StyledBatchNorm(out_channels, cfg.w_dim, equalized=eq) if cfg.style == "batchnorm"
                                    else AdaIN(out_channels, cfg.w_dim, equalized=eq))
        self.noise: nn.Module | None = NoiseInjection(out_channels) if cfg.noise and noise else None
        self.equalized = eq

    def forward(
        self, x: torch.Tensor, w: torch.Tensor, *, noise: bool, generator: torch.Generator | None
    ) -> torch.Tensor:
        if self.interpolate is not None:
            x = F.interpolate(x, scale_factor=2.0, mode=self.interpolate,
                              **({} if self.interpolate == "nearest" else {"align_corners": False}))
        x = self.conv(x, w) if self.modulated else self.conv(x)
        if self.noise is not None:
            x = self.noise(x, enabled=noise, generator=generator)
        if self.modulated:
            return lrelu(x + self.bias.view(1, -1, 1, 1).to(x.dtype), True)
        return lrelu(self.norm(x, w), self.equalized)


class _GStage(nn.Module):
    """One generator stage at resolution H -> 2H, all styled by the same w slot.

    Residual block at the input width (two styled 3x3 convs; skip is the identity), then a 2x
    upscale to ``out_channels`` (styled), then optional attention. Keeping the residual block at
    the input width is what reproduces the reference's 187M. ``residual=False`` (stages above
    ``ModelConfig.res_max_px``) leaves only the styled upscale, where full-resolution convs are dear.
    """

    def __init__(self, in_channels: int, out_channels: int, cfg: ModelConfig, attention: bool,
                 residual: bool = True, in_px: int = 0) -> None:
        super().__init__()
        self.residual = residual
        cap = cfg.noise_max_px
        if residual:
            self.res1 = _StyledConv(in_channels, in_channels, cfg, noise=not cap or in_px <= cap)
            self.res2 = _StyledConv(in_channels, in_channels, cfg, noise=not cap or in_px <= cap)
        self.up = _StyledConv(in_channels, out_channels, cfg, up=True, noise=not cap or 2 * in_px <= cap)
        eq = cfg.weights == "equalized"
        self.attention: nn.Module = SelfAttention(out_channels, equalized=eq) if attention else nn.Identity()
        # Equalized layers keep unit-variance activations, so the residual sum is rescaled to unit
        # variance too (as in StyleGAN2's residual networks); the reference adds them plainly.
        self.res_scale = 0.5**0.5 if eq else 1.0

    def forward(
        self, x: torch.Tensor, w: torch.Tensor, *, noise: bool, generator: torch.Generator | None
    ) -> torch.Tensor:
        if self.residual:
            h = self.res1(x, w, noise=noise, generator=generator)
            x = (x + self.res2(h, w, noise=noise, generator=generator)) * self.res_scale
        x = self.up(x, w, noise=noise, generator=generator)
        out: torch.Tensor = self.attention(x)
        return out


class Generator(nn.Module):
    """Style-based residual generator of the reference.

    Slot 0 of ``ws`` styles the dense stem (w -> dense_units -> stem_px * stem_px * g_stem_channels,
    each with AdaIN + LReLU; with ``style="modulated"`` the stem is a plain function of w, the styles
    acting from the first conv on), slot ``i`` styles stage ``i`` (stem_px * 2**(i-1) -> stem_px * 2**i px).
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.n_slots = 1 + cfg.n_stages
        eq = cfg.weights == "equalized"
        self.equalized = eq
        stem_features = cfg.stem_px * cfg.stem_px * cfg.g_stem_channels
        self.dense1 = linear(cfg.w_dim, cfg.dense_units, equalized=eq)
        self.dense2 = linear(cfg.dense_units, stem_features, equalized=eq)
        self.stem_styled = cfg.style == "adain"
        if self.stem_styled:
            self.norm1 = AdaIN(cfg.dense_units, cfg.w_dim, equalized=eq)
            # The reference's largest layer: with 12,544 features its AdaIN MLP alone is ~161M parameters.
            self.norm2 = AdaIN(stem_features, cfg.w_dim, equalized=eq)
        stages = []
        in_ch = cfg.g_stem_channels
        for i, out_ch in enumerate(cfg.g_channels):
            out_px = cfg.stem_px * 2 ** (i + 1)
            stages.append(_GStage(in_ch, out_ch, cfg, attention=out_px == cfg.attention_px,
                                  residual=cfg.res_max_px == 0 or out_px // 2 <= cfg.res_max_px, in_px=out_px // 2))
            in_ch = out_ch
        self.stages = nn.ModuleList(stages)
        self.to_rgb = conv2d(in_ch, 3, 3, equalized=eq)

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
        images : [N, 3, image_px, image_px] in [0, 1]. With ``output="linear"`` a module in training
            mode returns the unclamped ``0.5 + 0.5 x`` (the discriminator's gradients then never
            vanish at the bounds); in eval mode it is clamped to [0, 1].
        """
        cfg = self.cfg
        check_shape(ws, (None, self.n_slots, cfg.w_dim), "Generator ws")
        n = ws.shape[0]
        w0 = ws[:, 0]
        if self.stem_styled:
            x = lrelu(self.norm1(self.dense1(w0), w0), self.equalized)
            x = lrelu(self.norm2(self.dense2(x), w0), self.equalized)
        else:
            x = lrelu(self.dense2(lrelu(self.dense1(w0), True)), True)
        x = x.view(n, cfg.g_stem_channels, cfg.stem_px, cfg.stem_px)  # [N, C, stem, stem]
        for i, stage in enumerate(self.stages):
            x = stage(x, ws[:, i + 1], noise=noise, generator=generator)
        rgb = self.to_rgb(x)
        if cfg.output == "sigmoid":
            img = torch.sigmoid(rgb)
        else:
            img = 0.5 + 0.5 * rgb
            if not self.training:
                img = img.clamp(0.0, 1.0)
        check_shape(img, (n, 3, cfg.image_px, cfg.image_px), "Generator output")
        return img
