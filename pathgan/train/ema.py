"""Exponential moving average of a model's weights (used to sample from the generator)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

import torch
from torch import Tensor, nn

from pathgan.errors import ConfigError, ShapeError

__all__ = ["EMA"]

M = TypeVar("M", bound=nn.Module)


class EMA(Generic[M]):
    """A frozen copy of a module whose parameters track an exponential moving average.

    ``p_ema <- decay * p_ema + (1 - decay) * p`` for every parameter; buffers (batch-norm
    statistics, spectral-norm ``u``/``v`` vectors) are copied, not averaged, because they are
    estimates of the current weights rather than weights themselves. With spectral norm the
    averaged tensors are the un-normalised ``parametrizations.weight.original``; the copy
    normalises them with the live model's ``u``/``v`` (in eval mode no power iteration runs).

    Parameters
    ----------
    model : the module to track (e.g. generator with its mapping network). It is deep-copied,
        put in eval mode and its copy's parameters stop requiring gradients.

    Attributes
    ----------
    module : the averaged copy, of the same type as ``model`` (so an ``nn.ModuleDict`` stays
        indexable); call it to sample.
    """

    def __init__(self, model: M) -> None:
        self.module: M = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: M, decay: float) -> None:
        """One averaging step towards ``model`` (which must have the same structure).

        Parameters
        ----------
        model : the live module being trained.
        decay : weight of the old average in [0, 1]; 0 copies ``model`` exactly.

        Raises
        ------
        ValueError : ``decay`` is outside [0, 1] or ``model``'s parameter/buffer names differ.
        """
        if not 0.0 <= decay <= 1.0:
            raise ConfigError(f"decay must be in [0, 1], got {decay}")
        ema_params = dict(self.module.named_parameters())
        live_params = dict(model.named_parameters())
        ema_buffers = dict(self.module.named_buffers())
        live_buffers = dict(model.named_buffers())
        if ema_params.keys() != live_params.keys() or ema_buffers.keys() != live_buffers.keys():
            missing = sorted((ema_params.keys() | ema_buffers.keys()) ^ (live_params.keys() | live_buffers.keys()))
            raise ShapeError(f"model does not match the EMA copy; differing entries: {missing[:10]}")
        for name, ema_p in ema_params.items():
            live = live_params[name].detach()
            if decay == 0.0:
                ema_p.copy_(live)  # exact, whatever lerp's rounding would do
            else:
                ema_p.lerp_(live.to(ema_p.dtype), 1.0 - decay)
        for name, ema_b in ema_buffers.items():
            ema_b.copy_(live_buffers[name])

    def state_dict(self) -> dict[str, Tensor]:
        """The averaged module's state dict (parameters and buffers)."""
        return dict(self.module.state_dict())

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a state saved by :meth:`state_dict` (strict: names must match)."""
        self.module.load_state_dict(state)
