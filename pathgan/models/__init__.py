"""PathologyGAN models: registry of named configurations, mapping network, generator, discriminator.

>>> from pathgan.models import build
>>> model = build("pathologygan-64-cpu")
"""

from __future__ import annotations

from pathgan.models._discriminator import Discriminator
from pathgan.models._encoder import Encoder
from pathgan.models._generator import Generator
from pathgan.models._mapping import (
    MappingNetwork,
    broadcast_w,
    map_any_class,
    mix_styles,
    random_classes,
    render,
)
from pathgan.models._pathologygan import PathologyGAN
from pathgan.models._registry import (
    build,
    describe_configs,
    get_config,
    list_configs,
    param_counts,
    register,
)

__all__ = [
    "Discriminator",
    "Encoder",
    "Generator",
    "MappingNetwork",
    "PathologyGAN",
    "broadcast_w",
    "build",
    "describe_configs",
    "get_config",
    "list_configs",
    "map_any_class",
    "mix_styles",
    "param_counts",
    "random_classes",
    "register",
    "render",
]
