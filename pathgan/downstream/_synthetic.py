"""Class-controlled sampling in a trained run's latent space, for synthetic-patch export.

Classes are placed in w by the **centroids of encoded real patches** (``pathgan encode``) of each
class. With K known classes of centroids ``mu_k`` (float [K, w_dim]), let ``B`` be an orthonormal
basis (rank <= K - 1) of the span of the centroid differences ``mu_k - mean_j mu_j``, and
``P = I - B^T B`` the projection onto its orthogonal complement. A random ``w`` of the mapping
network becomes a sample of class ``c`` as

    w_c = mu_c + psi * s_c * P (w - w_avg)

- ``w_avg`` is the generator's mean w (the centre of the ordinary truncation trick), so
  ``w - w_avg`` is the generator's own variety;
- ``P`` removes the part of that variety that would move the sample towards another class: what is
  left varies the tissue without changing its class (to first order);
- ``psi`` is the truncation (``0``: every sample is the centroid; ``1``: the full remaining variety);
- ``s_c`` is 1 (``spread="generator"``) or the ratio of class ``c``'s own spread around its centroid
  (RMS distance within the complement) to the generator's (``spread="class"``).

Because ``w_c - mu_c`` is orthogonal to every ``mu_c - mu_k``, Pythagoras gives
``|w_c - mu_k|^2 = |w_c - mu_c|^2 + |mu_c - mu_k|^2``: every sample is nearer its own centroid
than any other known class's. The simpler shift ``w + (mu_c - mu_all)`` keeps the random component
along the class differences, which is as large as the separation itself when the classes are
close, so its samples stray into the neighbouring classes. Without classes, samples use the
ordinary truncation trick ``w_avg + psi (w - w_avg)``.

Everything here is numpy and file reading; the generator is driven by
:mod:`pathgan.stages.export_synthetic`.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from pathgan.errors import ConfigError, ShapeError, StoreError
from pathgan.labels import LabelTable, check_class_name, read_label_csv, store_labels

__all__ = [
    "UNCONDITIONAL",
    "ClassCentroids",
    "ExportConfig",
    "LabelTable",
    "Spread",
    "SyntheticFormat",
    "check_class_name",
    "format_latent",
    "image_seeds",
    "labelled_latents",
    "parse_latent",
    "read_label_csv",
    "truncate",
    "z_from_seeds",
]

SyntheticFormat = Literal["png", "zarr", "both"]
Spread = Literal["generator", "class"]

#: Class name (and folder) of samples drawn without class control.
UNCONDITIONAL = "unconditional"

# A class name becomes a folder name: no separators, no NUL, not "." or "..", no surrounding spaces.
@dataclass(frozen=True, kw_only=True)
class ExportConfig:
    """What ``pathgan export-synthetic`` makes (paths are separate arguments of the stage).

    Attributes
    ----------
    n
        Images per class (per requested class; or in all when ``classes`` is empty).
    classes
        Class names to sample; empty: unconditional samples (class ``"unconditional"``).
    truncation
        psi in [0, 1]: 0 gives the class centroid (or the mean w), 1 the full variety.
    format
        ``png`` (ImageFolder tree), ``zarr`` (``synthetic.zarr``) or ``both``.
    seed
        Base seed; image ``j`` of class ``c`` draws its z from a seed derived from ``(seed, c, j)``.
    spread
        Scale of the variety around a class centroid: the generator's (``generator``) or the class's
        own, measured on its encoded real patches (``class``).
    batch_size
        Images per generator call.
    """

    n: int
    classes: tuple[str, ...] = ()
    truncation: float = 0.7
    format: SyntheticFormat = "png"
    seed: int = 0
    spread: Spread = "generator"
    batch_size: int = 64

    def __post_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, int | np.integer) or self.n < 1:
            raise ConfigError(f"n={self.n!r} is not allowed; expected an integer >= 1 (images per class)")
        object.__setattr__(self, "classes", tuple(self.classes))
        for name in self.classes:
            check_class_name(name)
        dup = sorted(c for c, k in Counter(self.classes).items() if k > 1)
        if dup:
            raise ConfigError(f"classes given more than once: {dup}")
        if not isinstance(self.truncation, int | float) or not 0.0 <= float(self.truncation) <= 1.0:
            raise ConfigError(f"truncation={self.truncation!r} is not allowed; expected a number in [0, 1]")
        if self.format not in get_args(SyntheticFormat):
            raise ConfigError(f"format={self.format!r} is not allowed; expected one of {list(get_args(SyntheticFormat))}")
        if self.spread not in get_args(Spread):
            raise ConfigError(f"spread={self.spread!r} is not allowed; expected one of {list(get_args(Spread))}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int | np.integer) or self.seed < 0:
            raise ConfigError(f"seed={self.seed!r} is not allowed; expected an integer >= 0")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"batch_size={self.batch_size!r} is not allowed; expected an integer >= 1")

    @property
    def class_names(self) -> tuple[str, ...]:
        """The folders written: the requested classes, or ``("unconditional",)``."""
        return self.classes or (UNCONDITIONAL,)


# --------------------------------------------------------------------------- sampling
def truncate(w: np.ndarray, w_avg: np.ndarray, truncation: float) -> np.ndarray:
    """The truncation trick, float32 [n, w_dim]: ``w_avg + psi (w - w_avg)``."""
    w64, avg = np.asarray(w, np.float64), np.asarray(w_avg, np.float64)
    return (avg + float(truncation) * (w64 - avg)).astype(np.float32)


@dataclass(frozen=True, eq=False)
class ClassCentroids:
    """Per-class statistics of encoded latents and the class-conditional sampler (module docstring).

    Build with :meth:`fit`. ``names`` [K] (sorted), ``means`` float64 [K, w_dim], ``counts`` int [K],
    ``basis`` float64 [r, w_dim] orthonormal rows spanning the centroid differences (r <= K - 1),
    ``rms`` float64 [K]: each class's RMS distance to its centroid within the complement of ``basis``.
    """

    names: tuple[str, ...]
    means: np.ndarray
    counts: np.ndarray
    basis: np.ndarray
    rms: np.ndarray
    _index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {n: i for i, n in enumerate(self.names)})

    @classmethod
    def fit(cls, latents: np.ndarray, labels: Sequence[str] | np.ndarray, *, rank_tol: float = 1e-6) -> ClassCentroids:
        """Centroids of ``latents`` float [M, w_dim] grouped by ``labels`` str [M].

        Raises
        ------
        ShapeError
            Mismatched lengths, no latents, or NaN/inf values.
        """
        w = np.asarray(latents, np.float64)
        lab = np.asarray(labels).astype(str)
        if w.ndim != 2 or not len(w) or lab.shape != (len(w),):
            raise ShapeError(f"latents [M >= 1, w_dim] and labels [M] expected; got {list(w.shape)} and {list(lab.shape)}")
        if not np.isfinite(w).all():
            raise ShapeError("latents contain NaN or inf values")
        names, codes = np.unique(lab, return_inverse=True)
        for name in names:
            check_class_name(str(name))
        k = len(names)
        counts = np.bincount(codes, minlength=k)
        means = np.zeros((k, w.shape[1]))
        np.add.at(means, codes, w)
        means /= counts[:, None]
        diffs = means - means.mean(0)
        _, s, vt = np.linalg.svd(diffs, full_matrices=False)  # s descending; rank <= K - 1
        top = float(s.max(initial=0.0))
        basis = vt[s > rank_tol * top] if top > 0 else np.zeros((0, w.shape[1]))
        resid = w - means[codes]
        resid -= (resid @ basis.T) @ basis
        sq = np.bincount(codes, weights=(resid**2).sum(1), minlength=k)
        return cls(names=tuple(str(n) for n in names), means=means, counts=counts, basis=basis,
                   rms=np.sqrt(sq / counts))

    @property
    def w_dim(self) -> int:
        return int(self.means.shape[1])

    def index(self, name: str) -> int:
        """Row of class ``name``; :class:`ConfigError` listing the known classes otherwise."""
        try:
            return self._index[name]
        except KeyError:
            raise ConfigError(f"unknown class {name!r}; the labelled latents have the classes "
                              f"{list(self.names)}") from None

    def centroid(self, name: str) -> np.ndarray:
        """float32 [w_dim]: the mean latent of class ``name``."""
        return self.means[self.index(name)].astype(np.float32)

    def project_out(self, x: np.ndarray) -> np.ndarray:
        """``x`` float [n, w_dim] without its components along the class differences (float64)."""
        x = np.asarray(x, np.float64)
        return x - (x @ self.basis.T) @ self.basis

    def generator_rms(self, w: np.ndarray, w_avg: np.ndarray) -> float:
        """RMS of ``P (w - w_avg)`` over mapping-network samples ``w`` [n, w_dim]: the generator's spread."""
        r = self.project_out(np.asarray(w, np.float64) - np.asarray(w_avg, np.float64))
        return float(np.sqrt((r**2).sum(1).mean()))

    def sample(self, name: str, w: np.ndarray, *, w_avg: np.ndarray, truncation: float,
               scale: float = 1.0) -> np.ndarray:
        """Latents of class ``name``, float32 [n, w_dim], from mapping-network samples ``w`` [n, w_dim]:
        ``mu_c + truncation * scale * P (w - w_avg)``."""
        w = np.asarray(w, np.float64)
        if w.ndim != 2 or w.shape[1] != self.w_dim:
            raise ShapeError(f"w: expected [n, {self.w_dim}], got {list(w.shape)}")
        mu = self.means[self.index(name)]
        r = self.project_out(w - np.asarray(w_avg, np.float64))
        return (mu + float(truncation) * float(scale) * r).astype(np.float32)

    def summary(self) -> dict[str, Any]:
        """JSON-safe description: per class n, RMS spread, distance of the centroid to the others' mean."""
        centre = self.means.mean(0)
        return {
            "rank": len(self.basis),
            "classes": {n: {"n_latents": int(self.counts[i]), "rms_spread": float(self.rms[i]),
                            "centroid_offset_norm": float(np.linalg.norm(self.means[i] - centre))}
                        for i, n in enumerate(self.names)},
        }


def image_seeds(seed: int, class_name: str, n: int) -> np.ndarray:
    """uint64 [n]: the z seed of images ``0..n-1`` of ``class_name`` under base ``seed``.

    Derived by :class:`numpy.random.SeedSequence` from ``(seed, crc32(class_name))``, so a class's
    images do not depend on which other classes are exported with it, the first ``k`` seeds do not
    depend on ``n``, and two base seeds give unrelated images.
    """
    key = zlib.crc32(class_name.encode("utf-8"))
    return np.random.SeedSequence([int(seed), key]).generate_state(n, dtype=np.uint64)


def z_from_seeds(seeds: np.ndarray, z_dim: int) -> np.ndarray:
    """float32 [n, z_dim]; row i equals ``LatentModel.sample_z(1, seed=seeds[i])[0]``."""
    return np.stack([np.random.default_rng(int(s)).standard_normal(z_dim) for s in seeds]).astype(np.float32)


def format_latent(w: np.ndarray) -> str:
    """A float32 latent as space-separated decimals ("%.9g" round-trips float32 exactly)."""
    return " ".join(f"{float(v):.9g}" for v in np.asarray(w, np.float32))


def parse_latent(text: str) -> np.ndarray:
    """Inverse of :func:`format_latent`: float32 [w_dim]."""
    return np.asarray([float(v) for v in text.split()], np.float64).astype(np.float32)


def labelled_latents(
    stores: Sequence[Path],
    run_id: str,
    *,
    labels: LabelTable | None = None,
    checkpoint_sha256: str | None = None,
) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """The encoded latents of every labelled patch of ``stores``, with their labels.

    Parameters
    ----------
    stores
        Complete patch stores (``*.zarr``), encoded by ``pathgan encode --run`` of ``run_id``.
    labels
        A :class:`LabelTable`; ``None``: each store's slide ``label`` attribute (from the manifest).
    checkpoint_sha256
        When given, latents written by another generator checkpoint are refused.

    Returns
    -------
    (latents float32 [M, w_dim], labels str [M], one dict per store: ``store``, ``slide_id``,
    ``n_labelled``, ``unmatched_tiles``)

    Raises
    ------
    StoreError
        A labelled store without (complete) latents of ``run_id``, or with latents of another checkpoint.
    ConfigError
        No labelled patch at all, or a tile table none of whose rows matches a patch.
    """
    from pathgan.store import PatchStore

    ws: list[np.ndarray] = []
    labs: list[np.ndarray] = []
    info: list[dict[str, Any]] = []
    for path in map(Path, stores):
        store = PatchStore(path)
        lab, unmatched = store_labels(store, labels)
        keep = np.flatnonzero(lab != "")
        info.append({"store": str(path), "slide_id": store.slide_id, "n_labelled": len(keep),
                     "unmatched_tiles": int(unmatched)})
        if not len(keep):
            continue
        if checkpoint_sha256 is not None:
            prov = store.latent_runs().get(run_id, {})
            got = prov.get("checkpoint_sha256")
            if got is not None and got != checkpoint_sha256:
                raise StoreError(f"latents/{run_id} in {path} were encoded from another generator checkpoint "
                                 f"(sha256 {str(got)[:12]}, the run's latest is {checkpoint_sha256[:12]}); "
                                 f"re-encode: pathgan encode --run RUN_DIR --stores {path}")
        w = store.latents(run_id)
        ws.append(w[keep])
        labs.append(lab[keep].astype(str))
    if not ws:
        where = (f"--labels {labels.path} matches no patch of the {len(info)} store(s)" if labels is not None
                 else f"none of the {len(info)} store(s) has a slide label (tile them with a manifest label "
                      "column, or give --labels slide_id,label or slide_id,x,y,label)")
        if labels is not None and labels.per_tile and any(r["unmatched_tiles"] for r in info):
            where += " (tile x, y must be level-0 top-left corners, as in the stores' coords)"
        raise ConfigError(f"no labelled patches: {where}")
    return np.concatenate(ws).astype(np.float32), np.concatenate(labs), info
