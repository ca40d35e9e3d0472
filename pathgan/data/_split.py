"""Train/val/test split of patch stores by slide, never by patch."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pathgan.errors import ConfigError
from pathgan.store import PatchStore, read_store_attrs

__all__ = ["SPLITS", "split_stores"]

SPLITS = ("train", "val", "test")


def split_stores(
    stores: Sequence[PatchStore | str | Path], *, val_fraction: float, seed: int
) -> dict[str, list[Path]]:
    """Assign stores to ``train``, ``val`` and ``test`` by slide.

    A store's ``attrs["split"]`` (from the manifest) wins. Slides without one are shuffled with
    ``seed`` (after sorting their ids, so input order does not matter) and
    ``round(val_fraction * n)`` of them go to ``val``, the rest to ``train``; with two or more such
    slides, ``val_fraction > 0`` and no manifest ``val`` slide, at least one goes to ``val``, and at
    least one always stays in ``train``. Stores of the same slide (same ``slide_id``) always share
    a split.

    Parameters
    ----------
    stores : complete stores (paths or open stores).
    val_fraction : share of the unassigned slides held out for validation, in [0, 1).
    seed : seed of the shuffle.

    Returns
    -------
    ``{"train": [...], "val": [...], "test": [...]}``, each a sorted list of store paths.

    Raises
    ------
    StoreError
        A path is not a complete store.
    ConfigError
        ``val_fraction`` out of range, an unknown split value, or stores of one slide whose
        manifest splits disagree.
    """
    if not 0.0 <= float(val_fraction) < 1.0:
        raise ConfigError(f"val_fraction={val_fraction!r} is not allowed; expected [0, 1)")
    by_slide: dict[str, list[Path]] = {}
    fixed: dict[str, str] = {}
    for s in stores:
        path, attrs = (s.path, s.attrs) if isinstance(s, PatchStore) else (Path(s), read_store_attrs(Path(s)))
        sid, split = str(attrs["slide_id"]), attrs.get("split")
        by_slide.setdefault(sid, []).append(path)
        if split is None or split == "":
            continue
        if split not in SPLITS:
            raise ConfigError(f"store {path} has split={split!r}; expected one of {SPLITS} or none")
        if fixed.setdefault(sid, split) != split:
            raise ConfigError(f"slide {sid!r} has stores in two splits ({fixed[sid]!r} and {split!r}); last: {path}")
    out: dict[str, list[Path]] = {name: [] for name in SPLITS}
    for sid, split in fixed.items():
        out[split].extend(by_slide[sid])
    free = sorted(sid for sid in by_slide if sid not in fixed)
    n = len(free)
    n_val = round(val_fraction * n)
    if n >= 2 and val_fraction > 0 and n_val == 0 and not out["val"]:
        n_val = 1
    if n >= 1:
        n_val = min(n_val, n - 1)
    order = np.random.default_rng(seed).permutation(n) if n else np.zeros(0, np.int64)
    for rank, i in enumerate(order):
        out["val" if rank < n_val else "train"].extend(by_slide[free[int(i)]])
    return {name: sorted(paths) for name, paths in out.items()}
