"""What every training loop (GAN, encoder, CycleGAN) checks each step: finite losses and gradient norms."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from pathgan.errors import PathganError

__all__ = ["TrainingDivergedError", "finite", "grad_norm"]


class TrainingDivergedError(PathganError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


def grad_norm(params: list[nn.Parameter]) -> float:
    """The L2 norm of all gradients of ``params`` together (0 when none has a gradient)."""
    norms = [p.grad.detach().norm() for p in params if p.grad is not None]
    return float(torch.stack(norms).norm()) if norms else 0.0


def finite(name: str, value: torch.Tensor | float, *, step: int, run_dir: Path, hint: str) -> float:
    """``value`` as a float; a :class:`TrainingDivergedError` naming the step, the run's checkpoints
    and ``hint`` (what to change before resuming) when it is NaN or infinite."""
    v = float(value.detach()) if isinstance(value, torch.Tensor) else float(value)
    if not math.isfinite(v):
        raise TrainingDivergedError(f"{name} became {v} at step {step}; the last good checkpoint in "
                                    f"{Path(run_dir) / 'checkpoints'} is kept: {hint}")
    return v
