"""What users do with the latents: classifiers on patch latents (``pathgan classify``)."""

from __future__ import annotations

from pathgan.downstream._classifier import (
    LatentClassifier,
    ModelKind,
    fit_classifier,
    load_classifier,
)
from pathgan.downstream._crossval import CVResult, cross_validate
from pathgan.downstream._figures import confusion_figure
from pathgan.downstream._geojson import (
    GeoJSONError,
    class_color,
    geojson_problems,
    read_geojson,
    roi_features,
    validate_geojson,
    write_geojson,
)
from pathgan.downstream._metrics import classification_metrics
from pathgan.downstream._roi import (
    PatchClassifier,
    RoiPolygon,
    StoreFrame,
    heatmap,
    overlay_figure,
    paint_heatmap,
    ring_area,
    roi_polygons,
    score_patches,
    store_frame,
)
from pathgan.downstream._synthetic import (
    UNCONDITIONAL,
    ClassCentroids,
    ExportConfig,
    LabelTable,
    Spread,
    SyntheticFormat,
    labelled_latents,
    read_label_csv,
)
from pathgan.downstream._table import LatentTable

__all__ = [
    "UNCONDITIONAL",
    "AttentionMIL",
    "CVResult",
    "ClassCentroids",
    "ExportConfig",
    "GeoJSONError",
    "LabelTable",
    "LatentClassifier",
    "LatentTable",
    "ModelKind",
    "PatchClassifier",
    "RoiPolygon",
    "Spread",
    "StoreFrame",
    "SyntheticFormat",
    "class_color",
    "classification_metrics",
    "confusion_figure",
    "cross_validate",
    "fit_attention_mil",
    "fit_classifier",
    "geojson_problems",
    "heatmap",
    "labelled_latents",
    "load_classifier",
    "overlay_figure",
    "paint_heatmap",
    "read_geojson",
    "read_label_csv",
    "ring_area",
    "roi_features",
    "roi_polygons",
    "score_patches",
    "store_frame",
    "validate_geojson",
    "write_geojson",
]


def __getattr__(name: str) -> object:
    # The attention-MIL head needs torch; import it only when asked for, so `import pathgan.downstream`
    # (classifiers, ROIs, GeoJSON, synthetic sampling) stays light.
    if name in ("AttentionMIL", "fit_attention_mil"):
        from pathgan.downstream import _mil

        return getattr(_mil, name)
    raise AttributeError(f"module 'pathgan.downstream' has no attribute {name!r}")
