"""A trained model opened for notebooks: generate from w or z, encode images to w, interpolate.

>>> from pathgan.latents import LatentModel
>>> m = LatentModel.load("runs/00000-pathologygan-64-cpu")     # doctest: +SKIP
>>> m = LatentModel.load("models/tissue-64")                   # an exported model: the same  # doctest: +SKIP
>>> w = m.encode(patches)                                    # uint8 [N, H, W, 3] -> float32 [N, w_dim]
>>> images = m.generate(w)                                   # -> uint8 [N, px, px, 3]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from pathgan.config import ModelConfig
from pathgan.errors import ConfigError, PathganError, ShapeError
from pathgan.latents._arith import interpolate as _interpolate

if TYPE_CHECKING:
    from pathgan.export import ModelBundle

__all__ = ["LatentModel", "Space"]

Space = Literal["w", "z"]


def _as_tensor(x: Any, dim: int, name: str, device: torch.device) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x, np.float32) if not isinstance(x, torch.Tensor) else x, dtype=torch.float32)
    if t.ndim == 1:
        t = t[None]
    if t.ndim != 2 or t.shape[1] != dim:
        raise ShapeError(f"{name}: expected shape [N, {dim}] or [{dim}], got {list(t.shape)}")
    if not torch.isfinite(t).all():
        raise ShapeError(f"{name}: contains NaN or infinite values")
    return t.to(device)


@dataclass(eq=False)
class LatentModel:
    """The EMA mapping + generator of a trained model, with its encoder when one is fitted.

    Build it with :meth:`load`, from a ``pathgan train-latent`` run directory (its latest
    checkpoint) or a ``pathgan export-model`` folder; both give the same model. All methods take
    and return numpy arrays: latents float32 [N, w_dim] (or [N, z_dim]), images uint8
    [N, H, W, 3]. Generation is noise-free by default, so the same w always gives the same image.
    """

    bundle: ModelBundle
    mapping: Any
    generator: Any
    encoder: Any
    device: torch.device
    w_avg: torch.Tensor = field(init=False)
    w_std: torch.Tensor = field(init=False)
    _class_w_avg: dict[str, torch.Tensor] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        from pathgan.train.encoder import w_statistics

        if len(self.class_names) != int(self.model_cfg.n_classes):
            raise PathganError(f"{self.run_dir}: the model has {self.model_cfg.n_classes} classes but "
                               f"{len(self.class_names)} class names are recorded")
        self.w_avg, self.w_std = w_statistics(self.mapping)

    @classmethod
    def load(cls, run_dir: str | Path, *, device: str = "cpu", require_encoder: bool = False) -> LatentModel:
        """Open ``run_dir``: a ``pathgan train-latent`` run (``pathgan train-encoder`` adds the encoder)
        or an exported model folder (``pathgan export-model``).

        Raises
        ------
        PathganError
            Neither a run nor an exported model, no checkpoint, a damaged export (see
            :func:`pathgan.export.open_model`), or ``require_encoder`` and no fitted encoder.
        """
        from pathgan.export import open_model

        return cls.from_bundle(open_model(run_dir), device=device, require_encoder=require_encoder)

    @classmethod
    def from_bundle(cls, bundle: ModelBundle, *, device: str = "cpu", require_encoder: bool = False) -> LatentModel:
        """The model of a :class:`pathgan.export.ModelBundle` already read with :func:`pathgan.export.open_model`."""
        from pathgan.device import select_device

        if require_encoder and not bundle.has_encoder:
            raise PathganError(bundle.encoder_hint())
        dev = select_device(device)
        nets = bundle.build(dev)
        return cls(bundle=bundle, mapping=nets.mapping, generator=nets.generator, encoder=nets.encoder, device=dev)

    # ----------------------------------------------------------------- facts
    @property
    def run_dir(self) -> Path:
        """The folder the model was loaded from: a run directory or an exported model."""
        return self.bundle.path

    @property
    def model_cfg(self) -> ModelConfig:
        return self.bundle.model_cfg

    @property
    def run_id(self) -> str:
        """The name its latents are stored under (``latents/<run_id>``): the run's folder name, or an
        exported model's ``model_id``."""
        return self.bundle.model_id

    @property
    def checkpoint_sha256(self) -> str:
        return self.bundle.checkpoint_sha256

    @property
    def encoder_sha256(self) -> str | None:
        return self.bundle.encoder_sha256

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.bundle.class_names

    @property
    def resize_mode(self) -> str:
        return self.bundle.resize_mode

    @property
    def w_dim(self) -> int:
        return int(self.model_cfg.w_dim)

    @property
    def z_dim(self) -> int:
        return int(self.model_cfg.z_dim)

    @property
    def image_px(self) -> int:
        return int(self.model_cfg.image_px)

    @property
    def conditional(self) -> bool:
        """True for a class-conditional run (``train-latent --set labels=...``)."""
        return bool(self.class_names)

    def _classes(self, class_name: str | None, n: int) -> torch.Tensor | None:
        """int64 [n] of one class for a conditional model; ``None`` for an unconditional one."""
        if not self.conditional:
            if class_name is not None:
                raise ConfigError(f"class_name={class_name!r}: {self.run_id} is unconditional; it takes no class "
                                  "(use class centroids of encoded patches instead: pathgan export-synthetic --class)")
            return None
        if class_name not in self.class_names:
            raise ConfigError(f"class_name={class_name!r}: {self.run_id} is class-conditional; "
                              f"choose one of {list(self.class_names)}")
        return torch.full((n,), self.class_names.index(class_name), dtype=torch.long, device=self.device)

    @torch.no_grad()
    def class_mean_w(self, class_name: str) -> np.ndarray:
        """The mean w of one class over 8,192 draws of z (a conditional model's truncation centre)."""
        if class_name not in self._class_w_avg:
            g = torch.Generator(device=self.device)
            g.manual_seed(0)
            z = torch.randn(8192, self.z_dim, generator=g, device=self.device)
            self._class_w_avg[class_name] = self.mapping(z, self._classes(class_name, len(z))).mean(dim=0)
        return np.asarray(self._class_w_avg[class_name].cpu(), np.float32)

    def provenance(self) -> dict[str, Any]:
        """JSON-safe facts identifying these networks (written beside encoded latents).

        ``run_dir`` is the folder it was loaded from and ``source`` says which kind (``run`` or
        ``export``); ``checkpoint`` names the run checkpoint the weights come from.
        """
        b = self.bundle
        return {
            "run_id": self.run_id,
            "run_dir": str(self.run_dir.resolve()),
            "source": b.source,
            "model": self.model_cfg.name,
            "image_px": self.image_px,
            "w_dim": self.w_dim,
            "resize_mode": self.resize_mode,
            "checkpoint": b.checkpoint,
            "checkpoint_sha256": self.checkpoint_sha256,
            "encoder_checkpoint": b.encoder_checkpoint,
            "encoder_sha256": self.encoder_sha256,
            "weights_dtype": b.dtype,
        }

    # ----------------------------------------------------------------- z and w
    def sample_z(self, n: int, *, seed: int = 0) -> np.ndarray:
        """``n`` draws of z ~ N(0, I), float32 [n, z_dim], reproducible from ``seed``."""
        return np.random.default_rng(seed).standard_normal((n, self.z_dim)).astype(np.float32)

    @torch.no_grad()
    def to_w(self, z: Any, *, truncation: float = 1.0, class_name: str | None = None) -> np.ndarray:
        """Map z [N, z_dim] to w [N, w_dim]; ``truncation`` < 1 pulls w towards the mean w (of
        ``class_name`` for a conditional run, which needs a class)."""
        if not 0 < truncation <= 1:
            raise ConfigError(f"truncation={truncation!r} is not allowed; expected (0, 1]")
        zt = _as_tensor(z, self.z_dim, "z", self.device)
        c = self._classes(class_name, len(zt))
        w = self.mapping(zt, c)
        centre = self.w_avg if c is None else torch.from_numpy(self.class_mean_w(str(class_name))).to(self.device)
        w = centre + truncation * (w - centre)
        return np.asarray(w.cpu(), np.float32)

    def sample_w(self, n: int, *, seed: int = 0, truncation: float = 1.0, class_name: str | None = None) -> np.ndarray:
        return self.to_w(self.sample_z(n, seed=seed), truncation=truncation, class_name=class_name)

    @property
    def mean_w(self) -> np.ndarray:
        """The mean w over 8,192 draws of z (the centre of the truncation trick)."""
        return np.asarray(self.w_avg.cpu(), np.float32)

    # ----------------------------------------------------------------- images
    @torch.no_grad()
    def generate(
        self,
        w: Any = None,
        *,
        z: Any = None,
        truncation: float = 1.0,
        noise: bool = False,
        seed: int = 0,
        batch_size: int = 64,
        class_name: str | None = None,
    ) -> np.ndarray:
        """Images uint8 [N, px, px, 3] from w [N, w_dim] or (exclusively) z [N, z_dim].

        ``truncation`` applies to either (w is pulled towards the mean w). ``noise`` adds the
        generator's per-pixel noise, seeded by ``seed``. ``class_name`` (z only) picks the class of
        a conditional run; a w already carries its class.
        """
        if (w is None) == (z is None):
            raise ConfigError("generate() takes exactly one of w or z")
        if w is not None:
            if class_name is not None:
                raise ConfigError("generate(w, class_name=...): a w already carries its class; pass z to choose one")
            wt = _as_tensor(w, self.w_dim, "w", self.device)
            if truncation != 1.0:
                if not 0 < truncation <= 1:
                    raise ConfigError(f"truncation={truncation!r} is not allowed; expected (0, 1]")
                wt = self.w_avg + truncation * (wt - self.w_avg)
        else:
            wt = torch.from_numpy(self.to_w(z, truncation=truncation, class_name=class_name)).to(self.device)
        from pathgan.data._transforms import to_uint8_nhwc
        from pathgan.models import render

        g = torch.Generator(device=self.device)
        g.manual_seed(seed)
        out = [to_uint8_nhwc(render(self.generator, wt[s : s + batch_size], noise=noise, rng=g))
               for s in range(0, len(wt), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.image_px, self.image_px, 3), np.uint8)

    def prepare(self, images: Any) -> torch.Tensor:
        """uint8 [N, H, W, 3] (H = W >= image_px) -> float [N, 3, px, px] in [0, 1], as the run saw patches:
        the centred crop, or the antialiased resize when the run was trained with ``resize``."""
        from pathgan.data._transforms import center_offset, resize, to_float_nchw

        arr = np.asarray(images)
        if arr.ndim == 3:
            arr = arr[None]
        px = self.image_px
        if arr.ndim != 4 or arr.shape[-1] != 3 or arr.shape[1] != arr.shape[2] or arr.shape[1] < px:
            raise ShapeError(f"images: expected uint8 [N, H, H, 3] with H >= {px}, got {list(arr.shape)} {arr.dtype}")
        if arr.dtype != np.uint8:
            raise ShapeError(f"images: expected dtype uint8 (0-255), got {arr.dtype}")
        if self.resize_mode == "resize":
            return resize(to_float_nchw(arr), px)
        o = center_offset(arr.shape[1], px)
        return to_float_nchw(arr[:, o : o + px, o : o + px])

    def view(self, images: Any) -> np.ndarray:
        """uint8 [N, px, px, 3]: what the model sees of stored patches (:meth:`prepare`, back in 0-255),
        for showing real patches beside generated ones."""
        from pathgan.data._transforms import to_uint8_nhwc

        return to_uint8_nhwc(self.prepare(images))

    def _require_encoder(self) -> Any:
        if self.encoder is None:
            raise PathganError(self.bundle.encoder_hint())
        return self.encoder

    @torch.no_grad()
    def encode(self, images: Any, *, batch_size: int = 64, refine_steps: int = 0, lr: float = 0.05) -> np.ndarray:
        """w float32 [N, w_dim] for uint8 images [N, H, W, 3] (see :meth:`prepare`).

        ``refine_steps`` > 0 refines the encoder's answer by GAN inversion (Adam on the pixel
        error of the noise-free generator), slower but closer.
        """
        from pathgan.train.encoder import invert

        enc = self._require_encoder()
        x_all = self.prepare(images)
        out = []
        for s in range(0, len(x_all), batch_size):
            x = x_all[s : s + batch_size].to(self.device)
            w = enc(x)
            if refine_steps:
                w = invert(self.generator, x, w, steps=refine_steps, lr=lr, w_std=self.w_std)
            out.append(np.asarray(w.cpu(), np.float32))
        return np.concatenate(out) if out else np.zeros((0, self.w_dim), np.float32)

    def encode_store_batch(self, patches: np.ndarray, *, refine_steps: int = 0) -> np.ndarray:
        """The hook ``pathgan encode`` calls: raw store patches uint8 [B, P, P, 3] -> float32 [B, w_dim]."""
        return self.encode(patches, refine_steps=refine_steps)

    # ----------------------------------------------------------------- paths
    def interpolate(self, a: Any, b: Any, steps: int = 8, *, space: Space = "w") -> np.ndarray:
        """w [steps, w_dim] from ``a`` to ``b``.

        ``space="w"``: ``a`` and ``b`` are w vectors, joined by a straight line. ``space="z"``: they
        are z vectors, joined by a great-circle arc (slerp) and mapped to w, a curved path in w.
        """
        if space == "w":
            return _interpolate(np.asarray(a, np.float32), np.asarray(b, np.float32), steps, space="w")
        if space == "z":
            return self.to_w(_interpolate(np.asarray(a, np.float32), np.asarray(b, np.float32), steps, space="z"))
        raise ConfigError(f"space={space!r} is not allowed; expected 'w' or 'z'")
