"""Pure patch-grid geometry in level-0 pixels."""

from pathgan.tiling._grid import (
    PatchGeometry,
    grid_coords,
    level_boxes,
    locality_order,
    plan_geometry,
    shard_ranges,
)

__all__ = ["PatchGeometry", "grid_coords", "level_boxes", "locality_order", "plan_geometry", "shard_ranges"]
