"""Macenko, Vahadane and Reinhard stain normalisers: fit once on a target image, transform batches.

A normaliser is a frozen dataclass: its settings, and after :meth:`fit` the target's fitted numbers
(a few floats, see :meth:`params`), so it pickles small and can be rebuilt anywhere with
:func:`normaliser_from_params`. ``transform`` takes numpy uint8 ``(H, W, 3)`` / ``(N, H, W, 3)`` or
torch ``[3, H, W]`` / ``[N, 3, H, W]`` (uint8 0-255, or float in [0, 1]) and returns the same
type, shape, dtype and device. Torch batches run as one batched computation.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar, get_args, overload

import numpy as np

from pathgan.errors import ConfigError, StainError
from pathgan.stain import _numpy_ops as npo
from pathgan.stain._inputs import as_numpy_batch, is_tensor

if TYPE_CHECKING:
    from torch import Tensor

__all__ = [
    "METHODS",
    "LabEstimate",
    "LabReference",
    "Macenko",
    "Method",
    "Normaliser",
    "Reinhard",
    "StainEstimate",
    "StainReference",
    "Vahadane",
    "make_normaliser",
    "normaliser_from_params",
]

Method = Literal["macenko", "vahadane", "reinhard"]
METHODS: tuple[str, ...] = get_args(Method)
_MIN_STD = 1e-3  # LAB units: a flat channel is shifted, not blown up


def _check(cond: bool, name: str, value: object, allowed: str) -> None:
    if not cond:
        raise ConfigError(f"{name}={value!r} is not allowed; expected {allowed}")


def _target_batch(target: Any) -> np.ndarray:
    """A fit target as a numpy uint8 ``(N, H, W, 3)`` batch (tensors are brought to the CPU once)."""
    if is_tensor(target):
        import torch

        from pathgan.stain import _torch_ops

        rgb, _ = _torch_ops.to_rgb255(target, "stain target")
        return rgb.round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    batch, _ = as_numpy_batch(target, "stain target")
    return batch


def _too_little_tissue(n_tissue: int, n_pixels: int, beta: float, need: int) -> StainError:
    return StainError(f"stain target has {n_tissue} tissue pixels (every channel <= {npo.tissue_level(beta)}, beta={beta}) "
                      f"of {n_pixels}; need at least {need} - choose a target image with more stained tissue")


# ------------------------------------------------------------------ fitted numbers


@dataclass(frozen=True)
class StainReference:
    """A fitted stain target: ``stain_matrix`` rows R, G, B x columns H, E; 99th-percentile
    concentrations ``max_concentrations`` (H, E)."""

    stain_matrix: tuple[tuple[float, float], tuple[float, float], tuple[float, float]]
    max_concentrations: tuple[float, float]

    def __post_init__(self) -> None:
        m = np.asarray(self.stain_matrix, dtype=np.float64)
        c = np.asarray(self.max_concentrations, dtype=np.float64)
        if m.shape != (3, 2) or c.shape != (2,) or not np.isfinite(m).all() or not (c > 0).all():
            raise StainError(f"stain reference needs a finite (3, 2) stain matrix and 2 positive max "
                             f"concentrations, got shapes {m.shape} and {c.shape}")
        object.__setattr__(self, "stain_matrix", tuple(tuple(float(v) for v in row) for row in m))
        object.__setattr__(self, "max_concentrations", tuple(float(v) for v in c))

    @classmethod
    def default(cls) -> StainReference:
        """The reference H&E of Macenko et al.'s code (used when nothing was fitted)."""
        return cls(npo.DEFAULT_STAIN_MATRIX.tolist(), npo.DEFAULT_MAX_CONCENTRATIONS.tolist())  # type: ignore[arg-type]

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self.stain_matrix), np.asarray(self.max_concentrations)


@dataclass(frozen=True)
class LabReference:
    """A fitted Reinhard target: per-channel CIELAB mean and standard deviation (L, a, b)."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __post_init__(self) -> None:
        mean, std = np.asarray(self.mean, np.float64), np.asarray(self.std, np.float64)
        if mean.shape != (3,) or std.shape != (3,) or not np.isfinite(mean).all() or not (std >= 0).all():
            raise StainError(f"LAB reference needs 3 finite means and 3 non-negative stds, got {self.mean}, {self.std}")
        object.__setattr__(self, "mean", tuple(float(v) for v in mean))
        object.__setattr__(self, "std", tuple(float(v) for v in std))


@dataclass(frozen=True)
class StainEstimate:
    """Per-image stain estimate, ndarray or tensor like the images (leading N absent for one image).

    Attributes
    ----------
    stain_matrix : ``(N, 3, 2)``, rows R, G, B, columns H, E; unit columns, positive entries.
    max_concentrations : ``(N, 2)`` 99th percentile of the H and E concentrations on tissue.
    fallback : ``(N,)`` bool, True where the image had fewer than ``min_tissue_px`` tissue pixels or
        two nearly parallel stain directions, so the reference stain matrix and concentrations were used.
    """

    stain_matrix: Any
    max_concentrations: Any
    fallback: Any


@dataclass(frozen=True)
class LabEstimate:
    """Per-image CIELAB statistics (``mean``, ``std``: ``(N, 3)``) and ``fallback`` ``(N,)``: True
    where the image had too little tissue and was returned unchanged by :meth:`Reinhard.transform`."""

    mean: Any
    std: Any
    fallback: Any


# ------------------------------------------------------------------ stain-matrix methods

_Self = TypeVar("_Self", bound="_StainMatrixMethod")


@dataclass(frozen=True, kw_only=True)
class _StainMatrixMethod:
    """Shared by Macenko and Vahadane: estimate a stain matrix per image, then re-express every
    pixel's non-negative H and E concentrations with the target's stain matrix, each scaled so its
    99th percentile on tissue matches the target's."""

    beta: float = 0.15
    n_samples: int = 8192
    min_tissue_px: int = 200
    min_angle_deg: float = 3.0
    target: StainReference | None = None

    method: ClassVar[str]

    def __post_init__(self) -> None:
        _check(0.0 < self.beta < 2.0, "beta", self.beta, "an optical density in (0, 2)")
        _check(self.n_samples >= 64, "n_samples", self.n_samples, ">= 64")
        _check(self.min_tissue_px >= 1, "min_tissue_px", self.min_tissue_px, ">= 1")
        _check(0.0 <= self.min_angle_deg < 45.0, "min_angle_deg", self.min_angle_deg, "[0, 45)")
        if isinstance(self.target, dict):
            object.__setattr__(self, "target", StainReference(**self.target))
        if self.target is not None and not isinstance(self.target, StainReference):
            raise ConfigError(f"target must be a StainReference, got {type(self.target).__name__}")

    # -- subclasses supply the stain-matrix estimate, on tissue pixels, per backend
    def _stains_numpy(self, tissue_od: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _stains_torch(self, tissue_od: Tensor, valid: Tensor) -> Tensor:
        raise NotImplementedError

    # -- public API
    def fit(self: _Self, target: Any) -> _Self:
        """A copy fitted to ``target`` (one image, or a batch whose pixels are pooled).

        Raises
        ------
        StainError : ``target`` is not a valid image, has fewer than ``min_tissue_px`` tissue pixels,
            or its two stain directions are closer than ``min_angle_deg``.
        """
        pixels = _target_batch(target).reshape(-1, 3)
        tissue = npo.tissue_mask(pixels, self.beta)
        n = int(tissue.sum())
        if n < self.min_tissue_px:
            raise _too_little_tissue(n, len(pixels), self.beta, self.min_tissue_px)
        index = npo.sample_index(tissue, self.n_samples)
        tissue_od = npo.optical_density(pixels[index])
        stains = self._stains_numpy(tissue_od)
        angle = npo.pair_angle_deg(stains)
        if angle < self.min_angle_deg:
            raise StainError(f"stain target's two stain directions are {angle:.2f} degrees apart (fewer than "
                             f"min_angle_deg={self.min_angle_deg}): it does not look like H&E")
        max_c = np.maximum(np.percentile(npo.nnls2(tissue_od, stains), 99, axis=1), 1e-6)
        return dataclasses.replace(self, target=StainReference(stains.tolist(), max_c.tolist()))  # type: ignore[arg-type]

    @overload
    def estimate(self, images: np.ndarray) -> StainEstimate: ...
    @overload
    def estimate(self, images: Tensor) -> StainEstimate: ...
    def estimate(self, images: Any) -> StainEstimate:
        """Stain matrix, max concentrations and fallback flag of each image (no target needed: an
        image with too little tissue falls back to the fitted target, else to the default H&E)."""
        if is_tensor(images):
            rgb, like = self._torch_in(images)
            stains, _, max_c, fallback = self._torch_decompose(rgb)
            if like["single"]:
                return StainEstimate(stains[0], max_c[0], fallback[0])
            return StainEstimate(stains, max_c, fallback)
        batch, single = as_numpy_batch(images, "images")
        parts = [self._numpy_decompose(pixels) for pixels in batch.reshape(len(batch), -1, 3)]
        if single:
            return StainEstimate(parts[0][0], parts[0][2][0], np.bool_(parts[0][2][1]))
        return StainEstimate(np.stack([p[0] for p in parts]), np.stack([p[2][0] for p in parts]),
                             np.array([p[2][1] for p in parts]))

    def stain_matrix(self, images: Any) -> Any:
        """``(3, 2)`` / ``(N, 3, 2)`` stain matrix of each image (columns H, E); see :meth:`estimate`."""
        return self.estimate(images).stain_matrix

    @overload
    def transform(self, images: np.ndarray) -> np.ndarray: ...
    @overload
    def transform(self, images: Tensor) -> Tensor: ...
    def transform(self, images: Any) -> Any:
        """Normalise ``images`` to the fitted target; same type, shape, dtype and device.

        Never raises on a valid image: one with too little tissue is re-expressed with the target's
        stain matrix at its own concentrations (see :meth:`transform_with_info` for the flags).

        Raises
        ------
        StainError : not fitted, or ``images`` is not a valid image or batch.
        """
        return self.transform_with_info(images)[0]

    def transform_with_info(self, images: Any) -> tuple[Any, StainEstimate]:
        """:meth:`transform` plus the per-image :class:`StainEstimate` of the source images."""
        ref_s, ref_c = self._fitted().arrays()
        if is_tensor(images):
            return self._transform_torch(images, ref_s, ref_c)
        return self._transform_numpy(images, ref_s, ref_c)

    def _transform_torch(self, images: Tensor, ref_s: np.ndarray, ref_c: np.ndarray) -> tuple[Tensor, StainEstimate]:
        import torch

        from pathgan.stain import _torch_ops as T

        rgb, like = self._torch_in(images)
        stains, c, max_c, fallback = self._torch_decompose(rgb)
        ref_s_t = torch.as_tensor(ref_s, dtype=rgb.dtype, device=rgb.device)
        ref_c_t = torch.as_tensor(ref_c, dtype=rgb.dtype, device=rgb.device)
        od = (c * (ref_c_t / max_c)[:, None, :]) @ ref_s_t.T
        out = T.from_rgb255(T.od_to_rgb255(od, rgb.shape), like)
        if like["single"]:
            return out, StainEstimate(stains[0], max_c[0], fallback[0])
        return out, StainEstimate(stains, max_c, fallback)

    def _transform_numpy(self, images: np.ndarray, ref_s: np.ndarray,
                         ref_c: np.ndarray) -> tuple[np.ndarray, StainEstimate]:
        batch, single = as_numpy_batch(images, "images")
        out = np.empty_like(batch)
        stains_all, max_all, fb_all = [], [], []
        ref_s32 = ref_s.astype(np.float32)
        for i, pixels in enumerate(batch.reshape(len(batch), -1, 3)):
            stains, c, (max_c, fallback) = self._numpy_decompose(pixels)
            c *= (ref_c / max_c).astype(np.float32)[:, None]
            out[i] = npo.od_to_rgb(c.T @ ref_s32.T).reshape(batch.shape[1:])
            stains_all.append(stains)
            max_all.append(max_c)
            fb_all.append(fallback)
        if single:
            return out[0], StainEstimate(stains_all[0], max_all[0], np.bool_(fb_all[0]))
        return out, StainEstimate(np.stack(stains_all), np.stack(max_all), np.array(fb_all))

    def params(self) -> dict[str, Any]:
        """JSON-ready settings and fitted numbers; :func:`normaliser_from_params` rebuilds the normaliser."""
        return {"method": self.method, **dataclasses.asdict(self)}

    # -- internals
    def _reference(self) -> StainReference:
        return self.target if self.target is not None else StainReference.default()

    def _fitted(self) -> StainReference:
        if self.target is None:
            raise StainError(f"{type(self).__name__} is not fitted: call .fit(target_image) before .transform")
        return self.target

    @staticmethod
    def _torch_in(images: Tensor) -> tuple[Tensor, dict[str, Any]]:
        from pathgan.stain import _torch_ops as T

        return T.to_rgb255(images, "images")

    def _numpy_decompose(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, bool]]:
        """One image's ``(P, 3)`` uint8 pixels -> stain matrix, concentrations ``(2, P)``, and
        (max concentrations, fallback)."""
        tissue = npo.tissue_mask(pixels, self.beta)
        od = npo.optical_density(pixels)
        if int(tissue.sum()) >= self.min_tissue_px:
            index = npo.sample_index(tissue, self.n_samples)
            stains = self._stains_numpy(od[:, index])
            if npo.pair_angle_deg(stains) >= self.min_angle_deg:
                c = npo.nnls2(od, stains)
                max_c = np.maximum(np.percentile(c[:, index], 99, axis=1), 1e-6)
                return stains, c, (max_c, False)
        ref_s, ref_c = self._reference().arrays()
        return ref_s, npo.nnls2(od, ref_s), (ref_c, True)

    def _torch_decompose(self, rgb: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``[N, 3, H, W]`` 0..255 -> stain matrices ``[N, 3, 2]``, concentrations ``[N, P, 2]``,
        max concentrations ``[N, 2]``, fallback ``[N]``; the batched twin of :meth:`_numpy_decompose`."""
        import torch

        from pathgan.stain import _torch_ops as T

        ref_s, ref_c = self._reference().arrays()
        od = T.optical_density(rgb)
        tissue = T.tissue_mask(rgb, self.beta)
        index, valid = T.sample_index(tissue, self.n_samples)
        estimated = self._stains_torch(T.gather_pixels(od, index), valid)
        ok = (tissue.sum(dim=1) >= self.min_tissue_px) & (T.pair_angle_deg(estimated) >= self.min_angle_deg)
        stains = torch.where(ok[:, None, None], estimated, torch.as_tensor(ref_s, dtype=od.dtype, device=od.device))
        c = T.nnls2(od, stains)
        sampled = T.gather_pixels(c, index)
        max_c = torch.stack([T.masked_quantile(sampled[..., k], valid, 0.99) for k in (0, 1)], dim=1).clamp_min(1e-6)
        max_c = torch.where(ok[:, None], max_c, torch.as_tensor(ref_c, dtype=od.dtype, device=od.device))
        return stains, c, max_c, ~ok


@dataclass(frozen=True, kw_only=True)
class Macenko(_StainMatrixMethod):
    """Macenko et al. (2009) normaliser.

    Stain directions are the ``alpha`` / ``100 - alpha`` percentile angles of the tissue optical
    densities in their principal plane (see :func:`pathgan.stain._numpy_ops.macenko_stains`).

    Attributes
    ----------
    beta : optical density a pixel needs in R, G and B to count as tissue.
    n_samples : tissue pixels the statistics (stain directions, percentiles) are taken on: every
        ``ceil(n_tissue / n_samples)``-th in raster order (deterministic; all of them in a patch up
        to ``n_samples`` tissue pixels).
    alpha : percentile (in %) of the extreme angles taken as the pure stains.
    min_tissue_px : fewer tissue pixels than this: fall back to the reference (flagged).
    min_angle_deg : stain directions closer than this: fall back to the reference (flagged).
    target : fitted by :meth:`fit`.

    Example
    -------
    >>> normaliser = Macenko().fit(target)          # doctest: +SKIP
    >>> out = normaliser.transform(batch)           # doctest: +SKIP
    """

    alpha: float = 1.0
    method: ClassVar[str] = "macenko"

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(0.0 < self.alpha < 50.0, "alpha", self.alpha, "a percentile in (0, 50)")

    def _stains_numpy(self, tissue_od: np.ndarray) -> np.ndarray:
        return npo.macenko_stains(tissue_od, self.alpha)

    def _stains_torch(self, tissue_od: Tensor, valid: Tensor) -> Tensor:
        from pathgan.stain import _torch_ops as T

        return T.macenko_stains(tissue_od, valid, self.alpha)


@dataclass(frozen=True, kw_only=True)
class Vahadane(_StainMatrixMethod):
    """Vahadane et al. (2016) normaliser: sparse non-negative factorisation of tissue optical density.

    Attributes
    ----------
    lam : L1 weight on concentrations while learning the stain matrix (staintools: 0.1).
    dictionary_samples : tissue pixels the stain matrix is learned on (an even subsample of the
        ``n_samples``).
    max_iter, tol : alternating rounds, and the largest change of a stain-matrix entry that stops them.
    beta, n_samples, min_tissue_px, min_angle_deg, target : as :class:`Macenko`.
    """

    lam: float = 0.1
    dictionary_samples: int = 2048
    max_iter: int = 100
    tol: float = 5e-4
    method: ClassVar[str] = "vahadane"

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.lam >= 0.0, "lam", self.lam, ">= 0")
        _check(self.dictionary_samples >= 16, "dictionary_samples", self.dictionary_samples, ">= 16")
        _check(self.max_iter >= 1, "max_iter", self.max_iter, ">= 1")
        _check(self.tol > 0.0, "tol", self.tol, "> 0")

    def _stains_numpy(self, tissue_od: np.ndarray) -> np.ndarray:
        return npo.vahadane_stains(tissue_od, lam=self.lam, n_samples=self.dictionary_samples,
                                   max_iter=self.max_iter, tol=self.tol)

    def _stains_torch(self, tissue_od: Tensor, valid: Tensor) -> Tensor:
        from pathgan.stain import _torch_ops as T

        return T.vahadane_stains(tissue_od, valid, lam=self.lam, n_samples=self.dictionary_samples,
                                 max_iter=self.max_iter, tol=self.tol)


# ------------------------------------------------------------------ Reinhard


@dataclass(frozen=True, kw_only=True)
class Reinhard:
    """Reinhard et al. (2001) colour transfer in CIELAB: each channel standardised, then given the
    target's mean and standard deviation.

    Attributes
    ----------
    masked : statistics from tissue pixels only, and only tissue pixels changed (background kept).
    beta : optical density in R, G and B that makes a pixel tissue.
    min_tissue_px : an image with fewer tissue pixels is returned unchanged (flagged), so a blank
        patch is not stretched into coloured noise; a target with fewer is rejected.
    target : fitted by :meth:`fit`.
    """

    masked: bool = False
    beta: float = 0.15
    min_tissue_px: int = 200
    target: LabReference | None = None
    method: ClassVar[str] = "reinhard"

    def __post_init__(self) -> None:
        _check(0.0 < self.beta < 2.0, "beta", self.beta, "an optical density in (0, 2)")
        _check(self.min_tissue_px >= 1, "min_tissue_px", self.min_tissue_px, ">= 1")
        if isinstance(self.target, dict):
            object.__setattr__(self, "target", LabReference(**self.target))
        if self.target is not None and not isinstance(self.target, LabReference):
            raise ConfigError(f"target must be a LabReference, got {type(self.target).__name__}")

    def fit(self, target: Any) -> Reinhard:
        """A copy fitted to ``target`` (one image, or a batch whose pixels are pooled).

        Raises
        ------
        StainError : ``target`` is not a valid image or has fewer than ``min_tissue_px`` tissue pixels.
        """
        pixels = _target_batch(target).reshape(-1, 3)
        tissue = npo.tissue_mask(pixels, self.beta)
        n = int(tissue.sum())
        if n < self.min_tissue_px:
            raise _too_little_tissue(n, len(pixels), self.beta, self.min_tissue_px)
        lab = npo.rgb_to_lab(pixels[tissue] if self.masked else pixels).astype(np.float64)
        return dataclasses.replace(self, target=LabReference(tuple(lab.mean(1)), tuple(lab.std(1))))  # type: ignore[arg-type]

    def estimate(self, images: Any) -> LabEstimate:
        """CIELAB mean and std of each image (over tissue when ``masked``), and the fallback flags."""
        if is_tensor(images):
            from pathgan.stain import _torch_ops as T

            rgb, like = T.to_rgb255(images, "images")
            _, mean, std, ok, _ = self._torch_stats(rgb)
            first = (lambda t: t[0]) if like["single"] else (lambda t: t)
            return LabEstimate(first(mean), first(std), first(~ok))
        batch, single = as_numpy_batch(images, "images")
        stats = [self._numpy_stats(img.reshape(-1, 3)) for img in batch]
        est = LabEstimate(np.stack([s[1] for s in stats]), np.stack([s[2] for s in stats]),
                          np.array([not s[3] for s in stats]))
        return LabEstimate(est.mean[0], est.std[0], est.fallback[0]) if single else est

    @overload
    def transform(self, images: np.ndarray) -> np.ndarray: ...
    @overload
    def transform(self, images: Tensor) -> Tensor: ...
    def transform(self, images: Any) -> Any:
        """Normalise ``images`` to the fitted target; same type, shape, dtype and device.

        Raises
        ------
        StainError : not fitted, or ``images`` is not a valid image or batch.
        """
        return self.transform_with_info(images)[0]

    def transform_with_info(self, images: Any) -> tuple[Any, LabEstimate]:
        """:meth:`transform` plus the per-image :class:`LabEstimate` of the source images."""
        if self.target is None:
            raise StainError("Reinhard is not fitted: call .fit(target_image) before .transform")
        ref_mean, ref_std = np.asarray(self.target.mean), np.asarray(self.target.std)
        if is_tensor(images):
            return self._transform_torch(images, ref_mean, ref_std)
        return self._transform_numpy(images, ref_mean, ref_std)

    def _transform_torch(self, images: Tensor, ref_mean: np.ndarray,
                         ref_std: np.ndarray) -> tuple[Tensor, LabEstimate]:
        import torch

        from pathgan.stain import _torch_ops as T

        rgb, like = T.to_rgb255(images, "images")
        lab, mean, std, ok, tissue = self._torch_stats(rgb)
        t_mean = torch.as_tensor(ref_mean, dtype=lab.dtype, device=lab.device)
        t_std = torch.as_tensor(ref_std, dtype=lab.dtype, device=lab.device)
        new = T.lab_to_rgb255((lab - mean[:, None]) / std.clamp_min(_MIN_STD)[:, None] * t_std + t_mean, rgb.shape)
        n, _, h, w = rgb.shape
        change = ((tissue if self.masked else torch.ones_like(tissue)) & ok[:, None]).view(n, 1, h, w)
        # Unchanged pixels keep their exact input value (no LAB round trip).
        out = T.from_rgb255(torch.where(change, new, rgb), like)
        if like["single"]:
            return out, LabEstimate(mean[0], std[0], ~ok[0])
        return out, LabEstimate(mean, std, ~ok)

    def _transform_numpy(self, images: np.ndarray, ref_mean: np.ndarray,
                         ref_std: np.ndarray) -> tuple[np.ndarray, LabEstimate]:
        batch, single = as_numpy_batch(images, "images")
        out = batch.copy()
        means, stds, fallback = [], [], []
        gain_ref, mean_ref = ref_std.astype(np.float32)[:, None], ref_mean.astype(np.float32)[:, None]
        for i, img in enumerate(batch):
            pixels = img.reshape(-1, 3)
            lab, mean, std, ok, tissue = self._numpy_stats(pixels)
            if ok:
                gain = gain_ref / np.maximum(std, _MIN_STD)[:, None]
                new = npo.lab_to_rgb((lab - mean[:, None]) * gain + mean_ref)
                out[i] = (np.where(tissue[:, None], new, pixels) if self.masked else new).reshape(img.shape)
            means.append(mean)
            stds.append(std)
            fallback.append(not ok)
        if single:
            return out[0], LabEstimate(means[0], stds[0], np.bool_(fallback[0]))
        return out, LabEstimate(np.stack(means), np.stack(stds), np.array(fallback))

    def params(self) -> dict[str, Any]:
        """JSON-ready settings and fitted numbers; :func:`normaliser_from_params` rebuilds the normaliser."""
        return {"method": self.method, **dataclasses.asdict(self)}

    def _numpy_stats(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool, np.ndarray]:
        """``(P, 3)`` uint8 -> LAB ``(3, P)``, mean and std ``(3,)`` (nan without pixels), enough
        tissue, tissue mask ``(P,)``."""
        tissue = npo.tissue_mask(pixels, self.beta)
        lab = npo.rgb_to_lab(pixels)
        n_tissue = int(tissue.sum())
        sel = lab[:, tissue] if self.masked else lab
        if sel.shape[1] == 0:
            return lab, np.full(3, np.nan, np.float32), np.full(3, np.nan, np.float32), False, tissue
        mean = sel.mean(axis=1, dtype=np.float64)
        std = np.sqrt(np.maximum((sel * sel).mean(axis=1, dtype=np.float64) - mean * mean, 0.0))
        return lab, mean.astype(np.float32), std.astype(np.float32), n_tissue >= self.min_tissue_px, tissue

    def _torch_stats(self, rgb: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """``[N, 3, H, W]`` 0..255 -> LAB ``[N, P, 3]``, mean, std ``[N, 3]``, ok ``[N]``, tissue ``[N, P]``."""
        import torch

        from pathgan.stain import _torch_ops as T

        tissue = T.tissue_mask(rgb, self.beta)
        lab = T.rgb255_to_lab(rgb)
        w = (tissue if self.masked else torch.ones_like(tissue)).to(lab.dtype)[..., None]
        n = w.sum(dim=1)
        mean = (lab * w).sum(dim=1) / n
        std = (((lab - mean[:, None]) ** 2 * w).sum(dim=1) / n).sqrt()
        ok = tissue.sum(dim=1) >= self.min_tissue_px
        return lab, mean, std, ok, tissue


# ------------------------------------------------------------------ construction

Normaliser = Macenko | Vahadane | Reinhard
_CLASSES: dict[str, type[Macenko] | type[Vahadane] | type[Reinhard]] = {
    "macenko": Macenko, "vahadane": Vahadane, "reinhard": Reinhard}


def make_normaliser(method: str, **settings: Any) -> Normaliser:
    """An unfitted normaliser by name (``macenko``, ``vahadane`` or ``reinhard``).

    Raises
    ------
    ConfigError : unknown method or setting.
    """
    if method not in _CLASSES:
        raise ConfigError(f"stain method {method!r} is not allowed; expected one of {METHODS}")
    try:
        return _CLASSES[method](**settings)
    except TypeError as err:
        raise ConfigError(f"{method}: {err}") from err


def normaliser_from_params(params: dict[str, Any]) -> Normaliser:
    """Rebuild a normaliser from :meth:`params` (for example after a trip through JSON)."""
    settings = dict(params)
    return make_normaliser(str(settings.pop("method", None)), **settings)
