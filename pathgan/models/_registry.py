"""Named model configurations (timm-style registry), building and parameter counting."""

from __future__ import annotations

import dataclasses
import functools

import torch
from torch import nn

from pathgan.config import ModelConfig
from pathgan.errors import ConfigError
from pathgan.models._pathologygan import PathologyGAN

__all__ = ["build", "describe_configs", "get_config", "list_configs", "param_counts", "register"]

_REGISTRY: dict[str, ModelConfig] = {}

# What the reference TF model has at 224 px (from its released graph), for describe_configs().
REFERENCE_224 = {
    "mapping": 360_000,
    "generator": 187_000_000,
    "generator_adain_stem": 161_000_000,
    "discriminator": 30_000_000,
}


def register(cfg: ModelConfig) -> ModelConfig:
    """Add ``cfg`` under ``cfg.name``; re-registering an identical config is a no-op.

    Raises ``ConfigError`` when the name is taken by a different configuration.
    """
    old = _REGISTRY.get(cfg.name)
    if old is not None and old != cfg:
        raise ConfigError(f"model {cfg.name!r} is already registered with a different configuration")
    _REGISTRY[cfg.name] = cfg
    return cfg


def list_configs() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_REGISTRY)


def get_config(name: str) -> ModelConfig:
    """The registered configuration ``name``; ``ConfigError`` listing the known names otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; known: {', '.join(list_configs())}") from None


def build(name_or_cfg: str | ModelConfig) -> PathologyGAN:
    """Build a model by registered name or from a config.

    Parameters are created on the current default device; ``with torch.device("meta"): build(...)``
    counts parameters without allocating them.
    """
    cfg = get_config(name_or_cfg) if isinstance(name_or_cfg, str) else name_or_cfg
    return PathologyGAN(cfg)


def _numel(module: nn.Module) -> int:
    # Spectral norm keeps the raw weight as a parameter and u, v as buffers: counts are unaffected.
    return sum(p.numel() for p in module.parameters())


def param_counts(model: PathologyGAN) -> dict[str, int]:
    """Parameter counts: mapping, generator, generator_adain (all its AdaIN MLPs),
    generator_adain_stem (the AdaIN MLP of the 7*7*g_stem_channels dense layer), discriminator, total."""
    from pathgan.models._layers import AdaIN

    g = model.generator
    return {
        "mapping": _numel(model.mapping),
        "generator": _numel(g),
        "generator_adain": sum(_numel(m) for m in g.modules() if isinstance(m, AdaIN)),
        "generator_adain_stem": _numel(g.norm2) if hasattr(g, "norm2") else 0,
        "discriminator": _numel(model.discriminator),
        "total": _numel(model),
    }


@functools.cache
def _meta_param_counts(cfg: ModelConfig) -> dict[str, int]:
    # Meta tensors: shapes only, no memory and no orthogonal-init QR (which takes ~50 s for -224 on CPU).
    with torch.device("meta"):
        return param_counts(build(cfg))


def describe_configs() -> str:
    """A plain-text table of every registered config and its parameter counts (in millions);
    for ``pathologygan-224`` the reference model's counts follow on their own row."""
    cols = ("mapping", "generator", "generator_adain", "generator_adain_stem", "discriminator")
    head = f"{'name':<22}{'px':>5}{'z/w':>9}{'map':>8}{'G':>9}{'G adain':>9}{'G stem':>9}{'D':>8}"
    lines = [head, "-" * len(head)]

    def row(label: str, px: str, zw: str, counts: dict[str, int]) -> str:
        m = [f"{counts[c] / 1e6:.2f}" if c in counts else "-" for c in cols]
        return f"{label:<22}{px:>5}{zw:>9}{m[0]:>8}{m[1]:>9}{m[2]:>9}{m[3]:>9}{m[4]:>8}"

    for name in list_configs():
        cfg = get_config(name)
        counts = _meta_param_counts(cfg)
        lines.append(row(name, str(cfg.image_px), f"{cfg.z_dim}/{cfg.w_dim}", counts))
        if name == "pathologygan-224-paper":
            lines.append(row("  reference (TF)", "224", "200/200", REFERENCE_224))
    lines.append("counts in millions; G stem = AdaIN MLP of the 7*7*g_stem_channels dense layer")
    return "\n".join(lines)


_PAPER = ModelConfig(name="pathologygan-224-paper")
# The architecture as published (every ModelConfig default is the reference's): kept unchanged so
# that results can be compared with the paper's.
register(_PAPER)
# The paper-sized configs take the fixes the CPU preset measured, where they apply at this size:
# bilinear upsampling + 3x3 conv instead of transposed convs (the checkerboard grid), StyleGAN2 weight
# modulation/demodulation with equalized learning rate instead of AdaIN over spectral-normalised
# convs (every z drew one texture), a linear output. The 7x7 stem, widths, residual blocks and
# attention stay the reference's; noise stays at every resolution (StyleGAN2's choice at GPU scale).
# Without the stem's AdaIN MLP (161M of the reference's 187M) G is ~25M. Not measured at this size:
# no GPU was lent to this project (README "Does the generator draw tissue?").
_BASE = dataclasses.replace(_PAPER, name="pathologygan-224", upsample="bilinear", weights="equalized",
                            style="modulated", output="linear")
register(_BASE)
# Native sizes share the reference's 7x7 head and its width at each resolution (512 @ 14 px,
# 256 @ 28 px, ...): they differ only by stages appended or removed at the output end.
register(dataclasses.replace(_BASE, name="pathologygan-56", image_px=56,
                             g_channels=(512, 256, 128), d_channels=(128, 256, 512)))
register(dataclasses.replace(_BASE, name="pathologygan-112", image_px=112,
                             g_channels=(512, 256, 128, 64), d_channels=(64, 128, 256, 512)))
register(dataclasses.replace(_BASE, name="pathologygan-448", image_px=448,
                             g_channels=(512, 256, 128, 64, 32, 16),
                             d_channels=(16, 32, 64, 128, 256, 512)))
# Small enough for one training step (batch 16: a D step with gradient penalty + a G step) in
# ~0.25 s on 2 CPU cores, for tests, CI and laptops. Two cuts beyond narrower widths, both measured:
# attention at 14 px (at 28 px its 784 x 784 maps, differentiated twice by the gradient penalty,
# took ~0.65 s of a 0.95 s step), and a 32-channel stem (g_channels[0] / 2, the reference's ratio),
# which shrinks the stem's AdaIN MLP from 10.1M to 2.1M parameters.
# Minibatch std (groups of 4) in D, unlike the reference: without it this small model mode-collapsed
# on real 56-px tiles (all samples one pink texture, D at chance). Measured at 1500 CPU steps with
# configs/train/pathologygan-56-cpu.yaml (TTUR, translation-only DiffAugment): spread of samples across z
# 0.048 without it and 0.091 with it (real patches: 0.141), Inception KID x1e3 552 -> 475.
register(ModelConfig(name="pathologygan-56-cpu", image_px=56, z_dim=64, w_dim=64,
                     g_channels=(64, 32, 16), d_channels=(16, 32, 64), dense_units=256,
                     g_stem_channels=32, attention_px=14, mbstd_group=4))
# The CPU preset, chosen by measurement on 2 cores (configs/train/pathologygan-64-cpu.yaml and the
# README's ablation table say why each choice was made). Against pathologygan-56-cpu: a 4-px stem and
# 64-px output (a power of two: bilinear upsampling and 2x2 downsampling line up, no 7x7 head),
# bilinear upsampling + 3x3 conv instead of transposed convolutions (the checkerboard grid),
# StyleGAN2 weight modulation/demodulation with equalized learning rate instead of AdaIN over
# spectral-normalised convs (AdaIN's per-channel normalisation let every z draw the same texture),
# a linear output, noise only up to 16 px (per-pixel noise at 32/64 px drew speckle instead of
# nuclei), residual blocks only on the 4- and 8-px maps (residual convs on every map cut the
# images/s from ~116 to ~77), and a D half as wide as G's top stage.
register(ModelConfig(name="pathologygan-64-cpu", image_px=64, stem_px=4, z_dim=64, w_dim=128,
                     g_channels=(128, 64, 32, 16), d_channels=(16, 32, 64, 128), dense_units=256,
                     g_stem_channels=128, attention_px=16, mbstd_group=4, upsample="bilinear",
                     weights="equalized", style="modulated", output="linear",
                     noise_max_px=16, res_max_px=8))
