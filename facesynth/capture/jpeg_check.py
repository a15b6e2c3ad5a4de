"""JPEG checks every capture reader shares: is this JPEG whole, before a decoder is trusted with it.

A damaged image must be found before decoding, because decoders do not say so: libjpeg
paints grey blocks and prints "Corrupt JPEG data" to stderr while returning an image. The
checks here read only the JPEG's structure (markers, segment lengths, restart markers), so
they cost a small fraction of the decode; the Huffman walk is in jpeg_scan.py.
"""
from __future__ import annotations

import numpy as np

from facesynth.capture.jpeg_scan import mcu_count, scan_damage


class ImageDamage(ValueError):
    """An image payload is damaged; `kind` is 'jpeg' or 'size', or what else a reader found ('zip',
    'lzfse', 'missing', ...): counted by kind in the run summary."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


def jpeg_damage(buf: bytes | memoryview | np.ndarray, huffman: bool = True,
                size: tuple[int, int] | None = None) -> str | None:
    """Why a baseline JPEG is damaged (missing SOI/EOI, a bad segment, stray or missing markers), or None.

    Inside entropy-coded data 0xFF may only be followed by 0x00 (stuffing) or RST0-7. With a
    restart interval (the Kinect's encoder writes one) the RST markers count 0..7 and repeat,
    and there are exactly ceil(MCUs / interval) - 1 of them: zeros or a cut inside the scan
    remove some, which libjpeg only reports as a warning. The Huffman data of each interval
    is then decoded (jpeg_scan.py, unless huffman=False) to find damage that leaves every
    marker in place; that walk costs about a third of a libjpeg decode. `size` (width, height)
    is what the track declares: another frame size is damage, found before any walk.
    """
    b = np.frombuffer(buf, np.uint8) if not isinstance(buf, np.ndarray) else buf
    if b.size < 4 or b[0] != 0xFF or b[1] != 0xD8:
        return "no JPEG start marker"
    end = b.size
    while end > 2 and b[end - 1] == 0:  # allow zero padding after EOI
        end -= 1
    if b[end - 2] != 0xFF or b[end - 1] != 0xD9:
        return "JPEG data is cut short (no end marker)"
    i, interval, frame, tables = 2, 0, None, {}
    while i + 4 <= end:  # walk the header segments up to the first scan
        if b[i] != 0xFF:
            return f"bad JPEG segment at byte {i}"
        marker = int(b[i + 1])
        if marker == 0xFF:
            i += 1
            continue
        seg = int(b[i + 2]) << 8 | int(b[i + 3])
        if seg < 2 or i + 2 + seg > end:
            return f"JPEG segment 0xFF{marker:02X} at byte {i} runs past the data"
        body = b[i + 4:i + 2 + seg]
        if marker in (0xC2, 0xC6, 0xCA, 0xCE):
            return None  # progressive: several scans, not checked
        if marker in (0xC0, 0xC1) and body.size >= 6:
            frame = _frame_header(body)
        elif marker == 0xC4:
            tables.update(_huffman_tables(body))
        elif marker == 0xDD and body.size >= 2:
            interval = int(body[0]) << 8 | int(body[1])
        if marker == 0xDA:
            scan = b[i + 2 + seg:end - 2]
            ff = np.flatnonzero(scan[:-1] == 0xFF)
            nxt = scan[ff + 1]
            bad = (nxt != 0x00) & ((nxt < 0xD0) | (nxt > 0xD7)) & (nxt != 0xFF)
            if scan.size and scan[-1] == 0xFF:
                return "JPEG scan ends inside a marker"
            if bad.any():
                return f"JPEG scan data corrupt (stray marker 0xFF{int(nxt[bad][0]):02X})"
            if frame is None:
                return "JPEG has no frame header"
            if size is not None and (frame[1], frame[0]) != tuple(size):
                return f"JPEG frame header says {frame[1]}x{frame[0]}, the track says {size[0]}x{size[1]}"
            rst_at = ff[(nxt >= 0xD0) & (nxt <= 0xD7)]
            why = _restart_damage(scan[rst_at + 1], frame, body, interval)
            if why is None and huffman:
                why = scan_damage(scan, rst_at, frame, body, tables, interval)
            return why
        i += 2 + seg
    return "JPEG has no scan data"


def _frame_header(body: np.ndarray) -> tuple[int, int, list[tuple[int, int, int]]]:
    """(height, width, [(component id, h, v)]) from a SOF0/SOF1 segment."""
    h, w, n = int(body[1]) << 8 | int(body[2]), int(body[3]) << 8 | int(body[4]), int(body[5])
    comps = [(int(body[6 + 3 * k]), int(body[7 + 3 * k]) >> 4, int(body[7 + 3 * k]) & 15)
             for k in range(n) if 8 + 3 * k < body.size]
    return h, w, comps


def _huffman_tables(body: np.ndarray) -> dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]:
    """{(class 0=DC/1=AC, id): (counts per code length 1..16, symbols)} from a DHT segment."""
    out, i = {}, 0
    while i + 17 <= body.size:
        tc, th = int(body[i]) >> 4, int(body[i]) & 15
        counts = body[i + 1:i + 17].astype(np.int64)
        n = int(counts.sum())
        out[(tc, th)] = (counts, body[i + 17:i + 17 + n].astype(np.int64))
        i += 17 + n
    return out


def _restart_damage(numbers: np.ndarray, frame, scan_header: np.ndarray, interval: int) -> str | None:
    """Why the restart markers of a scan are wrong (count or order), or None."""
    if interval == 0:
        return "JPEG scan data corrupt (restart markers without a restart interval)" if numbers.size else None
    expected = -(-mcu_count(frame, scan_header) // interval) - 1
    seq = (numbers.astype(np.int64) - 0xD0)
    wrong = np.flatnonzero(seq != np.arange(seq.size) % 8)
    if wrong.size:
        k = int(wrong[0])
        return (f"JPEG scan data corrupt (restart marker {k} is RST{int(seq[k])}, expected RST{k % 8}: "
                f"data is missing or overwritten there)")
    if seq.size != expected:
        return f"JPEG scan data corrupt ({seq.size} restart markers, {max(expected, 0)} expected)"
    return None


_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # every frame header (not DHT, JPG, DAC)


def jpeg_frame_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) the first frame header in `head` (a JPEG's first bytes) declares, or None
    when none is there: read from the markers alone, so a size can be refused before decoding."""
    b = memoryview(head)
    if len(b) < 4 or b[0] != 0xFF or b[1] != 0xD8:
        return None
    i = 2
    while i + 4 <= len(b):
        if b[i] != 0xFF:
            return None
        marker = b[i + 1]
        if marker == 0xFF or 0xD0 <= marker <= 0xD7 or marker == 0x01:  # fill byte, markers without length
            i += 1 if marker == 0xFF else 2
            continue
        seg = b[i + 2] << 8 | b[i + 3]
        if marker in _SOF_MARKERS and seg >= 7 and i + 9 <= len(b):
            return b[i + 7] << 8 | b[i + 8], b[i + 5] << 8 | b[i + 6]
        if marker == 0xDA or seg < 2:  # scan data before any frame header, or a broken length
            return None
        i += 2 + seg
    return None
