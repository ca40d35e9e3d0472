"""Mapping network z -> w and the style-slot helpers (broadcast, style mixing)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pathgan.errors import ConfigError, ShapeError
from pathgan.models._layers import EqualizedLinear, check_shape, linear, lrelu

__all__ = ["MappingNetwork", "ResidualDenseBlock", "broadcast_w", "check_classes", "map_any_class", "mix_styles", "random_classes",
           "render"]


class ResidualDenseBlock(nn.Module):
    """``relu(skip(x) + fc2(relu(fc1(x))))``, [N, in_features] -> [N, out_features].

    Fixes a reference bug: there the first layer's output was overwritten before use (dead code),
    so each block was effectively a single layer. Here both layers are on the path.
    ``skip`` is the identity when the widths agree, otherwise a bias-free linear projection.
    With ``equalized`` the layers have equalized learning rate at ``lr_mul``, the activations are
    LeakyReLU x sqrt(2) and the sum is rescaled by 1/sqrt(2), so activations stay at unit variance.
    """

    def __init__(self, in_features: int, out_features: int, *, equalized: bool = False, lr_mul: float = 1.0) -> None:
        super().__init__()
        self.equalized = equalized
        self.fc1 = linear(in_features, out_features, equalized=equalized, lr_mul=lr_mul)
        self.fc2 = linear(out_features, out_features, equalized=equalized, lr_mul=lr_mul)
        self.skip: nn.Module = nn.Identity()
        if in_features != out_features:
            if equalized:
                self.skip = EqualizedLinear(in_features, out_features, bias=False, lr_mul=lr_mul)
            else:
                proj = nn.Linear(in_features, out_features, bias=False)
                nn.init.orthogonal_(proj.weight)
                self.skip = nn.utils.parametrizations.spectral_norm(proj)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.equalized:
            return lrelu((self.skip(x) + self.fc2(lrelu(self.fc1(x), True))) * 0.5**0.5, True)
        return F.relu(self.skip(x) + self.fc2(F.relu(self.fc1(x))))


class MappingNetwork(nn.Module):
    """z [N, z_dim] (and class c [N] when conditional) -> w [N, w_dim].

    ``n_blocks`` residual dense blocks then a linear layer. With ``n_classes`` >= 2 the network
    is class-conditional: a learned embedding of c (one vector per class, z_dim wide) is
    concatenated with z, each scaled to unit second moment so neither drowns the other (the
    StyleGAN2-ADA form of a conditional mapping network).

    With ``equalized`` (``ModelConfig.weights``) z is first scaled to unit second moment (StyleGAN's
    pixel norm) and every layer learns at ``lr_mul`` of the global rate.
    """

    def __init__(self, z_dim: int, w_dim: int, n_blocks: int, n_classes: int = 0, *, equalized: bool = False,
                 lr_mul: float = 1.0) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.w_dim = w_dim
        self.n_classes = n_classes
        self.equalized = equalized
        in_dim = z_dim
        if n_classes:
            self.embed = nn.Embedding(n_classes, z_dim)
            in_dim = 2 * z_dim
        self.blocks = nn.Sequential(
            *(ResidualDenseBlock(in_dim if i == 0 else w_dim, w_dim, equalized=equalized, lr_mul=lr_mul)
              for i in range(n_blocks))
        )
        self.out = linear(w_dim, w_dim, equalized=equalized, lr_mul=lr_mul)

    @classmethod
    def from_config(cls, cfg: Any) -> MappingNetwork:
        """The mapping network of a :class:`pathgan.config.ModelConfig`."""
        eq = cfg.weights == "equalized"
        return cls(cfg.z_dim, cfg.w_dim, cfg.mapping_blocks, cfg.n_classes, equalized=eq,
                   lr_mul=cfg.mapping_lr_mul if eq else 1.0)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        check_shape(z, (None, self.z_dim), "MappingNetwork z")
        c = check_classes(c, self.n_classes, z.shape[0], "MappingNetwork")
        if c is not None:
            z = torch.cat([_unit_moment(z), _unit_moment(self.embed(c))], dim=1)
        elif self.equalized:
            z = _unit_moment(z)
        w: torch.Tensor = self.out(self.blocks(z))
        return w


def _unit_moment(x: torch.Tensor) -> torch.Tensor:
    return x * (x.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()


def check_classes(c: torch.Tensor | None, n_classes: int, n: int, where: str) -> torch.Tensor | None:
    """Validate class indices for a network with ``n_classes`` (0 = unconditional): int64 [n] in
    [0, n_classes), or ``None`` exactly when the network is unconditional.

    Raises
    ------
    ConfigError : a class given to an unconditional network, or missing for a conditional one.
    ShapeError : wrong shape or an index out of range.
    """
    if not n_classes:
        if c is not None:
            raise ConfigError(f"{where}: this model is unconditional; it takes no class")
        return None
    if c is None:
        raise ConfigError(f"{where}: this model is class-conditional ({n_classes} classes); pass the class of "
                          "every sample")
    check_shape(c, (n,), f"{where} c")
    if c.dtype not in (torch.int64, torch.int32) or (c.numel() and (int(c.min()) < 0 or int(c.max()) >= n_classes)):
        raise ShapeError(f"{where}: classes must be integers in [0, {n_classes}), got {c.dtype} "
                         f"{c.min().item() if c.numel() else ''}..{c.max().item() if c.numel() else ''}")
    return c.long()


def map_any_class(mapping: Any, z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """``mapping(z)``, with classes drawn uniformly (from ``generator``) when the mapping is
    conditional: w of the whole learned distribution, for statistics and encoder training."""
    return mapping(z, random_classes(z.shape[0], int(getattr(mapping, "n_classes", 0)), generator, z.device))  # type: ignore[no-any-return]


def random_classes(n: int, n_classes: int, generator: torch.Generator | None = None,
                   device: torch.device | str = "cpu") -> torch.Tensor | None:
    """``n`` classes drawn uniformly (int64 [n]), or ``None`` for an unconditional model."""
    if not n_classes:
        return None
    return torch.randint(0, n_classes, (n,), generator=generator, device=device)


def broadcast_w(w: torch.Tensor, n_slots: int) -> torch.Tensor:
    """The same w in every style slot: [N, w_dim] -> [N, n_slots, w_dim] (a view, no copy)."""
    check_shape(w, (None, None), "broadcast_w w")
    return w.unsqueeze(1).expand(-1, n_slots, -1)


def render(generator: Any, w: torch.Tensor, *, noise: bool = True,
           rng: torch.Generator | None = None) -> torch.Tensor:
    """Images [N, 3, px, px] in [0, 1] from one w per image [N, w_dim] (the same w in every slot).

    ``rng`` seeds the generator's noise (a ``torch.Generator`` on ``w.device``).
    """
    out: torch.Tensor = generator(broadcast_w(w, int(generator.n_slots)), noise=noise, generator=rng)
    return out


def mix_styles(
    w1: torch.Tensor,
    w2: torch.Tensor,
    n_slots: int,
    p: float,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Style mixing: per sample, with probability ``p``, w1 below a random crossover slot, w2 from it.

    Parameters
    ----------
    w1, w2 : [N, w_dim] latents from the mapping network.
    n_slots : style slots of the generator (1 + its stages).
    p : mixing probability in [0, 1].
    generator : optional ``torch.Generator`` on ``w1.device`` for reproducible draws.

    Returns
    -------
    ws : [N, n_slots, w_dim]; a mixed sample uses w1 for slots ``< k`` and w2 for slots ``>= k``
        with ``k`` uniform in ``[1, n_slots)``; an unmixed one uses w1 everywhere.
    mixed : bool [N], which samples were mixed (the encoder trains only on unmixed ones).

    Raises
    ------
    ConfigError : ``p`` outside [0, 1] or ``n_slots < 1``.
    ValueError : ``w1`` and ``w2`` differ in shape or are not [N, w_dim].
    """
    if not 0.0 <= p <= 1.0:
        raise ConfigError(f"style mixing p={p!r} is not allowed; expected [0, 1]")
    if n_slots < 1:
        raise ConfigError(f"n_slots={n_slots!r} is not allowed; expected >= 1")
    check_shape(w1, (None, None), "mix_styles w1")
    check_shape(w2, tuple(w1.shape), "mix_styles w2")
    n = w1.shape[0]
    device = w1.device
    if n_slots == 1:  # no crossover point exists
        return broadcast_w(w1, 1), torch.zeros(n, dtype=torch.bool, device=device)
    mixed = torch.rand(n, generator=generator, device=device) < p
    k = torch.randint(1, n_slots, (n,), generator=generator, device=device)
    slot = torch.arange(n_slots, device=device)
    use_w2 = mixed[:, None] & (slot[None, :] >= k[:, None])  # [N, n_slots]
    ws = torch.where(use_w2[:, :, None], w2[:, None, :], w1[:, None, :])
    return ws, mixed
