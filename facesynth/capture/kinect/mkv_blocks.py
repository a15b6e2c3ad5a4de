"""The blocks of a Matroska file, read by walking its EBML elements, every size checked.

We walk the file ourselves instead of letting a demuxer do it, because demuxers skip damage
silently: FFmpeg resynchronises past a broken cluster and stops without a word at garbage
that runs to the end of the file. Here each top-level element and each cluster child must
start where the one before it ends, blocks must lie inside their cluster, and a cluster's
CRC-32 element (libmatroska, and so k4arecord, writes one per cluster) must match its bytes.
Where the structure breaks, the walker reports a `Broken` range and resumes at the next
cluster that parses, so one damaged stretch costs only the frames inside it.
"""
from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

EBML, SEGMENT, CLUSTER, INFO, TRACKS, TIMECODE_SCALE = 0x1A45DFA3, 0x18538067, 0x1F43B675, 0x1549A966, 0x1654AE6B, 0x2AD7B1
TRACK_ENTRY, TRACK_NUMBER, TRACK_NAME = 0xAE, 0xD7, 0x536E
TIMECODE, SIMPLEBLOCK, BLOCKGROUP, BLOCK, CRC32, VOID = 0xE7, 0xA3, 0xA0, 0xA1, 0xBF, 0xEC
TOP_LEVEL = {0x114D9B74, INFO, TRACKS, 0x1C53BB6B, 0x1941A469, 0x1254C367, 0x1043A770, CLUSTER, VOID, CRC32}
CLUSTER_CHILDREN = {TIMECODE, SIMPLEBLOCK, BLOCKGROUP, CRC32, VOID, 0xA7, 0xAB, 0x5854, 0xAF}
MAX_ELEMENT = 1 << 28  # a Kinect cluster is at most ~40 MB (4K BGRA colour); more is a broken size field
_CLUSTER_ID = CLUSTER.to_bytes(4, "big")


@dataclass
class Block:
    """One frame of one track; `suspect` says why its bytes cannot be trusted (None: they can)."""

    track: int
    ts_us: int
    payload: memoryview
    pos: int            # byte offset of the block element in the file
    suspect: str | None = None
    crc_ok: bool = False  # its cluster has a CRC-32 element and the bytes match it


@dataclass
class Broken:
    """Bytes [pos, end) could not be read as Matroska; `end` is where reading resumed (or EOF)."""

    pos: int
    end: int
    why: str
    truncated: bool = False
    at_end: bool = False  # nothing readable follows


@dataclass
class Layout:
    segment_data: int          # first byte of the Segment's children
    segment_end: int           # where the Segment ends (declared, else the file's end)
    declared_end: int | None   # None when the Segment size is unknown
    file_size: int
    timecode_scale_ns: int
    track_numbers: dict[str, int]  # track name (COLOR, DEPTH, IR, IMU) -> Matroska track number


def vint(b: bytes | memoryview, i: int, keep_marker: bool = False) -> tuple[int, int]:
    """An EBML variable-length number at b[i]: (value, length); ValueError if it is not one."""
    if i >= len(b):
        raise ValueError("data ends inside an element header")
    first = b[i]
    length, mask = 1, 0x80
    while length <= 8 and not first & mask:
        mask >>= 1
        length += 1
    if length > 8 or i + length > len(b):
        raise ValueError("bad EBML number")
    value = first if keep_marker else first & (mask - 1)
    for k in range(1, length):
        value = value << 8 | b[i + k]
    return value, length


def header(b: bytes | memoryview, i: int) -> tuple[int, int, int | None]:
    """(element id, header length, data size or None when the size is 'unknown')."""
    eid, n = vint(b, i, True)
    size, m = vint(b, i + n)
    return eid, n + m, (None if size == (1 << (7 * m)) - 1 else size)


def _children(b: bytes | memoryview, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    i = start
    while i < end:
        eid, h, size = header(b, i)
        if size is None or i + h + size > end:
            raise ValueError(f"element 0x{eid:X} at byte {i} runs past its parent")
        yield eid, i, h, size
        i += h + size


def _uint(b: bytes | memoryview) -> int:
    return int.from_bytes(b, "big")


class MkvFile:
    """A Matroska file opened for reading its blocks in order."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.layout = self._read_layout()

    def _pread(self, fd: int, pos: int, n: int) -> bytes:
        return os.pread(fd, max(0, n), pos)

    def _read_layout(self) -> Layout:
        size = self.path.stat().st_size
        fd = os.open(self.path, os.O_RDONLY)
        try:
            head = self._pread(fd, 0, 64)
            eid, h, esize = header(head, 0)
            if eid != EBML or esize is None:
                raise ValueError("not an EBML file")
            seg_at = h + esize
            sid, sh, ssize = header(self._pread(fd, seg_at, 16), 0)
            if sid != SEGMENT:
                raise ValueError("no Matroska Segment")
            data = seg_at + sh
            declared = None if ssize is None else data + ssize
            seg_end = declared if declared is not None else size
            scale, tracks = 1_000_000, {}
            i = data
            while i < min(seg_end, size):  # the metadata elements before the first cluster
                cid, ch, csize = header(self._pread(fd, i, 16), 0)
                if cid == CLUSTER or csize is None:
                    break
                if cid in (INFO, TRACKS) and csize < 1 << 20:
                    body = self._pread(fd, i + ch, csize)
                    if cid == INFO:
                        for e, o, hh, s in _children(body, 0, len(body)):
                            if e == TIMECODE_SCALE:
                                scale = _uint(body[o + hh:o + hh + s]) or scale
                    else:
                        tracks.update(_track_numbers(body))
                i += ch + csize
        finally:
            os.close(fd)
        return Layout(data, seg_end, declared, size, scale, tracks)

    def blocks(self, verify_crc: bool = True) -> Iterator[Block | Broken]:
        """Every block in file order, and a Broken item for each stretch that does not parse."""
        lay = self.layout
        end = min(lay.segment_end, lay.file_size)
        cut = lay.declared_end is not None and lay.declared_end > lay.file_size  # the file was cut short
        fd = os.open(self.path, os.O_RDONLY)
        tail = False  # a Broken item already covers the end of the file
        try:
            i = lay.segment_data
            while i < end:
                try:
                    eid, h, size = header(self._pread(fd, i, 16), 0)
                    if eid not in TOP_LEVEL:
                        raise ValueError(f"unknown element 0x{eid:X}")
                    if size is not None and size > MAX_ELEMENT:
                        raise ValueError(f"element 0x{eid:X} declares {size} bytes")
                except ValueError as exc:
                    nxt = self._resync(fd, i + 1, end)
                    tail = nxt >= end
                    yield Broken(i, nxt, f"unreadable data at byte {i} ({exc})", truncated=cut and tail, at_end=tail)
                    i = nxt
                    continue
                if eid != CLUSTER:
                    if size is None:  # only clusters may have an unknown size in a k4a file
                        nxt = self._resync(fd, i + 1, end)
                        tail = nxt >= end
                        yield Broken(i, nxt, f"element 0x{eid:X} at byte {i} has no size", truncated=cut and tail,
                                     at_end=tail)
                        i = nxt
                    elif i + h + size > end:
                        tail = True
                        yield Broken(i, end, f"element 0x{eid:X} at byte {i} runs past the end of the file",
                                     truncated=cut, at_end=True)
                        i = end
                    else:
                        i += h + size
                    continue
                cluster_end = end if size is None else i + h + size
                body = self._pread(fd, i + h, min(cluster_end, end) - (i + h))
                blocks, stop, why = self._parse_cluster(body, i, h, size is None)
                if why is None and cluster_end > end:  # its last children may be fine: its size is not
                    why = f"cluster at byte {i} declares {size} bytes, past the end of the data (byte {end})"
                if why is None:
                    crc = self._crc_damage(memoryview(body)[:stop], i) if verify_crc else None
                    has_crc = verify_crc and len(body) >= 6 and body[0] == CRC32
                    for b in blocks:
                        b.suspect, b.crc_ok = crc, has_crc and crc is None
                    yield from blocks
                    i = i + h + stop
                    continue
                for b in blocks:
                    b.suspect = why
                yield from blocks
                truncated = (cut or lay.declared_end is None) and cluster_end > lay.file_size or (size is None and cut)
                nxt = end if truncated else self._resync(fd, i + h + stop, end)
                tail = nxt >= end
                yield Broken(i + h + stop, nxt, why, truncated=truncated or (cut and tail), at_end=tail)
                i = nxt
            if cut and not tail:
                yield Broken(i, i, "the file ends between clusters", truncated=True, at_end=True)
        finally:
            os.close(fd)

    @staticmethod
    def _crc_damage(body: bytes, at: int) -> str | None:
        """Why the cluster's bytes fail its CRC-32 element (the cluster's first child), or None."""
        if len(body) < 6 or body[0] != CRC32 or body[1] != 0x84:
            return None  # a cluster without a checksum: nothing to verify
        if zlib.crc32(memoryview(body)[6:]) == int.from_bytes(body[2:6], "little"):
            return None
        return f"cluster at byte {at} fails its CRC-32 check: its bytes changed after recording"

    def _parse_cluster(self, body: bytes, at: int, h: int, unknown_size: bool) -> tuple[list[Block], int, str | None]:
        """Blocks of the cluster whose data is `body`; how many bytes it spans; why it is broken."""
        mv = memoryview(body)
        blocks: list[Block] = []
        base, i = None, 0
        scale_us = self.layout.timecode_scale_ns / 1000.0
        while i < len(body):
            where = at + h + i
            try:
                eid, ch, size = header(body, i)
            except ValueError as exc:
                return blocks, i, f"cluster at byte {at} is damaged at byte {where} ({exc})"
            if unknown_size and eid in TOP_LEVEL and eid not in (VOID, CRC32):
                return blocks, i, None  # an unknown-size cluster ends at the next top-level element
            if eid not in CLUSTER_CHILDREN:
                return blocks, i, (f"cluster at byte {at} is damaged at byte {where}: element 0x{eid:X} "
                                   "does not belong in a cluster (wrong cluster or block size?)")
            if size is None or i + ch + size > len(body):
                return blocks, i, (f"cluster at byte {at}: element at byte {where} runs past the cluster's "
                                   f"end (declares {size} bytes)")
            data = mv[i + ch:i + ch + size]
            if eid == TIMECODE:
                base = _uint(data)
            elif eid in (SIMPLEBLOCK, BLOCKGROUP):
                if base is None:
                    return blocks, i, f"cluster at byte {at} has a block before its timecode"
                try:
                    blocks.append(_block(data, eid, base, scale_us, where))
                except ValueError as exc:
                    return blocks, i, f"cluster at byte {at}: block at byte {where} is damaged ({exc})"
            i += ch + size
        return blocks, len(body), None

    def _resync(self, fd: int, start: int, end: int) -> int:
        """Offset of the next cluster at or after `start` whose header and first child parse, else `end`."""
        pos, step = start, 1 << 20
        while pos < end:
            chunk = self._pread(fd, pos, min(step + 3, end - pos))
            k = chunk.find(_CLUSTER_ID)
            while k >= 0:
                cand = pos + k
                try:
                    probe = self._pread(fd, cand, 32)
                    _, h, size = header(probe, 0)
                    child, _, _ = header(probe, h)
                    if child in (CRC32, TIMECODE) and (size is None or cand + h + size <= end):
                        return cand
                except ValueError:
                    pass
                k = chunk.find(_CLUSTER_ID, k + 1)
            pos += step
        return end


def _block(data: memoryview, eid: int, base: int, scale_us: float, where: int) -> Block:
    if eid == BLOCKGROUP:
        inner = [(o, hh, s) for e, o, hh, s in _children(data, 0, len(data)) if e == BLOCK]
        if len(inner) != 1:
            raise ValueError("block group without exactly one block")
        o, hh, s = inner[0]
        data = data[o + hh:o + hh + s]
    track, n = vint(data, 0)
    if len(data) < n + 3:
        raise ValueError("block header cut short")
    rel = int.from_bytes(data[n:n + 2], "big", signed=True)
    if data[n + 2] & 0x06:
        raise ValueError("laced block (k4arecord writes none)")
    return Block(track, int(round((base + rel) * scale_us)), data[n + 3:], where)


def _track_numbers(body: bytes) -> dict[str, int]:
    out = {}
    for e, o, hh, s in _children(body, 0, len(body)):
        if e != TRACK_ENTRY:
            continue
        number, name = None, None
        for c, co, ch, cs in _children(body, o + hh, o + hh + s):
            if c == TRACK_NUMBER:
                number = _uint(body[co + ch:co + ch + cs])
            elif c == TRACK_NAME:
                name = bytes(body[co + ch:co + ch + cs]).decode("utf-8", "replace").rstrip("\x00")
        if number is not None and name:
            out[name] = number
    return out
