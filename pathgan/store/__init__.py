"""The only package that defines the Zarr patch-store layout (see ``_schema``)."""

from pathgan.store._codec import CODEC_NAME, JpegCodec
from pathgan.store._h5 import write_clam_h5
from pathgan.store._reader import PatchStore, read_store_attrs
from pathgan.store._schema import SCHEMA_VERSION, WHITE_LEVEL
from pathgan.store._writer import (
    create_store,
    finalize_store,
    partial_stores,
    temp_path_for,
    write_shard,
)

__all__ = [
    "CODEC_NAME",
    "SCHEMA_VERSION",
    "WHITE_LEVEL",
    "JpegCodec",
    "PatchStore",
    "create_store",
    "finalize_store",
    "partial_stores",
    "read_store_attrs",
    "temp_path_for",
    "write_clam_h5",
    "write_shard",
]
