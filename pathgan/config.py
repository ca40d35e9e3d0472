"""Frozen, keyword-only configuration dataclasses.

Defaults live here and only here; the presets in ``pathgan/presets/`` (:mod:`pathgan.presets`)
are their serialisation.
Every dataclass validates itself in ``__post_init__`` and raises :class:`ConfigError`
naming the field, the value received and what is allowed.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from pathgan.errors import ConfigError

__all__ = ["Backend", "Codec", "EncoderConfig", "GanLoss", "LossKind", "ModelConfig", "OutputKind", "PenaltyKind", "Precision", "StainMethod", "StyleKind", "TileConfig",
           "TissueConfig", "TrainConfig", "TranslateConfig", "UpsampleKind", "WeightParam", "from_dict",
           "to_dict"]

Backend = Literal["auto", "openslide", "tiffslide"]
Codec = Literal["jpeg", "zstd"]
StainMethod = Literal["macenko", "vahadane", "reinhard"]


def _check(cond: bool, name: str, value: object, allowed: str) -> None:
    if not cond:
        raise ConfigError(f"{name}={value!r} is not allowed; expected {allowed}")


_HINTS: dict[type, dict[str, Any]] = {}


def _field_types(cls: type) -> dict[str, Any]:
    """The resolved annotations of a config class (``from __future__ import annotations`` makes them strings)."""
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _describe(tp: Any) -> str:
    """What a value of annotation ``tp`` looks like, in the words of an error message."""
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        others = [a for a in get_args(tp) if a is not type(None)]
        return " or ".join(_describe(a) for a in others) + (" or null" if len(others) < len(get_args(tp)) else "")
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin is tuple:
        return f"a list of {_describe(get_args(tp)[0]).removeprefix('an ').removeprefix('a ')}s"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        tp, getattr(tp, "__name__", str(tp)))


def _coerce(name: str, value: Any, tp: Any) -> Any:
    """``value`` checked against the annotation ``tp`` (and widened where that loses nothing: an int
    to a float, a list to a tuple, a YAML 1.1 string such as ``1e-4`` to the number it spells).

    Raises :class:`ConfigError` ``"batch_size: expected an integer, got 'abc'"``. Literal values are
    left to each class's own range checks, which list what is allowed.
    """
    origin = get_origin(tp)
    if tp is Any or origin is Literal:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in get_args(tp):
            return None
        for arg in (a for a in get_args(tp) if a is not type(None)):
            try:
                return _coerce(name, value, arg)
            except ConfigError:
                continue
        raise ConfigError(f"{name}: expected {_describe(tp)}, got {value!r}")
    ok = True
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        if isinstance(value, str):  # PyYAML reads 1e-4 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                ok = False
        ok = ok and isinstance(value, int | float) and not isinstance(value, bool)
        if ok:
            value = float(value)
    elif tp is str:
        ok = isinstance(value, str)
    elif origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{name}: expected {_describe(tp)}, got {value!r}")
        return tuple(_coerce(f"{name}[{i}]", v, get_args(tp)[0]) for i, v in enumerate(value))
    elif dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, dict):
            return from_dict(tp, value)
        ok = isinstance(value, tp)
    if not ok:
        raise ConfigError(f"{name}: expected {_describe(tp)}, got {value!r}")
    return value


def _check_types(obj: Any) -> None:
    """Check (and widen, see :func:`_coerce`) every field of a frozen config dataclass by its
    annotation, before its ``__post_init__`` compares values: ``--set batch_size=abc`` then says
    what it expected instead of ``'>=' not supported between instances of 'str' and 'int'``."""
    hints = _field_types(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        new = _coerce(f.name, value, hints[f.name])
        if new is not value:
            object.__setattr__(obj, f.name, new)


@dataclass(frozen=True, kw_only=True)
class TissueConfig:
    """How tissue, pen ink and blur are detected on the slide thumbnail.

    Attributes
    ----------
    thumbnail_mpp : microns per pixel of the analysis thumbnail (8-16 um/px is typical).
    min_saturation : lower bound on the Otsu threshold of HSV saturation in [0, 1]; it keeps an
        empty glass slide from being split into "tissue" and "background" by noise.
    min_area_um2 : tissue pieces smaller than this area are dropped.
    max_hole_um2 : holes inside tissue smaller than this area are filled.
    detect_pen : find red, green, blue and black ink and exclude it from tissue.
    """

    thumbnail_mpp: float = 8.0
    min_saturation: float = 0.07
    min_area_um2: float = 20_000.0
    max_hole_um2: float = 10_000.0
    detect_pen: bool = True

    def __post_init__(self) -> None:
        _check_types(self)
        _check(1.0 <= self.thumbnail_mpp <= 64.0, "thumbnail_mpp", self.thumbnail_mpp, "1-64 um/px")
        _check(0.0 <= self.min_saturation < 1.0, "min_saturation", self.min_saturation, "[0, 1)")
        _check(self.min_area_um2 >= 0, "min_area_um2", self.min_area_um2, ">= 0")
        _check(self.max_hole_um2 >= 0, "max_hole_um2", self.max_hole_um2, ">= 0")


@dataclass(frozen=True, kw_only=True)
class TileConfig:
    """What ``pathgan tile`` cuts and how it stores it.

    Attributes
    ----------
    mpp : target microns per pixel of the stored patches.
    patch_px : patch width and height in pixels at ``mpp``.
    stride_px : distance between patch origins in pixels at ``mpp`` (``patch_px`` = no overlap).
    min_tissue_fraction : a patch is kept when at least this fraction of it is tissue.
    max_pen_fraction : a patch is dropped when more than this fraction of it is pen ink.
    backend : slide reading library; ``auto`` prefers openslide and falls back to tiffslide.
    codec : ``jpeg`` (lossy, quality ``jpeg_quality``) or ``zstd`` (lossless).
    patches_per_shard : patches per Zarr shard (one patch per inner chunk).
    scaled_decode : let libjpeg decode source tiles at 1/2, 1/4 or 1/8 scale when the
        target resolution is that much coarser (its DCT scaling is a proper low-pass).
    export_h5 : also write CLAM-compatible ``<slide_id>.h5`` coordinate files.
    stain_normalize : normalise every patch's stains to ``stain_target`` before it is stored
        (``macenko``, ``vahadane`` or ``reinhard``; see :mod:`pathgan.stain`), or None.
    stain_target : path of the RGB image the normaliser is fitted to, once per run.
    """

    mpp: float = 0.5
    patch_px: int = 256
    stride_px: int | None = None
    min_tissue_fraction: float = 0.5
    max_pen_fraction: float = 0.05
    backend: Backend = "auto"
    codec: Codec = "jpeg"
    jpeg_quality: int = 90
    patches_per_shard: int = 256
    scaled_decode: bool = True
    export_h5: bool = False
    stain_normalize: StainMethod | None = None
    stain_target: str | None = None
    tissue: TissueConfig = field(default_factory=TissueConfig)

    def __post_init__(self) -> None:
        _check_types(self)
        _check(0.05 <= self.mpp <= 64.0, "mpp", self.mpp, "0.05-64 um/px")
        _check(16 <= self.patch_px <= 4096, "patch_px", self.patch_px, "16-4096")
        if self.stride_px is not None:
            _check(1 <= self.stride_px <= 4 * self.patch_px, "stride_px", self.stride_px, f"1-{4 * self.patch_px}")
        _check(0.0 <= self.min_tissue_fraction <= 1.0, "min_tissue_fraction", self.min_tissue_fraction, "[0, 1]")
        _check(0.0 <= self.max_pen_fraction <= 1.0, "max_pen_fraction", self.max_pen_fraction, "[0, 1]")
        _check(self.backend in get_args(Backend), "backend", self.backend, str(get_args(Backend)))
        _check(self.codec in get_args(Codec), "codec", self.codec, str(get_args(Codec)))
        _check(1 <= self.jpeg_quality <= 100, "jpeg_quality", self.jpeg_quality, "1-100")
        _check(1 <= self.patches_per_shard <= 4096, "patches_per_shard", self.patches_per_shard, "1-4096")
        _check(self.stain_normalize is None or self.stain_normalize in get_args(StainMethod), "stain_normalize",
               self.stain_normalize, f"None or one of {get_args(StainMethod)}")
        if self.stain_normalize is not None and not self.stain_target:
            raise ConfigError(f"stain_normalize={self.stain_normalize!r} needs stain_target, the path of the "
                              "image to normalise to (--stain-target)")
        if self.stain_normalize is None and self.stain_target:
            raise ConfigError(f"stain_target={self.stain_target!r} is given without stain_normalize; choose "
                              f"one of {get_args(StainMethod)} (--stain-normalize)")
        if not isinstance(self.tissue, TissueConfig):
            raise ConfigError(f"tissue must be a TissueConfig, got {type(self.tissue).__name__}")

    @property
    def stride(self) -> int:
        """Stride in target pixels (``stride_px`` or, when unset, ``patch_px``)."""
        return self.patch_px if self.stride_px is None else self.stride_px

    def with_overlap(self, overlap_px: int) -> TileConfig:
        """This config with ``stride_px = patch_px - overlap_px``: apply it after every source of
        ``patch_px`` (defaults, a YAML file, options) is merged, so the overlap follows the final size."""
        _check(0 <= overlap_px < self.patch_px, "overlap_px", overlap_px, f"0-{self.patch_px - 1} (below patch_px)")
        return dataclasses.replace(self, stride_px=self.patch_px - overlap_px)


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain, JSON-serialisable dict of a config dataclass (nested ones included)."""
    return dataclasses.asdict(cfg)


_T = TypeVar("_T")


def from_dict(cls: type[_T], data: dict[str, Any]) -> _T:
    """Build ``cls`` from a dict, rejecting unknown keys by name and values of the wrong type by
    name, value and expected type (nested config dataclasses may be given as dicts)."""
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping of {cls.__name__} fields, got {type(data).__name__}")
    names = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} field(s) {unknown}; allowed: {sorted(names)}")
    kwargs = dict(data)
    if cls is TileConfig and isinstance(kwargs.get("tissue"), dict):
        kwargs["tissue"] = from_dict(TissueConfig, kwargs["tissue"])
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise ConfigError(f"{cls.__name__}: {err}") from err


LossKind = Literal["relativistic", "hinge", "nonsaturating", "wgan"]
PenaltyKind = Literal["interpolates", "r1"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
UpsampleKind = Literal["transposed", "bilinear", "nearest"]
WeightParam = Literal["spectral", "equalized"]
StyleKind = Literal["adain", "modulated", "batchnorm"]
OutputKind = Literal["sigmoid", "linear"]


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """A PathologyGAN-style architecture (see ``pathgan.models`` for the registry of named ones).

    Attributes
    ----------
    name : registry name, e.g. ``pathologygan-224``.
    image_px : output size, ``stem_px * 2**L`` (the reference: 7 * 2**L = 28, 56, 112, 224, 448).
    stem_px : side of the grid the generator's dense stem reshapes into and the discriminator ends
        on (7 in the reference; 4 or 8 give the powers of two 64, 128, 256, ...).
    z_dim, w_dim : latent sizes (the reference uses 200 for both).
    mapping_blocks : residual dense blocks in the mapping network z -> w.
    g_channels : channels of the generator stages, one per 2x upscale (7 -> image_px).
    d_channels : channels of the discriminator stages, one per 2x downscale (image_px -> 7).
    dense_units : width of the dense layer before (G) and after (D) the 7x7 grid.
    g_stem_channels : channels of the 7x7 grid the generator reshapes its dense output into.
    attention_px : resolution of the self-attention block (G and D).
    style_mixing_p : probability of mixing two w at a random style slot during training.
    mbstd_group : minibatch standard-deviation group size of the discriminator (StyleGAN, Karras
        et al. 2018): one extra feature map, the std of the features across each group of samples,
        is appended before its dense head, so D sees a lack of variety. 0 = off (the reference).
    upsample : the generator's 2x upscale: ``transposed`` (a 2x2 stride-2 transposed convolution, the
        reference) or ``bilinear``/``nearest`` interpolation followed by a 3x3 convolution, which
        cannot draw the regular grid a transposed convolution's uneven overlap leaves.
    weights : ``spectral`` (orthogonal init + spectral norm everywhere, the reference) or
        ``equalized`` (StyleGAN's equalized learning rate, no spectral norm; the mapping network
        learns 100x slower, ``mapping_lr_mul``).
    style : how w enters each generator conv: ``adain`` (instance norm, then gamma and beta from an
        MLP of w, the reference), ``modulated`` (StyleGAN2 weight modulation and demodulation by an
        affine map of w; needs ``weights="equalized"``) or ``batchnorm`` (BigGAN's conditional batch
        norm: batch statistics, then gamma and beta linear in w; averaged generators get their
        statistics re-estimated before they sample).
    output : ``sigmoid`` (the reference) or ``linear``: ``0.5 + 0.5 x``, unbounded while training
        (no saturating gradient) and clamped to [0, 1] in eval mode, where every sample is drawn.
    mapping_lr_mul : learning-rate multiplier of the mapping network with ``weights="equalized"``.
    d_from_rgb : channels of a 1x1 "fromRGB" conv in front of the discriminator, so its first
        residual block (at full resolution) works on features, not on the 3 colour channels; 0 = none
        (the reference).
    d_weights : the discriminator's own weight parametrisation; ``None`` = ``weights``. Spectral norm
        suits a hinge-loss discriminator without a gradient penalty, while an equalized generator
        skips spectral norm's per-call power iterations.
    res_max_px : residual blocks only in the stages whose lower resolution is at most this (a G
        stage H -> 2H and a D stage 2H -> H both count as H); above it a stage is just its up/down
        conv, which is where a small CPU model saves most of its time. 0 = everywhere (the reference).
    d_patch_stage : > 0 adds a PatchGAN-style head after this discriminator stage: one logit per
        location of its feature map beside the global one (see :func:`pathgan.train.d_loss`). 0 = none.
    noise : per-pixel noise inputs with learned per-channel strength after every generator conv
        (the reference and StyleGAN); ``False`` makes every sample a deterministic function of w.
    noise_max_px : with ``noise``, only convs whose output is at most this many pixels wide get noise
        (0 = all, the reference): coarse noise varies the layout of tissue from sample to sample,
        fine noise only adds speckle.
    n_classes : 0 for an unconditional model; K >= 2 makes it class-conditional (a cGAN, Mirza &
        Osindero 2014): the mapping network reads a learned class embedding beside z, and the
        discriminator scores (image, class) pairs by projection (Miyato & Koyama 2018). Set by
        ``train-latent`` from the labels it is given, not by the registry.
    """

    name: str
    image_px: int = 224
    stem_px: int = 7
    z_dim: int = 200
    w_dim: int = 200
    mapping_blocks: int = 4
    g_channels: tuple[int, ...] = (512, 256, 128, 64, 32)
    d_channels: tuple[int, ...] = (32, 64, 128, 256, 512)
    dense_units: int = 1024
    g_stem_channels: int = 256
    attention_px: int = 28
    style_mixing_p: float = 0.5
    mbstd_group: int = 0
    upsample: UpsampleKind = "transposed"
    weights: WeightParam = "spectral"
    style: StyleKind = "adain"
    output: OutputKind = "sigmoid"
    mapping_lr_mul: float = 0.01
    noise: bool = True
    noise_max_px: int = 0
    d_from_rgb: int = 0
    d_weights: WeightParam | None = None
    res_max_px: int = 0
    d_patch_stage: int = 0
    n_classes: int = 0

    def __post_init__(self) -> None:
        _check_types(self)
        _check(isinstance(self.stem_px, int) and 3 <= self.stem_px <= 16, "stem_px", self.stem_px, "an integer in 3..16")
        ratio = self.image_px // self.stem_px
        native = tuple(self.stem_px * 2**i for i in range(2, 8))
        _check(self.image_px % self.stem_px == 0 and ratio >= 2 and ratio & (ratio - 1) == 0, "image_px",
               self.image_px, f"stem_px * 2**L for stem_px={self.stem_px}: one of {native}")
        stages = ratio.bit_length() - 1
        _check(len(self.g_channels) == stages, "g_channels", self.g_channels, f"{stages} values for {self.image_px} px")
        _check(len(self.d_channels) == stages, "d_channels", self.d_channels, f"{stages} values for {self.image_px} px")
        _check(self.attention_px in {self.stem_px * 2**i for i in range(1, stages + 1)}, "attention_px",
               self.attention_px, f"a stage resolution between {2 * self.stem_px} and {self.image_px}")
        for name, kind in (("upsample", UpsampleKind), ("weights", WeightParam), ("style", StyleKind),
                           ("output", OutputKind)):
            _check(getattr(self, name) in get_args(kind), name, getattr(self, name), str(get_args(kind)))
        _check(self.style != "modulated" or self.weights == "equalized", "style", self.style,
               '"adain" with weights="spectral" (modulation needs weights="equalized")')
        _check(0 < self.mapping_lr_mul <= 1, "mapping_lr_mul", self.mapping_lr_mul, "(0, 1]")
        _check(self.d_from_rgb >= 0, "d_from_rgb", self.d_from_rgb, ">= 0 (0 = none)")
        _check(self.d_weights is None or self.d_weights in get_args(WeightParam), "d_weights", self.d_weights,
               f"None (= weights) or one of {get_args(WeightParam)}")
        _check(self.noise_max_px >= 0, "noise_max_px", self.noise_max_px, ">= 0 (0 = every resolution)")
        _check(self.res_max_px >= 0, "res_max_px", self.res_max_px, ">= 0 (0 = residual blocks everywhere)")
        _check(0 <= self.d_patch_stage <= stages, "d_patch_stage", self.d_patch_stage, f"0 (none) to {stages}")
        for name in ("z_dim", "w_dim", "mapping_blocks", "dense_units", "g_stem_channels"):
            _check(getattr(self, name) >= 1, name, getattr(self, name), ">= 1")
        _check(0.0 <= self.style_mixing_p <= 1.0, "style_mixing_p", self.style_mixing_p, "[0, 1]")
        _check(self.mbstd_group >= 0, "mbstd_group", self.mbstd_group, ">= 0 (0 = off)")
        _check(self.n_classes == 0 or self.n_classes >= 2, "n_classes", self.n_classes,
               "0 (unconditional) or >= 2 classes")

    @property
    def n_stages(self) -> int:
        return len(self.g_channels)


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """How ``pathgan train-latent`` trains a model (defaults follow the PathologyGAN paper,
    with the reference code's bugs fixed; see ``pathgan/train/losses.py``).

    Attributes
    ----------
    model : registry name of the architecture.
    batch_size : images per discriminator step.
    n_critic : discriminator steps per generator step.
    lr_g, lr_d, beta1, beta2 : Adam settings (the paper: 1e-4, 1e-4, 0.5, 0.9).
    loss : adversarial loss.
    penalty : ``interpolates``: the two-sided penalty ``(||grad D(x_hat)|| - 1)^2`` on real/fake
        interpolates (WGAN-GP; the paper's); ``r1``: ``||grad D(x_real)||^2 / 2`` on real images only
        (Mescheder et al. 2018; StyleGAN2's), which keeps D's surface flat where the data is.
    gp_weight : weight of the penalty (0.65 in the paper with ``interpolates``; the R1 gamma with ``r1``).
    penalty_every : compute the penalty every this many D steps, scaled by it (lazy
        regularisation, StyleGAN2: 16); 1 = every step.
    ortho_weight : orthogonal regulariser weight (0 = off; the reference attached it but never used it).
    ema_decay : decay of the generator EMA used for sampling (0 = no EMA); unused when ``ema_kimg`` > 0.
    ema_kimg : half-life of the generator EMA in thousands of images (StyleGAN's ``ema_kimg``), so the
        average spans the same amount of data whatever the batch size; 0 = use ``ema_decay``.
    ema_rampup : with ``ema_kimg``, the half-life is at most ``ema_rampup`` x the images seen so far,
        so a short run's average is not dominated by its random start (StyleGAN2-ADA: 0.05); 0 = off.
    diffaugment : comma-separated DiffAugment policy (color, translation, translation_reflect, cutout)
        or "" for none (see :func:`pathgan.train.diff_augment`).
    steps : discriminator steps to train.
    time_budget_min : stop after this many minutes of training (wall clock, this process), with a
        final checkpoint and sample grid, even before ``steps``; 0 = no budget (``--minutes``).
    seed : seeds model init, data order, noise and augmentation.
    sample_every, checkpoint_every, log_every : in discriminator steps.
    n_samples : images in each sample grid (fixed seeds).
    precision : auto, fp32, bf16 or fp16 autocast. bf16 also runs on CPU, but only CPUs with AVX-512 BF16
        or AMX compute it natively (~1.5x faster steps); elsewhere oneDNN emulates it and it is ~1.7x
        slower than fp32. ``auto`` picks bf16 where it is native (those CPUs, CUDA with bf16) and fp32
        otherwise; fp16 needs CUDA. Weights and optimiser state stay fp32.
    channels_last, compile : GPU speed options.
    min_tissue_fraction, max_white_fraction : patch filters applied to the stores.
    val_fraction : held-out share of slides when the manifest gives no split (ignored with
        ``holdout_block_um`` > 0: the test squares are then the held-out set).
    holdout_block_um : > 0 holds out space inside the training slides: each slide is cut into squares
        of this side (microns) coloured like a checkerboard; training uses only patches wholly inside
        "train" squares, ``pathgan evaluate`` only patches wholly inside "test" squares. 0 = off.
        Every slide the manifest does not assign trains (no slide is also held out whole).
    stain_augment : HED stain jitter strength (0 = off).
    num_workers : DataLoader worker processes.
    labels : ``""`` trains an unconditional model. ``"manifest"`` trains a class-conditional one
        (cGAN) on each slide's ``label`` (the manifest's label column, kept in the stores); any
        other value is the path of a label CSV (``slide_id,label`` or ``slide_id,x,y,label`` with
        level-0 tile corners). Unlabelled patches are left out; classes are sorted by name.
    """

    model: str = "pathologygan-224"
    batch_size: int = 64
    n_critic: int = 5
    lr_g: float = 1e-4
    lr_d: float = 1e-4
    beta1: float = 0.5
    beta2: float = 0.9
    loss: LossKind = "relativistic"
    penalty: PenaltyKind = "interpolates"
    gp_weight: float = 0.65
    penalty_every: int = 1
    ortho_weight: float = 0.0
    ema_decay: float = 0.999
    ema_kimg: float = 0.0
    ema_rampup: float = 0.0
    diffaugment: str = "color,translation,cutout"
    steps: int = 100_000
    time_budget_min: float = 0.0
    seed: int = 0
    sample_every: int = 1000
    checkpoint_every: int = 1000
    log_every: int = 50
    n_samples: int = 64
    precision: Precision = "fp32"
    channels_last: bool = False
    compile: bool = False
    min_tissue_fraction: float = 0.5
    max_white_fraction: float = 0.3
    val_fraction: float = 0.2
    holdout_block_um: float = 0.0
    stain_augment: float = 0.0
    num_workers: int = 0
    labels: str = ""

    def __post_init__(self) -> None:
        _check_types(self)
        _check(isinstance(self.labels, str), "labels", self.labels,
               '"" (unconditional), "manifest" or the path of a label CSV')
        for name in ("batch_size", "n_critic", "steps", "sample_every", "checkpoint_every", "log_every", "n_samples",
                     "penalty_every"):
            _check(getattr(self, name) >= 1, name, getattr(self, name), ">= 1")
        _check(self.penalty in get_args(PenaltyKind), "penalty", self.penalty, str(get_args(PenaltyKind)))
        for name in ("ema_kimg", "ema_rampup", "time_budget_min", "holdout_block_um"):
            _check(getattr(self, name) >= 0, name, getattr(self, name), ">= 0 (0 = off)")
        for name in ("lr_g", "lr_d"):
            _check(0 < getattr(self, name) < 1, name, getattr(self, name), "(0, 1)")
        for name in ("beta1", "beta2", "ema_decay", "min_tissue_fraction", "max_white_fraction", "val_fraction"):
            _check(0 <= getattr(self, name) < 1 or (name in ("min_tissue_fraction", "max_white_fraction") and getattr(self, name) == 1),
                   name, getattr(self, name), "[0, 1)")
        _check(self.loss in get_args(LossKind), "loss", self.loss, str(get_args(LossKind)))
        _check(self.precision in get_args(Precision), "precision", self.precision, str(get_args(Precision)))
        _check(self.gp_weight >= 0 and self.ortho_weight >= 0, "gp_weight/ortho_weight",
               (self.gp_weight, self.ortho_weight), ">= 0")
        ops = ("color", "translation", "translation_reflect", "cutout")
        bad = [p for p in self.diffaugment.split(",") if p and p not in ops]
        _check(not bad, "diffaugment", self.diffaugment, f"comma-separated from {', '.join(ops)}")
        _check(self.stain_augment >= 0 and self.num_workers >= 0, "stain_augment/num_workers",
               (self.stain_augment, self.num_workers), ">= 0")


@dataclass(frozen=True, kw_only=True)
class EncoderConfig:
    """How ``pathgan train-encoder`` fits an image -> w encoder to a trained run.

    The encoder regresses the w that made each generated image (arXiv 2004.06517), so it needs no
    labels; optional pixel terms make it reconstruct generated and real images through the frozen
    generator.

    Fields
    ------
    channels : encoder stage widths, one per 2x downscale (image_px -> 7); ``None`` = the run's
        discriminator widths.
    steps, batch_size : optimiser steps and generated images per step.
    lr, beta1, beta2 : Adam settings.
    w_weight : weight of the w-regression MSE (in units of each w dimension's variance).
    image_weight : weight of the pixel MSE between G(E(G(w))) and G(w) on generated images.
    real_weight : weight of the pixel MSE between G(E(x)) and real patches x (needs stores).
    truncation : psi of the w the encoder is trained on (1 = the whole learned distribution).
    seed : seeds initialisation and every sampled z, noise and real batch.
    log_every, checkpoint_every : in steps.
    n_eval : generated and held-out real images used by the final evaluation.
    """

    channels: tuple[int, ...] | None = None
    steps: int = 3000
    batch_size: int = 32
    lr: float = 2e-4
    beta1: float = 0.9
    beta2: float = 0.99
    w_weight: float = 1.0
    image_weight: float = 0.0
    real_weight: float = 0.0
    truncation: float = 1.0
    seed: int = 0
    log_every: int = 50
    checkpoint_every: int = 500
    n_eval: int = 256

    def __post_init__(self) -> None:
        _check_types(self)
        if self.channels is not None:
            object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
            _check(all(c >= 1 for c in self.channels), "channels", self.channels, "positive widths")
        for name in ("steps", "batch_size", "log_every", "checkpoint_every", "n_eval"):
            _check(getattr(self, name) >= 1, name, getattr(self, name), ">= 1")
        _check(0 < self.lr < 1, "lr", self.lr, "(0, 1)")
        for name in ("beta1", "beta2"):
            _check(0 <= getattr(self, name) < 1, name, getattr(self, name), "[0, 1)")
        for name in ("w_weight", "image_weight", "real_weight"):
            _check(getattr(self, name) >= 0, name, getattr(self, name), ">= 0")
        _check(self.w_weight + self.image_weight + self.real_weight > 0, "w_weight + image_weight + real_weight",
               self.w_weight + self.image_weight + self.real_weight, "> 0 (something to train on)")
        _check(0 < self.truncation <= 1, "truncation", self.truncation, "(0, 1]")
        _check(self.seed >= 0, "seed", self.seed, ">= 0")


GanLoss = Literal["lsgan", "vanilla"]
TranslatorGenerator = Literal["resnet"]
TranslatorDiscriminator = Literal["patchgan"]


@dataclass(frozen=True, kw_only=True)
class TranslateConfig:
    """How ``pathgan train-translate`` trains a CycleGAN (Zhu et al. 2017) between two domains of
    patch stores (stain or site A <-> B). Defaults are the paper's (256-px crops, batch 1).

    Attributes
    ----------
    patch_px : side of the square training crops in pixels at the stores' MPP; stores must have
        ``patch_px`` at least this large (crops are random, never upsampled); a multiple of 4.
    generator, discriminator : registered network names (``pathgan.models._cyclegan``): the
        ResNet generator and the PatchGAN discriminator.
    ngf, g_res_blocks : generator width (first layer; the bottleneck has 4 * ngf) and residual
        blocks (the paper: 64 and 9 at 256 px, 6 at 128 px).
    ndf, d_layers : discriminator width and stride-2 layers (3 layers = 70x70 patches).
    batch_size : images per domain per step (the paper: 1).
    lr, beta1, beta2 : Adam settings of both generator and discriminator optimisers.
    gan_loss : ``lsgan`` (least squares, Mao et al. 2017; the paper's) or ``vanilla`` (BCE).
    lambda_cycle : weight of the cycle-consistency L1 loss (each direction).
    lambda_identity : weight of the identity L1 loss *relative to* ``lambda_cycle`` (the paper's
        code convention: 0.5 means 0.5 * lambda_cycle; 0 = off). It keeps G from changing the
        colours of images already in its target domain.
    pool_size : generated images kept per domain in the history pool the discriminators learn
        from (Shrivastava et al. 2017); 0 = always the newest.
    steps : optimiser steps (one generator and one discriminator update each).
    decay_fraction : the last fraction of ``steps`` over which the learning rate decays linearly
        to 0 (the paper: 100 constant epochs then 100 decaying = 0.5).
    seed : seeds initialisation, data order, augmentation and the image pool.
    sample_every, checkpoint_every, log_every : in steps.
    n_samples : images per domain in each sample grid (fixed, centred crops).
    n_eval : patches per domain for the final evaluation (``eval.json``).
    min_tissue_fraction, max_white_fraction : patch filters applied to both domains' stores.
    dihedral : random rotations/mirrors of the training crops (the paper: horizontal flips).
    num_workers : DataLoader worker processes per domain.
    """

    patch_px: int = 256
    generator: TranslatorGenerator = "resnet"
    discriminator: TranslatorDiscriminator = "patchgan"
    ngf: int = 64
    g_res_blocks: int = 9
    ndf: int = 64
    d_layers: int = 3
    batch_size: int = 1
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    gan_loss: GanLoss = "lsgan"
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.5
    pool_size: int = 50
    steps: int = 200_000
    decay_fraction: float = 0.5
    seed: int = 0
    sample_every: int = 1000
    checkpoint_every: int = 5000
    log_every: int = 100
    n_samples: int = 8
    n_eval: int = 256
    min_tissue_fraction: float = 0.5
    max_white_fraction: float = 0.3
    dihedral: bool = True
    num_workers: int = 0

    def __post_init__(self) -> None:
        _check_types(self)
        _check(self.generator in get_args(TranslatorGenerator), "generator", self.generator,
               str(get_args(TranslatorGenerator)))
        _check(self.discriminator in get_args(TranslatorDiscriminator), "discriminator", self.discriminator,
               str(get_args(TranslatorDiscriminator)))
        _check(self.gan_loss in get_args(GanLoss), "gan_loss", self.gan_loss, str(get_args(GanLoss)))
        for name in ("ngf", "ndf", "d_layers", "batch_size", "steps", "sample_every", "checkpoint_every",
                     "log_every", "n_samples", "n_eval"):
            _check(isinstance(getattr(self, name), int) and getattr(self, name) >= 1, name, getattr(self, name),
                   "an integer >= 1")
        _check(self.d_layers <= 6, "d_layers", self.d_layers, "1-6")
        min_px = 2 ** (self.d_layers + 2)  # the PatchGAN needs this much for a 1x1 logit map
        _check(isinstance(self.patch_px, int) and self.patch_px % 4 == 0 and self.patch_px >= min_px,
               "patch_px", self.patch_px, f"a multiple of 4 (two 2x downsamplings) and >= {min_px} for d_layers={self.d_layers}")
        for name in ("g_res_blocks", "pool_size", "seed", "num_workers"):
            _check(isinstance(getattr(self, name), int) and getattr(self, name) >= 0, name, getattr(self, name),
                   "an integer >= 0")
        _check(0 < self.lr < 1, "lr", self.lr, "(0, 1)")
        for name in ("beta1", "beta2"):
            _check(0 <= getattr(self, name) < 1, name, getattr(self, name), "[0, 1)")
        for name in ("lambda_cycle", "lambda_identity"):
            _check(getattr(self, name) >= 0, name, getattr(self, name), ">= 0")
        _check(0 <= self.decay_fraction <= 1, "decay_fraction", self.decay_fraction, "[0, 1]")
        for name in ("min_tissue_fraction", "max_white_fraction"):
            _check(0 <= getattr(self, name) <= 1, name, getattr(self, name), "[0, 1]")
        _check(isinstance(self.dihedral, bool), "dihedral", self.dihedral, "true or false")

    def lr_at(self, step: int) -> float:
        """Learning rate of step ``step`` (0-based): constant, then linear to 0 over the last
        ``decay_fraction`` of ``steps`` (the step after the last one would have lr 0)."""
        decay_steps = round(self.decay_fraction * self.steps)
        start = self.steps - decay_steps
        if decay_steps == 0 or step < start:
            return self.lr
        return self.lr * max(0.0, (self.steps - step) / (decay_steps + 1))
