"""Test helpers: an independent Matroska block reader and multi-frame copies of the real recording.

The reader walks EBML elements directly (no PyAV), so tests can compare the reader's arrays with
the raw bytes of each block. `repeat_capture` builds an N-frame recording by repeating the real
file's one image cluster with advancing timecodes, so truncation and corruption can be tested at
frame k with frames before it.
"""
from __future__ import annotations

import zlib

from facesynth.depth.testdata_realdepth import realdata_root

REALDATA = realdata_root()
RECORDING = REALDATA / "azure_kinect_mkv" / "recording.mkv"
CALIBRATION = REALDATA / "azure_kinect_mkv" / "calibration.json"

SEGMENT, CLUSTER, TIMECODE, SIMPLEBLOCK, BLOCKGROUP, BLOCK = 0x18538067, 0x1F43B675, 0xE7, 0xA3, 0xA0, 0xA1
SEEKHEAD, SEEK, CUES = 0x114D9B74, 0x4DBB, 0x1C53BB6B
CRC32 = 0xBF


def vint(b: bytes, i: int, keep_marker: bool = False) -> tuple[int, int]:
    first, length, mask = b[i], 1, 0x80
    while not first & mask:
        mask >>= 1
        length += 1
    value = first if keep_marker else first & (mask - 1)
    for k in range(1, length):
        value = value << 8 | b[i + k]
    return value, length


def elements(b: bytes, start: int, end: int):
    """(id, offset, header length, size) of each element in [start, end)."""
    i = start
    while i < end:
        eid, n = vint(b, i, True)
        size, m = vint(b, i + n)
        yield eid, i, n + m, size
        i += n + m + size


def blocks(data: bytes) -> list[tuple[int, int, bytes]]:
    """(track number, timecode, payload) of every block, in file order (no lacing, as k4arecord writes)."""
    out = []
    _, seg, h, size = next(e for e in elements(data, 0, len(data)) if e[0] == SEGMENT)
    for eid, off, hh, sz in elements(data, seg + h, min(len(data), seg + h + size)):
        if eid != CLUSTER:
            continue
        base = 0
        for cid, coff, ch, csz in elements(data, off + hh, off + hh + sz):
            if cid == TIMECODE:
                base = int.from_bytes(data[coff + ch:coff + ch + csz], "big")
            inner = [(cid, coff, ch, csz)] if cid == SIMPLEBLOCK else (
                [e for e in elements(data, coff + ch, coff + ch + csz) if e[0] == BLOCK] if cid == BLOCKGROUP else [])
            for _bid, boff, bh, bsz in inner:
                track, n = vint(data, boff + bh)
                rel = int.from_bytes(data[boff + bh + n:boff + bh + n + 2], "big", signed=True)
                payload = data[boff + bh + n + 3:boff + bh + bsz]
                out.append((track, base + rel, payload))
    return out


def repeat_capture(n: int, step_us: int = 33333, crc: bool = True) -> tuple[bytes, list[int]]:
    """An n-frame recording made of the real one; also the byte offset where each frame's cluster starts.

    Each cluster's CRC-32 element is recomputed for its new timecode, as libmatroska would write
    it; crc=False turns it into a Void element (a file from a writer that stores no checksums).
    """
    b = bytearray(RECORDING.read_bytes())
    _, seg, h, size = next(e for e in elements(b, 0, len(b)) if e[0] == SEGMENT)
    body = list(elements(b, seg + h, seg + h + size))
    last = [e for e in body if e[0] == CLUSTER][-1]
    head = bytearray(b[:last[1]])
    sh = next(e for e in body if e[0] == SEEKHEAD)
    for eid, i, hh, s in elements(b, sh[1] + sh[2], sh[1] + sh[2] + sh[3]):
        if eid == SEEK and CUES.to_bytes(4, "big") in b[i:i + hh + s]:  # Cues are dropped: void the pointer
            total = hh + s
            head[i:i + total] = bytes([0xEC, 0x80 | (total - 2)]) + bytes(total - 2)
    cluster = bytes(b[last[1]:last[1] + last[2] + last[3]])
    tc = next(e for e in elements(cluster, last[2], len(cluster)) if e[0] == TIMECODE)
    lo, hi = tc[1] + tc[2], tc[1] + tc[2] + tc[3]
    base = int.from_bytes(cluster[lo:hi], "big")
    out, offsets = bytearray(head), []
    for k in range(n):
        c = bytearray(cluster)
        c[lo:hi] = (base + k * step_us).to_bytes(tc[3], "big")
        set_crc(c, 0, crc)
        offsets.append(len(out))
        out += c
    size_len = h - 4  # Segment id is 4 bytes; keep its size field's length
    total = len(out) - (seg + h)  # declared Segment size, so truncation is detectable
    out[seg + 4:seg + h] = ((1 << (7 * size_len)) | total).to_bytes(size_len, "big")
    return bytes(out), offsets


def block_offsets(data: bytes, cluster_offset: int) -> list[tuple[int, int, int]]:
    """(track, element offset, payload offset) of the SimpleBlocks in the cluster at `cluster_offset`."""
    _, off, hh, sz = next(elements(data, cluster_offset, len(data)))
    out = []
    for eid, coff, ch, csz in elements(data, off + hh, off + hh + sz):
        if eid == SIMPLEBLOCK:
            track, n = vint(data, coff + ch)
            out.append((track, coff, coff + ch + n + 3))
    return out


def set_crc(data: bytearray, cluster_offset: int, crc: bool = True) -> None:
    """Recompute (or void) the CRC-32 element that opens the cluster at `cluster_offset`, in place."""
    _, off, hh, sz = next(elements(data, cluster_offset, len(data)))
    cid, coff, ch, csz = next(elements(data, off + hh, off + hh + sz))
    assert cid in (CRC32, 0xEC) and csz == 4, "cluster does not open with a CRC-32 element"
    if crc:  # Matroska: CRC-32 (IEEE, as zlib) of the parent's other children, little-endian
        data[coff:coff + 2] = bytes([CRC32, 0x84])
        data[coff + ch:coff + ch + 4] = zlib.crc32(bytes(data[coff + ch + 4:off + hh + sz])).to_bytes(4, "little")
    else:
        data[coff:coff + 6] = bytes([0xEC, 0x84, 0, 0, 0, 0])


def _set_size(data: bytearray, element_offset: int, size: int) -> None:
    """Rewrite an element's size field in place, keeping its length (so no offset moves)."""
    _, n = vint(data, element_offset, True)
    _, m = vint(data, element_offset + n)
    data[element_offset + n:element_offset + n + m] = ((1 << (7 * m)) | size).to_bytes(m, "big")


def shorten_block(data: bytes, cluster_offset: int, block: int, nbytes: int) -> bytes:
    """Drop the last `nbytes` of the payload of the cluster's `block`-th SimpleBlock, keeping every
    size consistent (block, cluster, Segment) and the cluster's CRC-32 right: only the image's
    own size tells that it is short."""
    out = bytearray(data)
    _, el, _ = block_offsets(data, cluster_offset)[block]
    _, _, bh, bsize = next(elements(data, el, len(data)))
    end = el + bh + bsize
    del out[end - nbytes:end]
    _set_size(out, el, bsize - nbytes)
    _, _, ch, csize = next(elements(data, cluster_offset, len(data)))
    _set_size(out, cluster_offset, csize - nbytes)
    _, seg, _, ssize = next(e for e in elements(data, 0, len(data)) if e[0] == SEGMENT)
    _set_size(out, seg, ssize - nbytes)
    set_crc(out, cluster_offset)
    return bytes(out)


def set_cluster_size(data: bytes, cluster_offset: int, delta: int) -> bytes:
    """The file with the size field of the cluster at `cluster_offset` off by `delta` bytes."""
    out = bytearray(data)
    _, _, _, size = next(elements(data, cluster_offset, len(data)))
    _set_size(out, cluster_offset, size + delta)
    return bytes(out)
