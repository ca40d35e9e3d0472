"""CycleGAN losses and the generated-image history pool (pure tensor code, no I/O).

Logits are PatchGAN maps ``[N, 1, h, w]`` (any shape is accepted): every loss is the mean over
all their elements, so a patch counts the same whatever the image size.
"""

from __future__ import annotations

from typing import Any, get_args

import torch
import torch.nn.functional as F
from torch import Tensor

from pathgan.config import GanLoss
from pathgan.errors import ConfigError, ShapeError

__all__ = ["ImagePool", "cycle_loss", "gan_d_loss", "gan_g_loss", "identity_loss"]


def _target_loss(kind: GanLoss, logits: Tensor, target_is_real: bool) -> Tensor:
    if kind not in get_args(GanLoss):
        raise ConfigError(f"gan_loss={kind!r} is not allowed; expected one of {get_args(GanLoss)}")
    if kind == "lsgan":
        # Mao et al. 2017 with labels a=0 (fake), b=c=1 (real): squared distance to the label.
        return ((logits - (1.0 if target_is_real else 0.0)) ** 2).mean()
    # softplus form of BCE with logits: never forms sigmoid, so large |z| cannot give log(0).
    return F.softplus(-logits).mean() if target_is_real else F.softplus(logits).mean()


def gan_d_loss(kind: GanLoss, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Discriminator loss ``0.5 * (loss(real, 1) + loss(fake, 0))`` (the paper halves it so D
    learns at half the rate of G). 0-d tensor."""
    return 0.5 * (_target_loss(kind, real_logits, True) + _target_loss(kind, fake_logits, False))


def gan_g_loss(kind: GanLoss, fake_logits: Tensor) -> Tensor:
    """Generator loss: ``loss(fake, 1)`` (LSGAN: ``mean((D(G(x)) - 1)^2)``). 0-d tensor."""
    return _target_loss(kind, fake_logits, True)


def _l1(name: str, a: Tensor, b: Tensor) -> Tensor:
    if a.shape != b.shape:
        raise ShapeError(f"{name}: shapes differ, {list(a.shape)} vs {list(b.shape)}")
    return (a - b).abs().mean()


def cycle_loss(reconstructed: Tensor, original: Tensor) -> Tensor:
    """Cycle consistency ``mean |F(G(x)) - x|`` (unweighted L1, images [N, 3, H, W])."""
    return _l1("cycle_loss", reconstructed, original)


def identity_loss(mapped: Tensor, original: Tensor) -> Tensor:
    """Identity ``mean |G(y) - y|`` for ``y`` already in G's target domain (unweighted L1)."""
    return _l1("identity_loss", mapped, original)


class ImagePool:
    """The last ``size`` generated images, from which the discriminator is shown a mix of old and new.

    For each image of a batch: while the pool is not full it is stored and returned; once full,
    with probability 1/2 a random stored image is returned and replaced by the new one, else the
    new one is returned. ``size == 0`` returns the batch unchanged. The choices come from the
    ``generator`` passed to :meth:`query`, and :meth:`state_dict` holds the images, so a resumed
    run draws exactly what an uninterrupted one would.

    Images are kept detached, on the device they arrive on.
    """

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ConfigError(f"pool_size={size!r} is not allowed; expected >= 0")
        self.size = int(size)
        self.images: list[Tensor] = []  # each [3, H, W]

    def __len__(self) -> int:
        return len(self.images)

    @torch.no_grad()
    def query(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """``images`` [N, C, H, W] -> [N, C, H, W] to show the discriminator (detached)."""
        if images.ndim != 4:
            raise ShapeError(f"ImagePool.query expects [N, C, H, W], got {list(images.shape)}")
        images = images.detach()
        if self.size == 0:
            return images
        out = []
        for img in images:
            if len(self.images) < self.size:
                self.images.append(img.clone())
                out.append(img)
                continue
            # Both draws happen for every image, so the RNG advances the same way whatever is chosen.
            coin = float(torch.rand((), generator=generator, device=img.device))
            k = int(torch.randint(self.size, (), generator=generator, device=img.device))
            if coin > 0.5:
                out.append(self.images[k].clone())
                self.images[k] = img.clone()
            else:
                out.append(img)
        return torch.stack(out)

    def state_dict(self) -> dict[str, Any]:
        """``{"size": int, "images": [k, C, H, W] tensor (k = 0 when empty)}``."""
        stacked = torch.stack(self.images) if self.images else torch.empty(0)
        return {"size": self.size, "images": stacked.cpu()}

    def load_state_dict(self, state: dict[str, Any], device: torch.device | str | None = None) -> None:
        """Restore a pool saved by :meth:`state_dict` (its ``size`` must match)."""
        if int(state["size"]) != self.size:
            raise ConfigError(f"image pool of size {state['size']} cannot be loaded into one of size {self.size}")
        stacked: Tensor = state["images"]
        self.images = [img.to(device) if device is not None else img for img in stacked] if stacked.numel() else []
