"""Huffman-walk of a baseline JPEG's entropy-coded data: every restart interval must hold exactly its MCUs.

This is the check libjpeg does while decoding and only reports as a warning ("Corrupt JPEG
data: premature end of data segment", "N extraneous bytes before marker", "bad Huffman
code"), returning a partly grey image all the same. Here the Huffman codes are read without
the inverse DCT: each 8x8 block's DC and AC symbols are decoded and their value bits skipped,
and each interval between restart markers must end within its last byte (padding), neither
short nor with bytes left over. Zeros or random bytes inside an interval break that.
"""
from __future__ import annotations

import numba
import numpy as np

_BAD_CODE, _OVERRUN, _SHORT, _EXTRA = 1, 2, 3, 4  # _walk's status codes


FAST = 9  # codes up to this many bits are found with one look-up (most of them); longer ones by length


def _lut(counts: np.ndarray, symbols: np.ndarray, ac: bool) -> np.ndarray:
    """One table as int64[TABLE] (canonical Huffman codes, ITU T.81 annex C).

    First the look-up of the first FAST bits: what the code there costs, its value bits
    included (bits 0-7), how far it moves the coefficient index (8-14), whether it ends the
    block (15), or 0 for a longer code or none. Then per code length the largest code (-1:
    none), the first code and the index of its symbol; then the symbols; then 1 for AC.
    """
    fast = np.zeros(1 << FAST, np.int64)
    maxcode, mincode, valptr = np.full(17, -1, np.int64), np.zeros(17, np.int64), np.zeros(17, np.int64)
    code, k = 0, 0
    for length in range(1, 17):
        n = int(counts[length - 1])
        if n and k + n <= symbols.size and code + n <= 1 << length:
            mincode[length], valptr[length], maxcode[length] = code, k, code + n - 1
            if length <= FAST:
                for j in range(n):
                    lo = (code + j) << (FAST - length)
                    fast[lo:lo + (1 << (FAST - length))] = _cost(length, int(symbols[k + j]), ac)
        code, k = (code + n) << 1, k + n
    syms = np.zeros(256, np.int64)
    syms[:min(256, symbols.size)] = symbols[:256]
    return np.concatenate([fast, maxcode, mincode, valptr, syms, [int(ac)]])


def _cost(length: int, sym: int, ac: bool) -> int:
    """A code's look-up entry: bits consumed | coefficient step << 8 | end of block << 15 (see _lut)."""
    if not ac:
        return (length + min(sym, 16)) | 1 << 8 if sym <= 11 else (1 << 16)  # 1 << 16: no such DC size
    size, run = sym & 15, sym >> 4
    if size == 0:
        return length | (16 << 8) if run == 15 else length | (1 << 15)
    return (length + size) | ((run + 1) << 8)


TABLE = (1 << FAST) + 3 * 17 + 256 + 1  # entries per table in the concatenated look-up array


_LUT_CACHE: dict[bytes, np.ndarray] = {}


def _luts(keys: tuple, tables: dict) -> np.ndarray:
    """The look-ahead tables of `keys`, one after another; cached, since every frame of a stream repeats them."""
    ident = repr(keys).encode() + b"".join(tables[k][0].tobytes() + tables[k][1].tobytes() for k in keys)
    lut = _LUT_CACHE.get(ident)
    if lut is None:
        if len(_LUT_CACHE) > 64:
            _LUT_CACHE.clear()
        lut = _LUT_CACHE[ident] = np.concatenate([_lut(*tables[k], ac=k[0] == 1) for k in keys])
    return lut


@numba.njit(cache=True, nogil=True)
def _unstuff(scan, nseg):
    """The scan's data bytes (0xFF 0x00 -> 0xFF, restart markers dropped) and where each segment ends."""
    data = np.empty(scan.size, np.uint8)
    ends = np.empty(nseg, np.int64)
    n, s, i = 0, 0, 0
    while i < scan.size:
        b = scan[i]
        if b == 0xFF and i + 1 < scan.size and scan[i + 1] != 0xFF:
            if scan[i + 1] == 0:
                data[n] = 0xFF
                n += 1
            elif s < nseg - 1:  # a restart marker (the only other marker the checks let through)
                ends[s] = n
                s += 1
            i += 2
            continue
        data[n] = b
        n += 1
        i += 1
    ends[s:] = n
    return data[:n], ends


@numba.njit(cache=True, nogil=True)
def _walk(data, seg_end, seg_mcus, lut, blk_dc, blk_ac):
    """(status, segment, detail) for the first bad segment; status 0 when every segment is exact.

    `data` is the scan without byte stuffing and restart markers, segment s ending at
    seg_end[s]; `lut` holds the tables one after another (TABLE entries each, see _lut);
    blk_dc/blk_ac are the offsets of each block's tables in an MCU.
    """
    nblk = blk_dc.size
    pos = 0
    sym_at = (1 << FAST) + 3 * 17
    for s in range(seg_end.size):
        end = seg_end[s]
        acc, nbits, real, used = 0, 0, 0, 0  # real: data bits read; used: bits consumed (may pass real)
        for m in range(seg_mcus[s]):
            for k in range(nblk):
                base = blk_dc[k]
                i = 0  # coefficient index; the DC symbol is coefficient 0
                while True:
                    if nbits < 32:  # refill to 32+ bits: a code (<= 16) and its value bits (<= 15)
                        if pos + 4 <= end:
                            acc = (acc << 32) | (np.int64(data[pos]) << 24) | (np.int64(data[pos + 1]) << 16) \
                                | (np.int64(data[pos + 2]) << 8) | np.int64(data[pos + 3])
                            pos += 4
                            nbits += 32
                            real += 32
                        else:
                            if used > real + 64:  # long past the segment's end: it is short
                                return 3, s, used - real
                            while nbits <= 48:  # past the segment's end come zero bits
                                b = 0
                                if pos < end:
                                    b = np.int64(data[pos])
                                    pos += 1
                                    real += 8
                                acc = (acc << 8) | b
                                nbits += 8
                    entry = lut[base + ((acc >> (nbits - FAST)) & ((1 << FAST) - 1))]
                    if entry == 0:  # a code longer than FAST bits: find its length, then its cost
                        length = FAST + 1
                        code = (acc >> (nbits - length)) & ((1 << length) - 1)
                        t = base + (1 << FAST)
                        while length <= 16 and code > lut[t + length]:
                            length += 1
                            code = (acc >> (nbits - length)) & ((1 << length) - 1)
                        if length > 16:
                            return 1, s, m
                        sym = lut[t + 3 * 17 + lut[t + 34 + length] + code - lut[t + 17 + length]]
                        if lut[base + sym_at + 256] == 0:  # DC
                            entry = (length + sym) | (1 << 8) if sym <= 11 else 1 << 16
                        elif sym & 15 == 0:
                            entry = length | (16 << 8) if sym >> 4 == 15 else length | (1 << 15)
                        else:
                            entry = (length + (sym & 15)) | (((sym >> 4) + 1) << 8)
                    if entry >> 16:
                        return 1, s, m
                    cost = entry & 0xFF
                    nbits -= cost
                    used += cost
                    acc &= (1 << nbits) - 1
                    if entry & (1 << 15):
                        break  # end of block
                    i += (entry >> 8) & 0x7F
                    if i >= 64:
                        if i > 64:
                            return 2, s, m
                        break
                    base = blk_ac[k]
        if used > real + 8 * (end - pos):
            return 3, s, used - real - 8 * (end - pos)
        if real + 8 * (end - pos) - used >= 8:
            return 4, s, (real + 8 * (end - pos) - used) // 8
        pos = end
    return 0, 0, 0


def mcu_count(frame: tuple[int, int, list], scan_header: np.ndarray) -> int:
    """MCUs in a scan: interleaved (several components) or one component's 8x8 blocks."""
    h, w, comps = frame
    if not comps or h == 0 or w == 0:
        return 0
    hmax, vmax = max(c[1] for c in comps) or 1, max(c[2] for c in comps) or 1
    if scan_header.size and int(scan_header[0]) == 1:
        cid = int(scan_header[1])
        ch, cv = next(((c[1], c[2]) for c in comps if c[0] == cid), (hmax, vmax))
        return -(-(w * ch) // (8 * hmax)) * -(-(h * cv) // (8 * vmax))
    return -(-w // (8 * hmax)) * -(-h // (8 * vmax))


def scan_damage(scan: np.ndarray, rst_at: np.ndarray, frame: tuple, sos: np.ndarray,
                tables: dict, interval: int) -> str | None:
    """Why the entropy-coded data of a baseline scan is damaged, or None (also when it cannot be checked)."""
    h, w, comps = frame
    ns = int(sos[0]) if sos.size else 0
    if ns == 0 or sos.size < 1 + 2 * ns:
        return "JPEG scan header is damaged"
    sampling = {c[0]: (c[1], c[2]) for c in comps}
    keys, dc, ac = [], [], []
    for k in range(ns):
        cid, sel = int(sos[1 + 2 * k]), int(sos[2 + 2 * k])
        ch, cv = sampling.get(cid, (1, 1)) if ns > 1 else (1, 1)
        for _ in range(ch * cv):
            for cls, tid, out in ((0, sel >> 4, dc), (1, sel & 15, ac)):
                if (cls, tid) not in tables:
                    return f"JPEG scan uses Huffman table {'DC' if cls == 0 else 'AC'} {tid}, which is not defined"
                if (cls, tid) not in keys:
                    keys.append((cls, tid))
                out.append(keys.index((cls, tid)))
    lut = _luts(tuple(keys), tables)
    total = mcu_count(frame, sos)
    per = interval if interval else total
    nseg = rst_at.size + 1
    mcus = np.minimum(per, total - per * np.arange(nseg)).astype(np.int64)
    if mcus.min() <= 0:
        return None  # restart markers disagree with the size: reported by the marker check
    data, ends = _unstuff(scan, nseg)
    status, seg, detail = _walk(data, ends, mcus, lut, np.array(dc, np.int64) * TABLE, np.array(ac, np.int64) * TABLE)
    if status == 0:
        return None
    where = f"restart interval {seg} of {nseg}"
    return {
        _BAD_CODE: f"JPEG scan data corrupt (no such Huffman code in {where}, MCU {detail})",
        _OVERRUN: f"JPEG scan data corrupt (more than 64 coefficients in a block in {where}, MCU {detail})",
        _SHORT: f"JPEG scan data corrupt ({where} is {detail} bits short of its MCUs: data is missing)",
        _EXTRA: f"JPEG scan data corrupt ({detail} extraneous bytes at the end of {where})",
    }[status]
