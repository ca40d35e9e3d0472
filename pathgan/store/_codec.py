"""A Zarr v3 array->bytes JPEG codec, registered under imagecodecs' own name.

imagecodecs ships Zarr v3 codecs only for Python >= 3.12 and zarr >= 3.2. Registering ours under
the same name (``imagecodecs_jpeg``) with the same configuration key (``level``) keeps the stores
readable by imagecodecs' codec after that upgrade, and by this one now. It is a serializer (turns
an array chunk into bytes), so it goes in ``serializer=``, not in ``compressors=``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import imagecodecs
import numpy as np
from zarr.abc.codec import ArrayBytesCodec
from zarr.core.buffer import Buffer, NDBuffer
from zarr.registry import register_codec

from pathgan.errors import ConfigError, ShapeError

if TYPE_CHECKING:
    from zarr.core.array_spec import ArraySpec

__all__ = ["CODEC_NAME", "JpegCodec"]

CODEC_NAME = "imagecodecs_jpeg"


@dataclass(frozen=True)
class JpegCodec(ArrayBytesCodec):
    """Baseline JPEG (libjpeg-turbo via imagecodecs) for uint8 chunks of shape ``(..., H, W, 3)``.

    Leading chunk dimensions must be 1 (one image per chunk). RGB is encoded as YCbCr with
    libjpeg's default 4:2:0 chroma subsampling and standard JFIF markers, so any JPEG decoder
    reads the colours right.
    """

    is_fixed_size = False
    level: int = 90

    def __init__(self, *, level: int = 90) -> None:
        if not 1 <= int(level) <= 100:
            raise ConfigError(f"JPEG level must be 1-100, got {level}")
        object.__setattr__(self, "level", int(level))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JpegCodec:
        config = data.get("configuration") or {}
        return cls(level=int(config.get("level", 90)))

    def to_dict(self) -> dict[str, Any]:
        return {"name": CODEC_NAME, "configuration": {"level": self.level}}

    def validate(self, *, shape: tuple[int, ...], dtype: Any, chunk_grid: Any) -> None:
        chunk = tuple(getattr(chunk_grid, "chunk_shape", ()))
        if chunk and (chunk[-1] not in (1, 3) or any(c != 1 for c in chunk[:-3])):
            raise ShapeError(f"{CODEC_NAME} needs chunks (1, ..., H, W, 3), got {chunk}")

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        img = imagecodecs.jpeg8_decode(chunk_bytes.to_bytes())
        arr = np.asarray(img, dtype=np.uint8).reshape(tuple(int(d) for d in chunk_spec.shape))
        return chunk_spec.prototype.nd_buffer.from_ndarray_like(arr)  # type: ignore[arg-type]

    def encode_image(self, img: np.ndarray) -> bytes:
        """One chunk's bytes: the JPEG of an ``(H, W, 3)`` uint8 image (also used by the shard
        writer in :mod:`pathgan.store._writer`, so both paths give the same bytes)."""
        return bytes(imagecodecs.jpeg8_encode(np.ascontiguousarray(img), level=self.level))

    async def _encode_single(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        arr = np.asarray(chunk_array.as_ndarray_like(), dtype=np.uint8)
        img = arr.reshape(arr.shape[-3:]) if arr.ndim > 3 else arr
        return chunk_spec.prototype.buffer.from_bytes(self.encode_image(img))

    def compute_encoded_size(self, input_byte_length: int, _chunk_spec: ArraySpec) -> int:
        raise NotImplementedError("JPEG output size is data dependent")


register_codec(CODEC_NAME, JpegCodec)
