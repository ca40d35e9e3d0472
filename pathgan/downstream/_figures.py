"""The confusion-matrix figure of ``pathgan classify`` (matplotlib object API, no pyplot state)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from pathgan.errors import ShapeError

__all__ = ["confusion_figure"]


def confusion_figure(confusion: Any, classes: Sequence[str], *, title: str = "") -> Figure:
    """A confusion matrix (rows: true class, columns: predicted) as a matplotlib Figure.

    Cells are coloured by the row-normalised rate (recall per true class) and show the count and
    that rate. Built without pyplot; save it with ``fig.savefig(path)``.
    """
    cm = np.asarray(confusion, np.float64)
    if cm.ndim != 2 or cm.shape != (len(classes), len(classes)):
        raise ShapeError(f"confusion must be [{len(classes)}, {len(classes)}]; received {list(cm.shape)}")
    rates = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    size = 1.6 + 0.7 * len(classes)
    fig = Figure(figsize=(size + 1.2, size), dpi=120, layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, f"{int(cm[i, j])}\n{rates[i, j]:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if rates[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(classes)), list(classes), rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), list(classes))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of the true class")
    return fig
