"""Latent tissue representations for notebooks: a trained run as a :class:`LatentModel`
(generate, encode, interpolate), latent arithmetic, nearest real patches and plots.

>>> from pathgan import latents as L
>>> m = L.LatentModel.load("runs/00000-pathologygan-64-cpu")        # doctest: +SKIP
>>> d = L.direction(w_dense, w_sparse)                              # doctest: +SKIP
>>> fig = L.strip(m.generate(L.walk(m.mean_w, d, [-2, -1, 0, 1, 2])))  # doctest: +SKIP
"""

from __future__ import annotations

from pathgan.latents._arith import (
    arithmetic,
    direction,
    interpolate,
    labels_by_quantile,
    lerp,
    project_out,
    slerp,
    walk,
)
from pathgan.latents._index import LatentIndex, Neighbour
from pathgan.latents._measure import mean_haematoxylin, nuclei_density
from pathgan.latents._model import LatentModel, Space
from pathgan.latents._plot import grid, project_2d, projection_plot, strip

__all__ = [
    "LatentIndex",
    "LatentModel",
    "Neighbour",
    "Space",
    "arithmetic",
    "direction",
    "grid",
    "interpolate",
    "labels_by_quantile",
    "lerp",
    "mean_haematoxylin",
    "nuclei_density",
    "project_2d",
    "project_out",
    "projection_plot",
    "slerp",
    "strip",
    "walk",
]
