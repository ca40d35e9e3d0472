"""Choosing the torch device a command runs on (``--device auto|cpu|cuda|cuda:1|mps``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pathgan.errors import PathganError

if TYPE_CHECKING:
    import torch

__all__ = ["select_device"]


def select_device(name: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; anything else is passed to ``torch.device``."""
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise PathganError(f"--device {name!r} is not a torch device (auto, cpu, cuda, cuda:1, mps)") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PathganError(f"--device {name}: CUDA is not available on this machine")
    return device
