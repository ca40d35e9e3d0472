"""The one definition of the patch-store layout (schema version 1).

::

    <slide_id>.zarr/                      Zarr v3 group; attrs["pathgan"] = store metadata
      patches          uint8  [N, P, P, 3]  one patch per inner chunk, S patches per shard
      coords           int64  [N, 2]        level-0 (x, y) of each patch's top-left corner
      tissue_fraction  float32 [N]          from the tissue mask (integral image)
      qc/pen_fraction  float32 [N]          from the pen-ink mask
      qc/blur          float32 [N]          sharpness (variance of Laplacian), higher = sharper
      qc/white_fraction float32 [N]         pixels with all channels > 215 (PathologyGAN's rule)
      thumbnail        uint8  [h, w, 3]     at attrs thumbnail_mpp
      masks/tissue     bool   [h, w]
      masks/pen        bool   [h, w]
      latents/<run_id> float32 [N, w_dim]   one latent per patch, row-aligned with coords, written by
                                            ``pathgan encode``; attrs: "pathgan" (checkpoint_sha256,
                                            encoder_sha256, refine_steps, ...), "complete", "rows_done"
      labels           int16  [N]           synthetic stores only (``pathgan export-synthetic``): class
                                            index into attrs class_names; attrs synthetic: true

Latents live in their own subgroup and never touch the root attributes, so adding them leaves the
store complete and readable by :func:`~pathgan.store.read_store_attrs`.
"""

from __future__ import annotations

SCHEMA_VERSION = 1
ATTRS_KEY = "pathgan"
PATCHES = "patches"
COORDS = "coords"
TISSUE_FRACTION = "tissue_fraction"
QC_ARRAYS = ("qc/pen_fraction", "qc/blur", "qc/white_fraction")
THUMBNAIL = "thumbnail"
MASK_TISSUE = "masks/tissue"
MASK_PEN = "masks/pen"
LATENTS = "latents"
LABELS = "labels"
WHITE_LEVEL = 215

#: Attributes every complete store carries (checked by the reader and by resume).
REQUIRED_ATTRS = (
    "schema_version",
    "complete",
    "slide_id",
    "source",
    "mpp_requested",
    "mpp_effective",
    "source_level",
    "patch_px",
    "stride_px",
    "n_patches",
    "config",
    "pathgan_version",
)

__all__ = [
    "ATTRS_KEY",
    "COORDS",
    "LABELS",
    "LATENTS",
    "MASK_PEN",
    "MASK_TISSUE",
    "PATCHES",
    "QC_ARRAYS",
    "REQUIRED_ATTRS",
    "SCHEMA_VERSION",
    "THUMBNAIL",
    "TISSUE_FRACTION",
    "WHITE_LEVEL",
]
