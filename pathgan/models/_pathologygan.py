"""The model container: mapping network, generator and discriminator of one configuration."""

from __future__ import annotations

import torch
from torch import nn

from pathgan.config import ModelConfig
from pathgan.errors import ConfigError
from pathgan.models._discriminator import Discriminator
from pathgan.models._generator import Generator
from pathgan.models._mapping import MappingNetwork, broadcast_w

__all__ = ["PathologyGAN"]


class PathologyGAN(nn.Module):
    """``.mapping`` (z -> w), ``.generator`` (ws -> images), ``.discriminator`` (images -> logits).

    Build one by name with :func:`pathgan.models.build`.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.mapping = MappingNetwork.from_config(cfg)
        self.generator = Generator(cfg)
        self.discriminator = Discriminator(cfg)

    @property
    def n_slots(self) -> int:
        """Style slots of the generator: 1 (dense stem) + one per stage."""
        return self.generator.n_slots

    def generate(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        *,
        truncation: float = 1.0,
        w_avg: torch.Tensor | None = None,
        noise: bool = True,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """z [N, z_dim] (and classes c int64 [N] when conditional) -> images [N, 3, image_px,
        image_px] in [0, 1], one w in every slot.

        ``truncation`` < 1 pulls w towards ``w_avg`` [w_dim] (``w_avg + t * (w - w_avg)``);
        it needs ``w_avg``, else ``ConfigError``. Call ``eval()`` first for reproducible output.
        """
        w = self.mapping(z, c)
        if truncation != 1.0:
            if w_avg is None:
                raise ConfigError(f"truncation={truncation!r} needs w_avg (the mean w over many z)")
            w = w_avg + truncation * (w - w_avg)
        images: torch.Tensor = self.generator(
            broadcast_w(w, self.n_slots), noise=noise, generator=generator
        )
        return images
