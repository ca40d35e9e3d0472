"""Which stored patches a dataset keeps: thresholds on the store's small per-patch arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pathgan.errors import ConfigError
from pathgan.store import PatchStore

__all__ = ["PatchFilter", "filter_store"]


@dataclass(frozen=True, kw_only=True)
class PatchFilter:
    """Patch-quality thresholds; ``None`` switches a filter off.

    Attributes
    ----------
    min_tissue_fraction : keep patches with ``tissue_fraction >=`` this (fraction in [0, 1]).
    max_white_fraction : keep patches with ``qc/white_fraction <=`` this (fraction in [0, 1]).
    max_pen_fraction : keep patches with ``qc/pen_fraction <=`` this (fraction in [0, 1]).
    min_blur : keep patches with ``qc/blur >=`` this (variance of the Laplacian; higher = sharper).

    A NaN score (never computed) fails every filter that is switched on.
    """

    min_tissue_fraction: float | None = 0.5
    max_white_fraction: float | None = 0.3
    max_pen_fraction: float | None = None
    min_blur: float | None = None

    def __post_init__(self) -> None:
        for name in ("min_tissue_fraction", "max_white_fraction", "max_pen_fraction"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= float(value) <= 1.0:
                raise ConfigError(f"{name}={value!r} is not allowed; expected a fraction in [0, 1] or None")
        if self.min_blur is not None and not float(self.min_blur) >= 0.0:
            raise ConfigError(f"min_blur={self.min_blur!r} is not allowed; expected >= 0 or None")


def filter_store(store: PatchStore, filt: PatchFilter) -> tuple[np.ndarray, dict[str, int]]:
    """Indices of the patches of ``store`` that pass ``filt``, reading no pixels.

    Returns
    -------
    keep : int64 [K], ascending patch indices into ``store``.
    removed : patches removed per filter, in the order the filters are applied (tissue, white,
        pen, blur); a patch failing several filters is counted once, for the first.
    """
    n = len(store)
    alive = np.ones(n, bool)
    removed: dict[str, int] = {}
    checks: list[tuple[str, float | None, str]] = [
        ("tissue_fraction", filt.min_tissue_fraction, ">="),
        ("white_fraction", filt.max_white_fraction, "<="),
        ("pen_fraction", filt.max_pen_fraction, "<="),
        ("blur", filt.min_blur, ">="),
    ]
    for name, threshold, op in checks:
        if threshold is None:
            continue
        values = store.tissue_fraction if name == "tissue_fraction" else store.qc(name)
        values = np.asarray(values, np.float64).reshape(n)
        passes = values >= threshold if op == ">=" else values <= threshold  # NaN -> False
        label = f"{name} {'<' if op == '>=' else '>'} {threshold:g}"
        removed[label] = int(np.count_nonzero(alive & ~passes))
        alive &= passes
    return np.flatnonzero(alive).astype(np.int64), removed
