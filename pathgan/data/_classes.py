"""Class labels of training patches as class indices, for class-conditional models (the CSV itself is read by pathgan.labels)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pathgan.errors import ConfigError
from pathgan.labels import read_label_csv, store_labels
from pathgan.store import PatchStore

__all__ = ["ClassLabels", "class_labels"]


@dataclass(frozen=True)
class ClassLabels:
    """Class index of every patch of some stores (-1 = unlabelled), with the class names.

    ``per_store[k]`` is int64 [n_patches of store k]; ``names[i]`` is the name of class i (sorted).
    """

    names: tuple[str, ...]
    per_store: tuple[np.ndarray, ...]
    source: dict[str, Any] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """Labelled patches per class name."""
        all_idx = np.concatenate(self.per_store) if self.per_store else np.zeros(0, np.int64)
        return {name: int(np.count_nonzero(all_idx == i)) for i, name in enumerate(self.names)}


def class_labels(stores: Sequence[Path], source: str, *, names: Sequence[str] | None = None) -> ClassLabels:
    """Per-patch class indices of ``stores`` from ``source`` (``"manifest"``: each store's slide
    label; otherwise the path of a label CSV, per slide or per tile).

    ``names`` fixes the class list (a resumed run keeps its own); patches of other classes are then
    an error, not silently dropped.

    Raises
    ------
    ConfigError
        No labelled patch, fewer than two classes, or a label outside ``names``.
    """
    table = None
    info: dict[str, Any] = {"kind": "manifest"}
    if source != "manifest":
        path = Path(source)
        table = read_label_csv(path)
        info = {"kind": "csv", "path": str(path.resolve()), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    raw = [store_labels(PatchStore(p), table)[0] for p in stores]
    found = sorted({str(x) for lab in raw for x in lab if x != ""})
    if names is None:
        if len(found) < 2:
            where = f"label CSV {source}" if table is not None else "the stores' slide labels (manifest label column)"
            raise ConfigError(f"labels={source!r}: a class-conditional model needs >= 2 classes, {where} give "
                              f"{found or 'none'} over {len(stores)} training store(s)")
        names = found
    unknown = sorted(set(found) - set(names))
    if unknown:
        raise ConfigError(f"labels={source!r}: classes {unknown} are not among the run's classes {list(names)}")
    index = {n: i for i, n in enumerate(names)}
    per_store = tuple(np.array([index.get(str(x), -1) for x in lab], np.int64) for lab in raw)
    return ClassLabels(names=tuple(names), per_store=per_store, source=info)
