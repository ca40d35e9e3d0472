"""CycleGAN networks (Zhu et al. 2017, arXiv 1703.10593): a ResNet generator and a PatchGAN discriminator.

Both work on images in [-1, 1] (``x * 2 - 1`` of the [0, 1] patches the datasets return), as
in the paper's code (junyanz/pytorch-CycleGAN-and-pix2pix), whose layer choices are kept:

* generator ``c7s1-k, d2k, d4k, R4k x n, u2k, uk, c7s1-3``: 7x7 stem and head with reflection
  padding, two stride-2 3x3 convolutions down, ``n`` residual blocks, two fractionally strided
  convolutions up, tanh; instance norm (no affine, no running statistics) after every inner
  convolution, convolutions with bias;
* discriminator ``C64-C128-C256-C512`` + a 1-channel convolution: 4x4 convolutions, stride 2
  except the last two, LeakyReLU 0.2, instance norm on all but the first; with 3 downsampling
  layers each output logit sees a 70x70 patch of the input.

Widths (``ngf``, ``ndf``), the number of residual blocks and of discriminator layers are
parameters, so a CPU-sized model is the same architecture, narrower. Networks are built by
registered name (:func:`build_translator_generator`, :func:`build_translator_discriminator`),
which is how :class:`pathgan.config.TranslateConfig` names them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from pathgan.errors import ConfigError, ShapeError

__all__ = [
    "PatchDiscriminator",
    "ResnetGenerator",
    "build_translator_discriminator",
    "build_translator_generator",
    "init_weights",
    "list_translator_discriminators",
    "list_translator_generators",
    "patch_receptive_field",
]


def _check_images(name: str, x: Tensor, multiple: int, min_px: int) -> None:
    """``x`` must be ``[N, 3, H, W]`` with H and W multiples of ``multiple`` and at least ``min_px``."""
    if x.ndim != 4 or x.shape[1] != 3:
        raise ShapeError(f"{name} expects images [N, 3, H, W], got {list(x.shape)}")
    h, w = int(x.shape[2]), int(x.shape[3])
    if h % multiple or w % multiple or h < min_px or w < min_px:
        raise ShapeError(f"{name} expects H and W that are multiples of {multiple} and >= {min_px} px, "
                         f"got {h}x{w}")


class _ResidualBlock(nn.Module):
    """``x + (pad-conv3-IN-ReLU-pad-conv3-IN)(x)``, channels unchanged."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)  # type: ignore[no-any-return]


class ResnetGenerator(nn.Module):
    """Image-to-image generator ``[N, 3, H, W] -> [N, 3, H, W]`` in [-1, 1] (H, W multiples of 4).

    Parameters
    ----------
    ngf : channels of the first layer (64 in the paper); the bottleneck has ``4 * ngf``.
    n_blocks : residual blocks at 1/4 resolution (9 for 256-px images in the paper, 6 for 128 px).
    """

    def __init__(self, ngf: int = 64, n_blocks: int = 9) -> None:
        super().__init__()
        if ngf < 1 or n_blocks < 0:
            raise ConfigError(f"ResnetGenerator: ngf={ngf} must be >= 1 and n_blocks={n_blocks} >= 0")
        self.ngf, self.n_blocks = ngf, n_blocks
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7), nn.InstanceNorm2d(ngf), nn.ReLU(True)]
        for i in range(2):  # d2k, d4k
            c = ngf * 2**i
            layers += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), nn.InstanceNorm2d(2 * c), nn.ReLU(True)]
        layers += [_ResidualBlock(4 * ngf) for _ in range(n_blocks)]
        for i in range(2):  # u2k, uk
            c = ngf * 2 ** (2 - i)
            layers += [nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1),
                       nn.InstanceNorm2d(c // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """``x`` [N, 3, H, W] in [-1, 1] -> [N, 3, H, W] in [-1, 1]; :class:`ShapeError` otherwise."""
        # Two stride-2 convolutions and two 2x upsamplings return the input size only for
        # multiples of 4; 8 px is the least the 7x7 reflection padding (3 px) works on.
        _check_images("ResnetGenerator", x, 4, 8)
        y = self.net(x)
        assert y.shape == x.shape, (list(y.shape), list(x.shape))
        return y  # type: ignore[no-any-return]


class PatchDiscriminator(nn.Module):
    """PatchGAN discriminator ``[N, 3, H, W] -> [N, 1, h, w]`` raw logits, one per input patch.

    Parameters
    ----------
    ndf : channels of the first layer (64 in the paper); doubled per layer up to ``8 * ndf``.
    n_layers : stride-2 layers (3 in the paper: 70x70 receptive field, see
        :func:`patch_receptive_field`).
    """

    def __init__(self, ndf: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        if ndf < 1 or n_layers < 1:
            raise ConfigError(f"PatchDiscriminator: ndf={ndf} and n_layers={n_layers} must be >= 1")
        self.ndf, self.n_layers = ndf, n_layers
        layers: list[nn.Module] = [nn.Conv2d(3, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        c = ndf
        for i in range(1, n_layers + 1):
            out = ndf * min(2**i, 8)
            stride = 2 if i < n_layers else 1  # the paper's last hidden layer keeps the resolution
            layers += [nn.Conv2d(c, out, 4, stride=stride, padding=1), nn.InstanceNorm2d(out), nn.LeakyReLU(0.2, True)]
            c = out
        layers += [nn.Conv2d(c, 1, 4, stride=1, padding=1)]
        self.net = nn.Sequential(*layers)

    @property
    def min_px(self) -> int:
        """Smallest input side that still yields at least a 1x1 logit map."""
        return 2 ** (self.n_layers + 2)

    def forward(self, x: Tensor) -> Tensor:
        """``x`` [N, 3, H, W] in [-1, 1] -> logits [N, 1, h, w]; :class:`ShapeError` for other shapes."""
        _check_images("PatchDiscriminator", x, 1, self.min_px)
        y = self.net(x)
        assert y.ndim == 4 and y.shape[:2] == (x.shape[0], 1), list(y.shape)
        return y  # type: ignore[no-any-return]


def patch_receptive_field(n_layers: int) -> int:
    """Input pixels seen by one logit of :class:`PatchDiscriminator` (70 for ``n_layers=3``)."""
    rf, jump = 1, 1
    strides = [2] * n_layers + [1, 1]
    for s in strides:  # every layer is a 4x4 convolution
        rf += 3 * jump
        jump *= s
    return rf


# -- registry: networks by name ----------------------------------------------------------------
GeneratorFactory = Callable[..., nn.Module]
_GENERATORS: dict[str, GeneratorFactory] = {"resnet": ResnetGenerator}
_DISCRIMINATORS: dict[str, GeneratorFactory] = {"patchgan": PatchDiscriminator}


def list_translator_generators() -> list[str]:
    """Registered generator names (``TranslateConfig.generator``)."""
    return sorted(_GENERATORS)


def list_translator_discriminators() -> list[str]:
    """Registered discriminator names (``TranslateConfig.discriminator``)."""
    return sorted(_DISCRIMINATORS)


def build_translator_generator(name: str, *, ngf: int, n_blocks: int) -> nn.Module:
    """Build the generator registered as ``name``; :class:`ConfigError` listing the known names otherwise."""
    try:
        factory = _GENERATORS[name]
    except KeyError:
        raise ConfigError(f"unknown translation generator {name!r}; known: {list_translator_generators()}") from None
    return factory(ngf=ngf, n_blocks=n_blocks)


def build_translator_discriminator(name: str, *, ndf: int, n_layers: int) -> nn.Module:
    """Build the discriminator registered as ``name``; :class:`ConfigError` listing the known names otherwise."""
    try:
        factory = _DISCRIMINATORS[name]
    except KeyError:
        raise ConfigError(f"unknown translation discriminator {name!r}; "
                          f"known: {list_translator_discriminators()}") from None
    return factory(ndf=ndf, n_layers=n_layers)


def init_weights(module: nn.Module, *, std: float = 0.02, generator: torch.Generator | None = None) -> None:
    """The paper code's init: conv weights ~ N(0, 0.02), biases 0 (instance norm has no weights)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.normal_(m.weight, 0.0, std, generator=generator)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
