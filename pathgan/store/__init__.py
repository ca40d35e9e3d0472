"""The only package that defines the Zarr patch-store layout (see ``_schema``)."""

from pathgan.store._codec import CODEC_NAME, JpegCodec
from pathgan.store._discover import expand_each_store, expand_stores
from pathgan.store._h5 import write_clam_h5
from pathgan.store._latents import (
    LatentWriter,
    check_run_id,
    latent_runs,
    latents_attrs,
    open_latents_for_write,
    read_latents,
)
from pathgan.store._reader import PatchStore, read_store_attrs
from pathgan.store._schema import LABELS, LATENTS, SCHEMA_VERSION, WHITE_LEVEL, StoreAttrs
from pathgan.store._synthetic import SYNTHETIC_SLIDE_ID, SyntheticStoreWriter
from pathgan.store._writer import (
    ShardWriter,
    create_patch_arrays,
    create_store,
    finalize_store,
    partial_stores,
    temp_path_for,
    write_shard,
    write_slide_arrays,
)

__all__ = [
    "CODEC_NAME",
    "LABELS",
    "LATENTS",
    "SCHEMA_VERSION",
    "SYNTHETIC_SLIDE_ID",
    "WHITE_LEVEL",
    "JpegCodec",
    "LatentWriter",
    "PatchStore",
    "ShardWriter",
    "StoreAttrs",
    "SyntheticStoreWriter",
    "check_run_id",
    "create_patch_arrays",
    "create_store",
    "expand_each_store",
    "expand_stores",
    "finalize_store",
    "latent_runs",
    "latents_attrs",
    "open_latents_for_write",
    "partial_stores",
    "read_latents",
    "read_store_attrs",
    "temp_path_for",
    "write_clam_h5",
    "write_shard",
    "write_slide_arrays",
]
