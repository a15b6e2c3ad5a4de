"""A zstd chunk's decompressed size, read from its frame header before the decoder runs.

numcodecs' Zstd allocates whatever size the first frame's header declares (and, when the header
declares none, grows a buffer for as long as the stream goes on): a few kilobytes of hostile chunk
can ask for gigabytes. The size a chunk of an array decodes to is known from the array's metadata
(shape of a chunk x item size), so `BoundedZstdCodec` reads the header (RFC 8878, section 3.1.1)
and refuses a chunk that declares any other size, or none, before a byte is decompressed. With
the declared size equal to the expected one, numcodecs decompresses into a buffer of exactly that
size, and a stream that would run past it fails there.
"""
from __future__ import annotations

from math import prod

import zarr
from zarr.codecs.zstd import ZstdCodec
from zarr.registry import fully_qualified_name, register_codec

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"  # 0xFD2FB528, little-endian
HEADER_MAX = 18  # magic 4 + descriptor 1 + window 1 + dictionary id 4 + content size 8


class ChunkSizeError(ValueError):
    """A chunk's compressed stream declares another decompressed size than its array's metadata
    allows (a decompression bomb, or a chunk of another array); refused before decompressing."""


def frame_content_size(data: bytes) -> int | None:
    """The Frame_Content_Size the first zstd frame of `data` declares; None when it declares none.

    Raises ChunkSizeError when `data` does not start with a zstd frame header."""
    if len(data) < 5 or data[:4] != ZSTD_MAGIC:
        raise ChunkSizeError(f"not a zstd frame (starts with {data[:4].hex() or 'nothing'})")
    descriptor = data[4]
    fcs_flag, single_segment, dict_flag = descriptor >> 6, (descriptor >> 5) & 1, descriptor & 3
    if descriptor & 0x08:
        raise ChunkSizeError("zstd frame header with its reserved bit set")
    pos = 5 + (0 if single_segment else 1) + (0, 1, 2, 4)[dict_flag]
    size = (1 if single_segment else 0, 2, 4, 8)[fcs_flag]
    if size == 0:
        return None
    if len(data) < pos + size:
        raise ChunkSizeError("zstd frame header cut short")
    value = int.from_bytes(data[pos:pos + size], "little")
    return value + 256 if size == 2 else value


def check_declared_size(data: bytes, expected: int) -> None:
    """Refuse a chunk whose zstd header declares no size or another size than `expected` bytes."""
    declared = frame_content_size(data[:HEADER_MAX])
    if declared is None:
        raise ChunkSizeError(f"its zstd stream does not declare its decompressed size (facesynth's always "
                             f"does; a chunk of this array holds {expected:,} bytes); refused before decompressing")
    if declared != expected:
        raise ChunkSizeError(f"its zstd stream declares {declared:,} bytes decompressed, but a chunk of this "
                             f"array holds {expected:,} bytes (its zarr.json); refused before decompressing")


class BoundedZstdCodec(ZstdCodec):
    """Zarr's zstd codec, with the decompressed size checked against the chunk's spec first."""

    def _decode_sync(self, chunk_bytes, chunk_spec):  # type: ignore[override]
        expected = prod(chunk_spec.shape) * chunk_spec.dtype.to_native_dtype().itemsize
        check_declared_size(chunk_bytes.as_numpy_array()[:HEADER_MAX].tobytes(), expected)
        return super()._decode_sync(chunk_bytes, chunk_spec)


def install() -> None:
    """Make every zstd chunk Zarr reads in this process go through BoundedZstdCodec."""
    register_codec("zstd", BoundedZstdCodec)
    zarr.config.set({"codecs.zstd": fully_qualified_name(BoundedZstdCodec)})


install()
