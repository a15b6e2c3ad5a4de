"""LZFSE decoding that never produces more than the bytes a frame should hold (Record3D depth/confidence).

The `lzfse` package (PyPI; bindings of Apple's reference implementation) decodes. Its
`decompress()` sizes the output from the first block's header and doubles the buffer until the
stream fits, so a crafted stream of a few KB could make it allocate gigabytes: an .r3d is a file
someone sent. The same package's library also exports the reference `lzfse_decode_buffer(dst,
dst_size, src, src_size, scratch)`, which never writes past `dst_size`; it is called here through
ctypes with room for the expected bytes + 1, so a stream that decodes to more fills the spare
byte and is refused, holding at most expected + 1 bytes.

Where that symbol is not exported (a build that hides its C symbols, as Windows' .pyd usually
does), the stream is checked before `decompress()` is trusted with it: an LZFSE block magic, the
first block's declared size (what the binding allocates first) at most the expected size, and a
compressed size no larger than the raw data plus block headers. The length is checked after. On
that path a stream crafted to decode to more than its headers declare is only refused once
decoded (the documented residual risk).
"""
from __future__ import annotations

import ctypes
import struct
from functools import lru_cache

from facesynth.errors import MissingDependencyError

_MAGICS = (b"bvx-", b"bvx1", b"bvx2", b"bvxn", b"bvx$")  # raw, compressed v1/v2, LZVN, end of stream
OVERHEAD = 4096  # bytes of block headers an LZFSE stream may add to incompressible data (12 for one raw block)


class LzfseDamage(ValueError):
    """The stream is not LZFSE, does not decode, or decodes to more than expected."""


def _lzfse():
    try:
        import lzfse
    except ImportError as exc:
        raise MissingDependencyError(f"reading Record3D depth needs the lzfse package ({exc}): pip install lzfse "
                                     "(a facesynth dependency: reinstall facesynth)") from None
    return lzfse


@lru_cache(maxsize=1)
def _bounded_decoder():
    """The reference lzfse_decode_buffer from the lzfse package's own library, or None if it is hidden."""
    lib_path = _lzfse().__file__
    try:
        fn = ctypes.CDLL(lib_path).lzfse_decode_buffer
    except (OSError, AttributeError):
        return None
    fn.restype = ctypes.c_size_t
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_void_p]
    return fn


def decode(data: bytes, max_bytes: int) -> bytes:
    """The decoded stream, at most `max_bytes` long (LzfseDamage if it is not LZFSE, does not decode,
    or would be longer). A shorter result is returned as is: the caller knows what length it needs."""
    if len(data) < 8 or data[:4] not in _MAGICS:
        raise LzfseDamage("not an LZFSE stream (no LZFSE block magic at the start)")
    fn = _bounded_decoder()
    if fn is None:
        return _decode_checked(data, max_bytes)
    out = ctypes.create_string_buffer(max_bytes + 1)
    n = fn(ctypes.addressof(out), max_bytes + 1, data, len(data), None)
    if n == 0:
        raise LzfseDamage("the LZFSE stream does not decode (damaged or cut short)")
    if n > max_bytes:
        raise LzfseDamage(f"the LZFSE stream decodes to more than the {max_bytes} bytes expected")
    return out.raw[:n]


def _decode_checked(data: bytes, max_bytes: int) -> bytes:
    """The fallback: the binding's decompress() after checking what it will allocate first (module doc)."""
    declared = struct.unpack_from("<I", data, 4)[0] if data[:4] != b"bvx$" else 0
    if declared > max_bytes:
        raise LzfseDamage(f"the LZFSE stream declares a {declared}-byte block, more than the {max_bytes} expected")
    if len(data) > max_bytes + OVERHEAD:
        raise LzfseDamage(f"the LZFSE stream is {len(data)} bytes, more than {max_bytes} bytes of data could need")
    lzfse = _lzfse()
    try:
        out = lzfse.decompress(data)
    except lzfse.error:
        raise LzfseDamage("the LZFSE stream does not decode (damaged or cut short)") from None
    if len(out) > max_bytes:
        raise LzfseDamage(f"the LZFSE stream decodes to {len(out)} bytes, more than the {max_bytes} expected")
    return out
