"""``pathgan roi``: score every patch of a tiled slide, threshold the heatmap into regions, export them.

Writes, in ``out_dir``:

- ``<slide_id>.geojson``: QuPath annotations in level-0 pixels (File > Import objects in QuPath);
  the foreign member ``pathgan`` holds the provenance (run, score source, threshold, frames);
- ``<slide_id>_heatmap.png``: the heatmap over the thumbnail with the ROI outlines;
- ``<slide_id>_heatmap.npy``: float32 ``[h, w]`` scores at thumbnail resolution, NaN off patches.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from pathgan import __version__
from pathgan._io import atomic_write_bytes
from pathgan.downstream._geojson import class_color, roi_features, write_geojson
from pathgan.downstream._roi import (
    PatchClassifier,
    heatmap,
    overlay_figure,
    roi_polygons,
    score_patches,
    store_frame,
)
from pathgan.errors import ConfigError
from pathgan.store import PatchStore

__all__ = ["roi"]

#: Regions smaller than this many patch footprints are dropped when no minimum area is given:
#: one isolated patch above the threshold is more often noise than a region.
DEFAULT_MIN_PATCHES = 2.0


def _load_direction(path: Path) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ConfigError(f"--direction {path}: not a readable .npy array ({err})") from err
    return np.asarray(arr)


def roi(
    store_path: str | Path,
    *,
    run_id: str,
    classifier_path: str | Path | None = None,
    class_name: str | None = None,
    direction_path: str | Path | None = None,
    threshold: float = 0.5,
    min_area_um2: float | None = None,
    out_dir: str | Path = Path("out/roi"),
    simplify_px: float = 0.5,
    classifier: PatchClassifier | None = None,
) -> dict[str, Any]:
    """Regions of interest of one patch store, as GeoJSON, an overlay PNG and the heatmap array.

    Parameters
    ----------
    store_path : a complete patch store with ``latents/<run_id>`` (``pathgan encode``).
    run_id : whose latents are scored: their name, or the run directory or exported model (its
        ``model_id``) that made them.
    classifier_path, class_name : a saved classifier (``pathgan classify``) and the class whose
        probability is the score; ``classifier`` passes an already loaded one instead of the path.
    direction_path : alternatively, a ``.npy`` direction ``[w_dim]``; the score is the projection
        on it, rescaled so the slide's 1st and 99th percentiles are 0 and 1. ``class_name`` only names the annotations
        [the file's stem].
    threshold : score in [0, 1] at or above which a thumbnail pixel is in a region.
    min_area_um2 : smaller regions and holes are dropped [2 patch footprints].
    out_dir : where the three files go.
    simplify_px : Douglas-Peucker tolerance of the outlines, in thumbnail pixels.

    Returns
    -------
    dict with slide_id, n_patches, score_source, class_name, threshold, min_area_um2, n_regions,
    roi_area_um2, regions (area_um2, mean_score, max_score, n_holes each) and the three paths.

    Raises
    ------
    ConfigError
        Not exactly one score source, a bad threshold, an unreadable direction, an unknown class.
    StoreError
        The store is incomplete or lacks the latents of ``run_id``.
    """
    from pathgan.export import resolve_model_id

    run_id = resolve_model_id(run_id)  # a run directory or an exported model stands for its latents' name
    if not 0.0 <= threshold <= 1.0:
        raise ConfigError(f"threshold must be in [0, 1]; received {threshold}")
    if min_area_um2 is not None and min_area_um2 < 0:
        raise ConfigError(f"min_area_um2 must be >= 0; received {min_area_um2}")
    given = [classifier_path is not None or classifier is not None, direction_path is not None]
    if sum(given) != 1:
        raise ConfigError("give a classifier (--classifier DIR --class NAME) or a direction (--direction FILE.npy), "
                          "exactly one of them")
    store = PatchStore(store_path)
    frame = store_frame(store)
    direction = None
    if given[0]:
        if class_name is None:
            raise ConfigError("--class is required with --classifier")
        if classifier is None:
            from pathgan.downstream import load_classifier

            classifier = load_classifier(Path(str(classifier_path)))
        source = f"classifier:{classifier_path if classifier_path is not None else type(classifier).__name__}"
    else:
        direction = _load_direction(Path(str(direction_path)))
        class_name = class_name or Path(str(direction_path)).stem
        source = f"direction:{direction_path}"
    assert class_name is not None

    scores = score_patches(store, run_id=run_id, classifier=classifier, class_name=class_name, direction=direction)
    heat, _ = heatmap(store, scores)
    min_area = DEFAULT_MIN_PATCHES * frame.patch_area_um2 if min_area_um2 is None else float(min_area_um2)
    polygons = roi_polygons(heat, threshold, min_area_um2=min_area, thumbnail_mpp=frame.thumbnail_mpp,
                            level0_mpp=frame.level0_mpp, simplify_px=simplify_px, slide_wh=frame.slide_wh)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sid = store.slide_id
    paths = {"geojson": out / f"{sid}.geojson", "overlay_png": out / f"{sid}_heatmap.png",
             "heatmap_npy": out / f"{sid}_heatmap.npy"}
    color = class_color(class_name)
    doc = {
        "type": "FeatureCollection",
        "features": roi_features(polygons, class_name=class_name, color=color, id_prefix=sid),
        "pathgan": {
            "slide_id": sid, "store": str(store.path), "run_id": run_id, "score_source": source,
            "class_name": class_name, "threshold": threshold, "min_area_um2": min_area,
            "simplify_px": simplify_px, "coordinates": "level-0 pixels (x, y), origin top left",
            "slide_wh": list(frame.slide_wh), "level0_mpp": list(frame.level0_mpp),
            "heatmap_mpp": list(frame.thumbnail_mpp), "heatmap_hw": list(heat.shape),
            "pathgan_version": __version__,
        },
    }
    write_geojson(paths["geojson"], doc)
    buf = io.BytesIO()
    np.save(buf, heat, allow_pickle=False)
    atomic_write_bytes(paths["heatmap_npy"], buf.getvalue())
    title = f"{sid}: {class_name} score ({source.split(':')[0]}), {len(polygons)} region(s) >= {threshold:g}"
    fig = overlay_figure(store.thumbnail(), heat, polygons, scale_xy=frame.scale_xy, title=title,
                         score_label=f"{class_name} score", outline_rgb=(0, 255, 255))
    buf = io.BytesIO()
    fig.savefig(buf, dpi=100, format="png")
    atomic_write_bytes(paths["overlay_png"], buf.getvalue())
    return {
        "slide_id": sid,
        "n_patches": len(store),
        "score_source": source,
        "class_name": class_name,
        "threshold": threshold,
        "min_area_um2": min_area,
        "n_regions": len(polygons),
        "roi_area_um2": float(sum(p.area_um2 for p in polygons)),
        "regions": [{"area_um2": p.area_um2, "mean_score": p.mean_score, "max_score": p.max_score,
                     "n_holes": len(p.holes)} for p in polygons],
        **{k: str(v) for k, v in paths.items()},
    }
