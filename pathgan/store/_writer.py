"""Write a patch store: create it under a temporary name, fill shards from workers, then rename.

Every function takes paths, never open arrays, so it can run in any Dask worker. A shard is
written by exactly one call, which writes the whole shard, so concurrent tasks never touch the
same file.
"""

from __future__ import annotations

import functools
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import google_crc32c
import numpy as np
import zarr
from numcodecs.zstd import Zstd
from zarr.codecs import (
    BytesCodec,
    Crc32cCodec,
    ShardingCodec,
    ShardingCodecIndexLocation,
    ZstdCodec,
)
from zarr.codecs.bytes import Endian
from zarr.core.chunk_key_encodings import DefaultChunkKeyEncoding
from zarr.storage import LocalStore

from pathgan._faults import fault_point
from pathgan._io import atomic_replace, fsync_tree
from pathgan.errors import ShapeError, StoreExistsError
from pathgan.store import _schema as S
from pathgan.store._codec import JpegCodec

__all__ = [
    "ShardWriter",
    "create_patch_arrays",
    "create_store",
    "finalize_store",
    "partial_stores",
    "temp_path_for",
    "write_shard",
    "write_slide_arrays",
]

_PARTIAL = ".partial-"


def _array(grp: zarr.Group, name: str) -> zarr.Array:
    node = grp[name]
    assert isinstance(node, zarr.Array), f"{name} is not an array"
    return node


def temp_path_for(final: Path) -> Path:
    """A unique temporary sibling of ``final``; it never looks like a complete store."""
    return final.with_name(f"{final.name}{_PARTIAL}{uuid.uuid4().hex[:8]}")


def partial_stores(final: Path) -> list[Path]:
    """Leftover temporary stores of ``final`` from interrupted runs."""
    return sorted(final.parent.glob(f"{final.name}{_PARTIAL}*"))


def create_store(
    path: Path,
    *,
    coords_xy: np.ndarray,
    tissue_fraction: np.ndarray,
    pen_fraction: np.ndarray,
    patch_px: int,
    patches_per_shard: int,
    codec: str,
    jpeg_quality: int,
    thumbnail: np.ndarray,
    tissue_mask: np.ndarray,
    pen_mask: np.ndarray,
) -> None:
    """Create the group with every array; patches and pixel QC are filled later by :func:`write_shard`.

    The same as :func:`create_patch_arrays` followed by :func:`write_slide_arrays`.
    """
    create_patch_arrays(path, n=len(coords_xy), patch_px=patch_px, patches_per_shard=patches_per_shard,
                        codec=codec, jpeg_quality=jpeg_quality)
    write_slide_arrays(path, coords_xy=coords_xy, tissue_fraction=tissue_fraction, pen_fraction=pen_fraction,
                       patches_per_shard=patches_per_shard, thumbnail=thumbnail, tissue_mask=tissue_mask,
                       pen_mask=pen_mask)


_SMALL: dict[str, Any] = {"compressors": ZstdCodec(level=3)}


def create_patch_arrays(path: Path, *, n: int, patch_px: int, patches_per_shard: int, codec: str,
                        jpeg_quality: int, overwrite: bool = True) -> None:
    """Create the group with the arrays the shard writers fill: ``patches``, ``qc/blur`` and
    ``qc/white_fraction`` (all ``n`` long, empty). Enough for :class:`ShardWriter` to start.

    ``overwrite`` replaces whatever is at ``path``; without it, files already in the folder that
    are not Zarr nodes are kept (an existing array of the same name is an error).
    """
    grp = zarr.open_group(path, mode="w" if overwrite else "a", zarr_format=3)
    image_codec: dict[str, Any] = (
        {"serializer": JpegCodec(level=jpeg_quality), "compressors": None}
        if codec == "jpeg"
        else {"compressors": ZstdCodec(level=3)}
    )
    grp.create_array(
        S.PATCHES,
        shape=(n, patch_px, patch_px, 3),
        dtype="uint8",
        chunks=(1, patch_px, patch_px, 3),
        shards=(patches_per_shard, patch_px, patch_px, 3),
        fill_value=255,
        **image_codec,
    )
    for name in ("qc/blur", "qc/white_fraction"):
        grp.create_array(name, shape=(n,), dtype="float32", chunks=(patches_per_shard,), fill_value=np.nan, **_SMALL)


def write_slide_arrays(
    path: Path,
    *,
    coords_xy: np.ndarray,
    tissue_fraction: np.ndarray,
    pen_fraction: np.ndarray,
    patches_per_shard: int,
    thumbnail: np.ndarray,
    tissue_mask: np.ndarray,
    pen_mask: np.ndarray,
) -> None:
    """Write the slide-level arrays into a group made by :func:`create_patch_arrays`: ``coords``,
    ``tissue_fraction``, ``qc/pen_fraction``, ``thumbnail`` and the masks. Touches none of the
    arrays the shard writers fill, so it may run while they do."""
    n = len(coords_xy)
    grp = zarr.open_group(path, mode="r+")
    per = max(1, min(patches_per_shard, max(n, 1)))
    grp.create_array(S.COORDS, data=np.asarray(coords_xy, np.int64).reshape(n, 2), chunks=(per, 2), **_SMALL)
    grp.create_array(S.TISSUE_FRACTION, data=np.asarray(tissue_fraction, np.float32), chunks=(per,), **_SMALL)
    grp.create_array("qc/pen_fraction", shape=(n,), dtype="float32", chunks=(patches_per_shard,), fill_value=np.nan,
                     **_SMALL)
    if n:
        _array(grp, "qc/pen_fraction")[:] = np.asarray(pen_fraction, np.float32)
    # Whole-pixel chunks and zstd level 1: 4x faster to write than zarr's default chunking (which
    # splits the colour channels), and smaller.
    thumb = np.ascontiguousarray(thumbnail, np.uint8)
    grp.create_array(S.THUMBNAIL, data=thumb, chunks=(512, 512, *thumb.shape[2:]), compressors=ZstdCodec(level=1))
    grp.create_array(S.MASK_TISSUE, data=np.asarray(tissue_mask, bool), **_SMALL)
    grp.create_array(S.MASK_PEN, data=np.asarray(pen_mask, bool), **_SMALL)


def write_shard(path: Path, start: int, patches: np.ndarray, blur: np.ndarray, white_fraction: np.ndarray) -> None:
    """Write patches ``[start, start + len(patches))``: exactly one shard (or the last, partial one)."""
    writer = ShardWriter(path, start, len(patches))
    writer.add(patches)
    writer.finish(blur, white_fraction)


class ShardWriter:
    """Writes the patches ``[start, start + n)`` of one shard (or the last, partial one), added
    in consecutive batches, then its QC scores.

    With the layout of :func:`create_patch_arrays` (JPEG patches, zstd QC scores) each batch is
    encoded as it comes (while the patches are still in the CPU cache) and the shard and QC chunk
    files are written directly, byte for byte as zarr writes them; any other layout (zstd patches,
    or a store changed by hand) buffers the patches and writes through zarr at :meth:`finish`.
    """

    def __init__(self, path: Path, start: int, n: int) -> None:
        self._path = Path(path)
        self.start, self.n, self._filled = start, n, 0
        layout = _direct_layout(self._path)
        stop = start + n
        whole_shard = (
            layout is not None
            and start % layout.per_shard == 0
            and (n == layout.per_shard or (stop == layout.n and n > 0))
        )
        self._layout = layout if whole_shard else None
        self._encoded: list[bytes] = []
        self._buffer: np.ndarray | None = None

    def add(self, patches: np.ndarray) -> None:
        """The next ``len(patches)`` patches of the shard."""
        k = len(patches)
        if self._filled + k > self.n:
            raise ShapeError(f"shard at {self.start} holds {self.n} patches; got {self._filled + k}")
        if self._layout is not None:
            self._encoded.extend(self._layout.jpeg.encode_image(p) for p in patches)
        else:
            if self._buffer is None:
                self._buffer = np.empty((self.n, *np.shape(patches)[1:]), np.uint8)
            self._buffer[self._filled : self._filled + k] = patches
        self._filled += k

    def finish(self, blur: np.ndarray, white_fraction: np.ndarray) -> None:
        """Write the shard and its ``qc/blur`` and ``qc/white_fraction`` scores."""
        if self._filled != self.n:
            raise ShapeError(f"shard at {self.start} holds {self.n} patches; got {self._filled}")
        stop = self.start + self.n
        qc = {"qc/blur": np.asarray(blur, np.float32), "qc/white_fraction": np.asarray(white_fraction, np.float32)}
        layout = self._layout
        if layout is not None:
            index = self.start // layout.per_shard
            _write_jpeg_shard(self._path / S.PATCHES / layout.patch_key(index), self._encoded, layout.per_shard)
            for name, values in qc.items():
                _write_qc_chunk(self._path / name / layout.qc_key(index), values, layout.per_shard, layout.qc_zstd)
            fault_point("store.shard")
            return
        grp = zarr.open_group(self._path, mode="r+")
        if self._buffer is not None:
            # write_empty_chunks is a runtime setting: skip zarr's per-chunk "all fill value?" scan.
            with zarr.config.set({"array.write_empty_chunks": True}):
                _array(grp, S.PATCHES)[self.start : stop] = self._buffer
        for name, values in qc.items():
            _array(grp, name)[self.start : stop] = values
        fault_point("store.shard")


@dataclass(frozen=True)
class _DirectLayout:
    """What :class:`ShardWriter` needs to write a shard's files without zarr."""

    n: int
    per_shard: int
    jpeg: JpegCodec
    qc_zstd: Zstd
    patch_key: Callable[[int], str]
    qc_key: Callable[[int], str]


def _direct_layout(path: Path) -> _DirectLayout | None:
    """The store's layout when :class:`ShardWriter` can write it directly, else None. Read once
    per store and metadata version (a store re-created at the same path is read again)."""
    stamps = []
    for name in (S.PATCHES, "qc/blur", "qc/white_fraction"):
        try:
            st = (path / name / "zarr.json").stat()
        except OSError:
            return None
        stamps.append((st.st_mtime_ns, st.st_size, st.st_ino))
    return _read_direct_layout(str(path), tuple(stamps))


@functools.lru_cache(maxsize=8)
def _read_direct_layout(path: str, _stamps: tuple[Any, ...]) -> _DirectLayout | None:
    grp = zarr.open_group(path, mode="r")
    patches = _array(grp, S.PATCHES)
    jpeg = _jpeg_shard_codec(patches)
    if jpeg is None or not patches.shards:
        return None
    per = int(patches.shards[0])
    zstd = None
    for name in ("qc/blur", "qc/white_fraction"):
        level_checksum = _qc_zstd_config(_array(grp, name), per, patches.shape[0])
        if level_checksum is None or (zstd is not None and level_checksum != zstd):
            return None
        zstd = level_checksum
    assert zstd is not None
    patches_meta = patches.metadata
    qc_meta = _array(grp, "qc/blur").metadata
    return _DirectLayout(
        n=int(patches.shape[0]),
        per_shard=per,
        jpeg=jpeg,
        qc_zstd=Zstd(level=zstd[0], checksum=zstd[1]),
        patch_key=lambda i: patches_meta.encode_chunk_key((i, 0, 0, 0)),  # type: ignore[union-attr]
        qc_key=lambda i: qc_meta.encode_chunk_key((i,)),  # type: ignore[union-attr]
    )


def _qc_zstd_config(arr: zarr.Array, per_shard: int, n: int) -> tuple[int, bool] | None:
    """(level, checksum) when ``arr`` is float32 [n] in chunks of ``per_shard``, NaN fill, stored
    as little-endian bytes + zstd with "/" chunk keys on a local store; None otherwise."""
    meta = arr.metadata
    codecs: tuple[Any, ...] = tuple(getattr(meta, "codecs", ()))
    fill = np.asarray(arr.fill_value, dtype=np.float64)
    ok = (
        len(codecs) == 2
        and isinstance(codecs[0], BytesCodec)
        and codecs[0].endian in (Endian.little, None)
        and isinstance(codecs[1], ZstdCodec)
        and arr.dtype == np.float32
        and tuple(arr.shape) == (n,)
        and tuple(arr.chunks) == (per_shard,)
        and bool(np.isnan(fill))
        and isinstance(getattr(meta, "chunk_key_encoding", None), DefaultChunkKeyEncoding)
        and meta.chunk_key_encoding.separator == "/"  # type: ignore[union-attr]
        and isinstance(arr.store_path.store, LocalStore)
        and sys.byteorder == "little"
    )
    return (int(codecs[1].level), bool(codecs[1].checksum)) if ok else None


def _write_qc_chunk(file: Path, values: np.ndarray, chunk_len: int, zstd: Zstd) -> None:
    """One QC chunk as zarr writes it: the chunk padded to full length with the NaN fill value,
    little-endian float32 bytes, zstd-compressed; a chunk of nothing but fill value is not stored."""
    chunk = np.full(chunk_len, np.nan, dtype="<f4")
    chunk[: len(values)] = values
    if np.isnan(chunk).all():
        file.unlink(missing_ok=True)
        return
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_bytes(bytes(zstd.encode(chunk.view(np.uint8))))


_NO_CHUNK = np.uint64(2**64 - 1)  # offset and length of an absent chunk in a shard index


def _jpeg_shard_codec(arr: zarr.Array) -> JpegCodec | None:
    """The JPEG codec when ``arr`` has exactly the layout :func:`create_store` gives patches (shards
    of one-image chunks, JPEG, index at the end as little-endian uint64 + crc32c, "/" chunk keys on
    a local store); None otherwise, and the shard is then written through zarr."""
    meta = arr.metadata
    codecs: tuple[Any, ...] = tuple(getattr(meta, "codecs", ()))
    if len(codecs) != 1 or not isinstance(codecs[0], ShardingCodec):
        return None
    sharding = codecs[0]
    inner: tuple[Any, ...] = tuple(sharding.codecs)
    index: tuple[Any, ...] = tuple(sharding.index_codecs)
    jpeg = inner[0] if len(inner) == 1 and isinstance(inner[0], JpegCodec) else None
    if jpeg is None or len(index) != 2:
        return None
    ok = (
        sharding.chunk_shape[:1] == (1,)
        and sharding.chunk_shape[:1] == (1,)
        and tuple(sharding.chunk_shape[1:]) == tuple(arr.shape[1:])
        and sharding.index_location == ShardingCodecIndexLocation.end
        and isinstance(index[0], BytesCodec)
        and index[0].endian in (Endian.little, None)
        and isinstance(index[1], Crc32cCodec)
        and isinstance(meta.chunk_key_encoding, DefaultChunkKeyEncoding)  # type: ignore[union-attr]
        and meta.chunk_key_encoding.separator == "/"  # type: ignore[union-attr]
        and isinstance(arr.store_path.store, LocalStore)
        and sys.byteorder == "little"
        and arr.dtype == np.uint8
    )
    return jpeg if ok else None


def _write_jpeg_shard(file: Path, encoded: list[bytes], per_shard: int) -> None:
    """One shard file as zarr writes it: the chunks' JPEGs back to back in chunk order, then the
    index (offset, length) per chunk as uint64, absent chunks all ones, and its crc32c. Writing it
    directly skips zarr's per-chunk async pipeline (0.15 ms per patch); the bytes are the same
    (tests/unit/test_store.py compares the files)."""
    lengths = np.fromiter((len(e) for e in encoded), dtype=np.uint64, count=len(encoded))
    index = np.full((per_shard, 2), _NO_CHUNK, dtype="<u8")
    index[: len(encoded), 1] = lengths
    index[: len(encoded), 0] = np.cumsum(lengths) - lengths
    index_bytes = index.tobytes()
    checksum = np.array([google_crc32c.value(index_bytes)], dtype=np.uint32).tobytes()
    file.parent.mkdir(parents=True, exist_ok=True)
    with open(file, "wb") as fh:
        fh.write(b"".join([*encoded, index_bytes, checksum]))


def finalize_store(path: Path, final: Path, attrs: S.StoreAttrs, *, overwrite: bool = False) -> None:
    """Stamp the metadata (``complete: true``), sync every file of the store to the disk, then
    atomically rename ``path`` to ``final`` and sync the parent: after a power loss the final name
    either does not exist or names a store whose bytes are all on disk.

    ``attrs`` is validated again (a dict is accepted and validated the same way), so no store is
    ever marked complete with attributes a reader would refuse.
    """
    attrs = S.StoreAttrs.from_dict(attrs.to_dict() if isinstance(attrs, S.StoreAttrs) else attrs, str(final))
    grp = zarr.open_group(path, mode="r+")
    grp.attrs[S.ATTRS_KEY] = {**attrs.to_dict(), "schema_version": S.SCHEMA_VERSION, "complete": True}
    fault_point("store.finalize")  # complete attrs written, the temporary name not yet renamed
    fsync_tree(path)
    if final.exists() and not overwrite:
        raise StoreExistsError(f"{final} appeared while this run was writing it")
    atomic_replace(path, final, trash=temp_path_for(final))  # an old store is moved where resume cleans up
