"""The plain baseline of ``bench_quality.py``: a DCGAN-shaped GAN with the simplest recipe known to
work on small data. Written here, not in ``pathgan/``: it is the yardstick, not the product.

* Generator: z [N, z_dim] -> linear -> [N, C0, 4, 4] -> batch norm -> ReLU, then one block per 2x
  (nearest-neighbour upsampling, 3x3 conv, batch norm, ReLU) up to the image size, then a 3x3 conv
  and tanh, mapped to [0, 1].
* Discriminator: 4x4 stride-2 convolutions with spectral norm and LeakyReLU(0.2) down to 4x4, the
  minibatch standard deviation as one extra feature map, a spectrally normalised linear logit.
* Hinge loss, DiffAugment (the same ``pathgan.train.diff_augment`` ops the preset uses), Adam with
  betas (0, 0.99), an exponential moving average of G for sampling, whose batch-norm statistics
  are re-estimated on 1,024 samples of the averaged weights before it is used ("standing
  statistics": the live G's running means belong to other weights).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from pathgan.train.augment import diff_augment

__all__ = ["BaselineConfig", "BaselineGAN"]


@dataclass(frozen=True, kw_only=True)
class BaselineConfig:
    """Everything the baseline can be tuned by (``bench_quality.py --baseline key=value``)."""

    image_px: int = 64
    z_dim: int = 128
    g_channels: tuple[int, ...] = (256, 128, 64, 32, 16)  # 4, 8, 16, 32, 64 px
    d_channels: tuple[int, ...] = (32, 64, 128, 256)  # 32, 16, 8, 4 px
    mbstd_group: int = 4
    batch_size: int = 32
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.0
    beta2: float = 0.99
    diffaugment: str = "color,translation,cutout"
    ema_decay: float = 0.999
    bf16: bool = True

    def __post_init__(self) -> None:
        n_up = int(math.log2(self.image_px // 4))
        if 4 * 2**n_up != self.image_px or len(self.g_channels) != n_up + 1 or len(self.d_channels) != n_up:
            raise ValueError(f"image_px={self.image_px} needs {n_up + 1} g_channels and {n_up} d_channels "
                             f"(4 px * 2**{n_up}); got {self.g_channels} and {self.d_channels}")


class _MinibatchStd(nn.Module):
    """Append the std across groups of ``group`` samples, averaged over features, as one map."""

    def __init__(self, group: int) -> None:
        super().__init__()
        self.group = group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = min(self.group, n)
        y = x.float().reshape(g, n // g, c, h, w)
        y = (y.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # [N / g]
        y = y.repeat(g).view(n, 1, 1, 1).expand(n, 1, h, w).to(x.dtype)
        return torch.cat([x, y], dim=1)


class Generator(nn.Module):
    def __init__(self, cfg: BaselineConfig) -> None:
        super().__init__()
        c0 = cfg.g_channels[0]
        self.c0 = c0
        self.fc = nn.Linear(cfg.z_dim, c0 * 16)
        self.bn0 = nn.BatchNorm2d(c0)
        blocks: list[nn.Module] = []
        for cin, cout in zip(cfg.g_channels[:-1], cfg.g_channels[1:], strict=True):
            blocks += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                       nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        self.blocks = nn.Sequential(*blocks)
        self.to_rgb = nn.Conv2d(cfg.g_channels[-1], 3, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z [N, z_dim] -> images [N, 3, px, px] in [0, 1]."""
        x = F.relu(self.bn0(self.fc(z).view(-1, self.c0, 4, 4)))
        return torch.tanh(self.to_rgb(self.blocks(x))) * 0.5 + 0.5


class Discriminator(nn.Module):
    def __init__(self, cfg: BaselineConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for cout in cfg.d_channels:
            layers += [spectral_norm(nn.Conv2d(cin, cout, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.mbstd = _MinibatchStd(cfg.mbstd_group) if cfg.mbstd_group else nn.Identity()
        self.logit = spectral_norm(nn.Linear((cin + (1 if cfg.mbstd_group else 0)) * 16, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """images [N, 3, px, px] in [0, 1] -> logits [N]."""
        return self.logit(self.mbstd(self.features(x * 2 - 1)).flatten(1)).squeeze(1)


class BaselineGAN:
    """Models, optimisers and one training step of the baseline; ``sample`` draws from the EMA G."""

    def __init__(self, cfg: BaselineConfig, seed: int) -> None:
        torch.manual_seed(seed)
        self.cfg = cfg
        self.g, self.d = Generator(cfg), Discriminator(cfg)
        self.g_ema = copy.deepcopy(self.g).eval().requires_grad_(False)
        betas = (cfg.beta1, cfg.beta2)
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=cfg.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.d.parameters(), lr=cfg.lr_d, betas=betas)
        self.rng = torch.Generator().manual_seed(seed + 1)
        self.step = 0

    def _aug(self, x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, self.cfg.diffaugment, generator=self.rng) if self.cfg.diffaugment else x

    def _z(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.cfg.z_dim, generator=self.rng)

    def train_step(self, real: torch.Tensor) -> dict[str, float]:
        """One D step and one G step on ``real`` [N, 3, px, px] in [0, 1]."""
        n = real.shape[0]
        amp = torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.cfg.bf16)
        with amp:
            with torch.no_grad():
                fake = self.g(self._z(n))
            loss_d = (F.relu(1 - self.d(self._aug(real)).float()).mean()
                      + F.relu(1 + self.d(self._aug(fake.float())).float()).mean())
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()
        with amp:
            loss_g = -self.d(self._aug(self.g(self._z(n)).float())).float().mean()
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        with torch.no_grad():
            for pe, p in zip(self.g_ema.parameters(), self.g.parameters(), strict=True):
                pe.lerp_(p, 1.0 - self.cfg.ema_decay)
        self.step += 1
        return {"loss_d": float(loss_d.detach()), "loss_g": float(loss_g.detach())}

    @torch.no_grad()
    def standing_stats(self, n: int = 1024, batch: int = 64) -> None:
        """Re-estimate the EMA generator's batch-norm statistics on ``n`` of its own samples."""
        g = self.g_ema
        for m in g.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.reset_running_stats()
                m.momentum = None  # cumulative average over the batches below
        g.train()
        gen = torch.Generator().manual_seed(12345)
        for _ in range(max(1, n // batch)):
            g(torch.randn(batch, self.cfg.z_dim, generator=gen))
        g.eval()

    @torch.no_grad()
    def sample(self, z: torch.Tensor) -> torch.Tensor:
        """EMA-generator images [N, 3, px, px] in [0, 1] (call :meth:`standing_stats` first)."""
        return self.g_ema(z).clamp(0, 1)
