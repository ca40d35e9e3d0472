"""QuPath-compatible GeoJSON for regions of interest.

A ``FeatureCollection`` of ``Feature`` objects in level-0 pixel coordinates (origin at the top left
of the full-resolution image, QuPath's convention), each with a ``Polygon`` (or ``MultiPolygon``)
geometry and QuPath's properties as its GeoJSON export writes them (0.4 and later)::

    {"objectType": "annotation",
     "classification": {"name": "tumour", "color": [r, g, b]},
     "measurements": {"mean_score": ..., "max_score": ..., "area_um2": ...},
     "isLocked": false}

Rings are closed and wound as RFC 7946 asks (exterior counter-clockwise, holes clockwise, on the
raw (x, y) numbers). QuPath ignores the winding; strict GeoJSON validators do not.
"""

from __future__ import annotations

import json
import math
import uuid
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pathgan._io import atomic_write_bytes
from pathgan.downstream._roi import RoiPolygon, ring_area
from pathgan.errors import GeoJSONError

__all__ = [
    "GeoJSONError",
    "class_color",
    "geojson_problems",
    "read_geojson",
    "roi_features",
    "validate_geojson",
    "write_geojson",
]

_DECIMALS = 2  # level-0 pixels to 1/100: far below a pixel, and keeps files small
# Distinct, readable on H&E (tab10 without the greys).
_PALETTE = [(214, 39, 40), (31, 119, 180), (44, 160, 44), (255, 127, 14), (148, 103, 189),
            (140, 86, 75), (227, 119, 194), (188, 189, 34), (23, 190, 207)]


def class_color(name: str) -> list[int]:
    """A stable ``[r, g, b]`` for a class name (the same name always gets the same colour)."""
    return list(_PALETTE[zlib.crc32(name.encode()) % len(_PALETTE)])


def _ring_coords(ring: np.ndarray, *, ccw: bool) -> list[list[float]]:
    r = np.round(np.asarray(ring, np.float64), _DECIMALS)
    if not np.array_equal(r[0], r[-1]):
        r = np.vstack([r, r[:1]])
    if (ring_area(r) > 0) != ccw:
        r = r[::-1]
    return [[float(x), float(y)] for x, y in r]


def roi_features(
    polygons: Sequence[RoiPolygon],
    *,
    class_name: str,
    color: Sequence[int] | None = None,
    id_prefix: str = "",
) -> list[dict[str, Any]]:
    """One QuPath annotation ``Feature`` per polygon.

    Parameters
    ----------
    polygons : from :func:`pathgan.downstream.roi_polygons` (level-0 pixels).
    class_name : the QuPath classification name.
    color : ``[r, g, b]`` 0-255 [:func:`class_color` of the name].
    id_prefix : seeds the features' ids (UUID5 of prefix, class and index), so reruns give equal files.
    """
    rgb = [int(c) for c in (class_color(class_name) if color is None else color)]
    if len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
        raise GeoJSONError(f"color must be [r, g, b] in 0..255; received {color!r}")
    features = []
    for i, poly in enumerate(polygons):
        rings = [_ring_coords(poly.exterior, ccw=True)] + [_ring_coords(h, ccw=False) for h in poly.holes]
        features.append({
            "type": "Feature",
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"pathgan-roi/{id_prefix}/{class_name}/{i}")),
            "geometry": {"type": "Polygon", "coordinates": rings},
            "properties": {
                "objectType": "annotation",
                "name": f"{class_name} ROI {i + 1}",
                "classification": {"name": class_name, "color": rgb},
                "measurements": {
                    "mean_score": float(poly.mean_score),
                    "max_score": float(poly.max_score),
                    "area_um2": float(poly.area_um2),
                },
                "isLocked": False,
            },
        })
    return features


# ------------------------------------------------------------------------------------------ validator


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _ring_problems(ring: Any, where: str, *, exterior: bool, check_winding: bool) -> list[str]:
    if not isinstance(ring, list):
        return [f"{where}: a ring must be a list of positions"]
    problems = []
    for k, pos in enumerate(ring):
        if not isinstance(pos, list) or len(pos) not in (2, 3) or not all(_is_number(v) for v in pos):
            problems.append(f"{where}[{k}]: a position must be 2 or 3 finite numbers, got {pos!r}")
    if problems:
        return problems
    if len(ring) < 4:
        problems.append(f"{where}: a linear ring needs >= 4 positions, got {len(ring)}")
    elif ring[0] != ring[-1]:
        problems.append(f"{where}: ring not closed (first {ring[0]} != last {ring[-1]})")
    elif check_winding:
        area = ring_area(np.asarray([p[:2] for p in ring], np.float64))
        if area == 0:
            problems.append(f"{where}: ring has zero area")
        elif (area > 0) != exterior:
            want = "counter-clockwise" if exterior else "clockwise"
            problems.append(f"{where}: {'exterior' if exterior else 'hole'} must be {want} (RFC 7946)")
    return problems


def _polygon_problems(coords: Any, where: str, check_winding: bool) -> list[str]:
    if not isinstance(coords, list) or not coords:
        return [f"{where}: a Polygon's coordinates must be a non-empty list of rings"]
    out = []
    for r, ring in enumerate(coords):
        out += _ring_problems(ring, f"{where}[{r}]", exterior=r == 0, check_winding=check_winding)
    return out


def _properties_problems(props: Any, where: str) -> list[str]:
    if props is None:
        return []
    if not isinstance(props, dict):
        return [f"{where}: properties must be an object or null"]
    out = []
    if "objectType" in props and props["objectType"] not in ("annotation", "detection", "tile", "cell", "tma_core"):
        out.append(f"{where}.objectType: unknown QuPath object type {props['objectType']!r}")
    cls = props.get("classification")
    if cls is not None:
        if not isinstance(cls, dict) or not isinstance(cls.get("name"), str):
            out.append(f"{where}.classification: must be an object with a string 'name'")
        elif "color" in cls and not (isinstance(cls["color"], list) and len(cls["color"]) == 3 and all(
                isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in cls["color"])):
            out.append(f"{where}.classification.color: must be [r, g, b] integers 0..255, got {cls['color']!r}")
    meas = props.get("measurements")
    if meas is not None:
        items = (list(meas.items()) if isinstance(meas, dict)
                 else [(m.get("name"), m.get("value")) for m in meas if isinstance(m, dict)]
                 if isinstance(meas, list) else None)
        if items is None:
            out.append(f"{where}.measurements: must be an object of name -> number")
        else:
            out += [f"{where}.measurements[{k!r}]: {v!r} is not a finite number"
                    for k, v in items if not isinstance(k, str) or not _is_number(v)]
    if "isLocked" in props and not isinstance(props["isLocked"], bool):
        out.append(f"{where}.isLocked: must be true or false")
    return out


def geojson_problems(doc: Any, *, check_winding: bool = True) -> list[str]:
    """Every structural problem of a FeatureCollection of Polygon/MultiPolygon features ([] = valid).

    Checks types, nesting, closed rings of >= 4 positions, finite numbers, RFC 7946 winding
    (``check_winding``) and the QuPath properties (classification name and colour, numeric
    measurements, boolean ``isLocked``). Self-intersection is not checked.
    """
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        return ["top level: expected an object with type 'FeatureCollection'"]
    feats = doc.get("features")
    if not isinstance(feats, list):
        return ["features: must be a list"]
    out: list[str] = []
    for i, feat in enumerate(feats):
        where = f"features[{i}]"
        if not isinstance(feat, dict) or feat.get("type") != "Feature":
            out.append(f"{where}: expected an object with type 'Feature'")
            continue
        geom = feat.get("geometry")
        if not isinstance(geom, dict) or geom.get("type") not in ("Polygon", "MultiPolygon"):
            out.append(f"{where}.geometry: expected a Polygon or MultiPolygon")
        elif geom["type"] == "Polygon":
            out += _polygon_problems(geom.get("coordinates"), f"{where}.geometry.coordinates", check_winding)
        else:
            polys = geom.get("coordinates")
            if not isinstance(polys, list) or not polys:
                out.append(f"{where}.geometry.coordinates: a MultiPolygon needs a non-empty list of polygons")
            else:
                for p, poly in enumerate(polys):
                    out += _polygon_problems(poly, f"{where}.geometry.coordinates[{p}]", check_winding)
        out += _properties_problems(feat.get("properties"), f"{where}.properties")
    return out


def validate_geojson(doc: Any, *, check_winding: bool = True) -> None:
    """Raise :class:`GeoJSONError` listing :func:`geojson_problems` unless there are none."""
    problems = geojson_problems(doc, check_winding=check_winding)
    if problems:
        shown = "; ".join(problems[:10]) + (f"; ... ({len(problems)} in all)" if len(problems) > 10 else "")
        raise GeoJSONError(f"invalid GeoJSON: {shown}")


# ----------------------------------------------------------------------------------------------- I/O


def write_geojson(path: str | Path, features: Sequence[dict[str, Any]] | dict[str, Any]) -> Path:
    """Validate and write a FeatureCollection (or a list of features) atomically: a temporary
    sibling, then a rename. Non-finite numbers are refused (``allow_nan=False``)."""
    path = Path(path)
    doc = features if isinstance(features, dict) else {"type": "FeatureCollection", "features": list(features)}
    validate_geojson(doc)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, json.dumps(doc, allow_nan=False, indent=1).encode())
    return path


def read_geojson(path: str | Path, *, check_winding: bool = False) -> list[dict[str, Any]]:
    """The features of a GeoJSON FeatureCollection file, validated (winding checked on request,
    since QuPath's own exports do not follow RFC 7946's)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise GeoJSONError(f"{path}: cannot read GeoJSON ({err})") from err
    try:
        validate_geojson(doc, check_winding=check_winding)
    except GeoJSONError as err:
        raise GeoJSONError(f"{path}: {err}") from err
    return list(doc["features"])
