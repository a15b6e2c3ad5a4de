"""facesynth.store.zstd_frames: the decompressed size a zstd frame header declares (RFC 8878 3.1.1),
against what numcodecs really wrote, and headers written by hand in every layout."""
import struct

import numcodecs
import numpy as np
import pytest

from facesynth.store.zstd_frames import ChunkSizeError, check_declared_size, frame_content_size

MAGIC = b"\x28\xb5\x2f\xfd"


@pytest.mark.parametrize("n", [1, 255, 256, 257, 65_791, 65_792, 1 << 20, 3_000_001])
def test_the_size_numcodecs_declares_is_the_length_it_compressed(n):
    """The content-size field takes 1, 2 (+256), 4 or 8 bytes depending on n: the boundaries included."""
    data = np.random.default_rng(n).integers(0, 4, n, dtype=np.uint8).tobytes()
    for level in (1, 9):
        frame = numcodecs.Zstd(level=level).encode(data)
        assert frame_content_size(frame) == n
        check_declared_size(frame, n)
        with pytest.raises(ChunkSizeError, match=f"declares {n:,} bytes decompressed, but a chunk of this array "
                                                 f"holds {n + 1:,} bytes"):
            check_declared_size(frame, n + 1)


def test_hand_written_headers():
    # single segment, 1-byte size: 0x20 = FCS flag 0, single segment
    assert frame_content_size(MAGIC + b"\x20\x05") == 5
    # window descriptor (not single segment), 1-byte dictionary id, 2-byte size (+256): 0x41
    assert frame_content_size(MAGIC + b"\x41" + b"\x58" + b"\x07" + struct.pack("<H", 1000)) == 1256
    # 4-byte dictionary id (flag 3) and 4-byte size (flag 2), single segment: 0xA3
    assert frame_content_size(MAGIC + b"\xa3" + b"\x01\x02\x03\x04" + struct.pack("<I", 123_456_789)) == 123_456_789
    # 8-byte size: 0xE0
    assert frame_content_size(MAGIC + b"\xe0" + struct.pack("<Q", 1 << 40)) == 1 << 40
    # no size: not single segment, FCS flag 0
    assert frame_content_size(MAGIC + b"\x00\x58") is None
    with pytest.raises(ChunkSizeError, match="does not declare its decompressed size"):
        check_declared_size(MAGIC + b"\x00\x58", 10)


@pytest.mark.parametrize("data, words", [(b"", "not a zstd frame"), (b"\x28\xb5\x2f\xfe\x20\x05", "not a zstd frame"),
                                         (b"\x50\x2a\x4d\x18\x00\x00\x00\x00", "not a zstd frame"),  # skippable
                                         (MAGIC + b"\x28\x05", "reserved bit"),
                                         (MAGIC + b"\xe0\x01\x02", "cut short")])
def test_what_is_not_a_zstd_frame_header_is_refused(data, words):
    with pytest.raises(ChunkSizeError, match=words):
        frame_content_size(data)
