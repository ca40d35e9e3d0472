"""PathologyGAN discriminator: images [N, 3, H, W] in [0, 1] -> logits [N]."""

from __future__ import annotations

import torch
from torch import nn

from pathgan.config import ModelConfig
from pathgan.errors import ConfigError, ShapeError
from pathgan.models._layers import SelfAttention, check_shape, conv2d, linear, lrelu
from pathgan.models._mapping import check_classes

__all__ = ["Discriminator", "MinibatchStd"]


class _DStage(nn.Module):
    """Residual block at the input width, optional attention, then a 4x4 stride-2 downscale.

    [N, in, H, W] -> [N, out, H/2, W/2]. No normalisation (spectral norm only), as in the reference.
    """

    def __init__(self, in_channels: int, out_channels: int, attention: bool, equalized: bool = False,
                 residual: bool = True) -> None:
        super().__init__()
        self.residual = residual
        if residual:
            self.conv1 = conv2d(in_channels, in_channels, 3, equalized=equalized)
            self.conv2 = conv2d(in_channels, in_channels, 3, equalized=equalized)
        self.attention: nn.Module = (SelfAttention(in_channels, equalized=equalized) if attention
                                     else nn.Identity())
        self.down = conv2d(in_channels, out_channels, 4, stride=2, equalized=equalized)
        self.equalized = equalized
        self.res_scale = 0.5**0.5 if equalized else 1.0  # unit variance of the residual sum (see _GStage)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        eq = self.equalized
        if self.residual:
            h = lrelu(self.conv1(x), eq)
            x = (x + lrelu(self.conv2(h), eq)) * self.res_scale
        x = self.attention(x)
        return lrelu(self.down(x), eq)


class _FromRGB(nn.Module):
    """[N, 3, H, W] -> [N, C, H, W]: 1x1 conv and LeakyReLU."""

    def __init__(self, channels: int, equalized: bool) -> None:
        super().__init__()
        self.conv = conv2d(3, channels, 1, equalized=equalized)
        self.equalized = equalized

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return lrelu(self.conv(x), self.equalized)


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
            raise ConfigError(f"group must be >= 1, got {group}")
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
        eq = (cfg.d_weights or cfg.weights) == "equalized"
        self.equalized = eq
        stages: list[nn.Module] = []
        in_ch, px = 3, cfg.image_px
        if cfg.d_from_rgb:
            # A 1x1 conv to d_from_rgb channels first, so the full-resolution residual block sees
            # features rather than 3 colour channels (StyleGAN's fromRGB); the reference has none.
            stages.append(_FromRGB(cfg.d_from_rgb, equalized=eq))
            in_ch = cfg.d_from_rgb
        patch_at = cfg.image_px // 2 ** cfg.d_patch_stage if cfg.d_patch_stage else 0
        self.patch_index = -1
        for out_ch in cfg.d_channels:
            stages.append(_DStage(in_ch, out_ch, attention=px == cfg.attention_px, equalized=eq,
                                  residual=cfg.res_max_px == 0 or px // 2 <= cfg.res_max_px))
            in_ch, px = out_ch, px // 2
            if px == patch_at:
                self.patch_index = len(stages) - 1
                # PatchGAN-style head: one logit per location of this feature map, so every region
                # of the image gets its own real/fake verdict (dense feedback for texture-like data).
                self.patch_logit = conv2d(out_ch, 1, 1, equalized=eq)
        self.stages = nn.Sequential(*stages)
        self.mbstd: nn.Module = nn.Identity()
        if cfg.mbstd_group > 0:
            self.mbstd = MinibatchStd(cfg.mbstd_group)
            in_ch += 1
        self.dense = linear(cfg.stem_px * cfg.stem_px * in_ch, cfg.dense_units, equalized=eq)
        self.logit = linear(cfg.dense_units, 1, equalized=eq)
        if cfg.n_classes:
            # Projection discriminator: logit + <embed(c), features>; under spectral norm like every
            # other layer of a spectral D, scaled by 1/sqrt(dense_units) in an equalized one.
            embed: nn.Module = nn.Embedding(cfg.n_classes, cfg.dense_units)
            if eq:
                nn.init.normal_(embed.weight, std=1.0 / cfg.dense_units**0.5)  # type: ignore[arg-type]
                self.embed = embed
            else:
                nn.init.normal_(embed.weight, std=0.02)  # type: ignore[arg-type]
                self.embed = nn.utils.parametrizations.spectral_norm(embed)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` [N, 3, image_px, image_px] in [0, 1] (and classes ``c`` int64 [N] when the model is
        conditional) -> unnormalised logits [N], or [N, 1 + P*P] with a patch head (``d_patch_stage``):
        the global logit first, then one per location of the P x P feature map."""
        px = self.cfg.image_px
        check_shape(x, (None, 3, px, px), "Discriminator x")
        c = check_classes(c, self.cfg.n_classes, x.shape[0], "Discriminator")
        if self.equalized:
            x = x * 2.0 - 1.0  # zero-centred input for layers that do not normalise their weights
        if self.patch_index >= 0:
            feats = self.stages[: self.patch_index + 1](x)
            patch = self.patch_logit(feats).flatten(1)  # [N, P*P]
            h = self.mbstd(self.stages[self.patch_index + 1 :](feats))
        else:
            patch = None
            h = self.mbstd(self.stages(x))  # [N, C (+1 with mbstd), stem_px, stem_px]
        h = lrelu(self.dense(h.flatten(1)), self.equalized)  # [N, dense_units]
        logits: torch.Tensor = self.logit(h).squeeze(1)
        if c is not None:
            logits = logits + (self.embed(c) * h).sum(dim=1)
        if patch is not None:
            # [N, 1 + P*P]: the global logit, then one per patch; the losses average their terms.
            return torch.cat([logits[:, None], patch.to(logits.dtype)], dim=1)
        return logits
