"""What facesynth writes in a store's Zarr metadata, and the limits a store from elsewhere is held to.

A store is something a user may have downloaded. Its `zarr.json` files say how large every chunk
is, so they are checked before Zarr is trusted with them: the file itself (regular, within a size
limit, input_files.py), and what it declares (shape, data type, chunk shape, chunk keys, codecs),
against what `FrameStore` writes: frame axis first, chunks of the root's `chunk_frames` frames
over whole frames, `bytes` + `zstd` codecs. A chunk then decodes to a size known in advance, which
the zstd codec checks against the chunk's own header before decompressing (zstd_frames.py).
Every refusal is a StoreDamaged naming the file and the limit (docs/bad_input.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from math import prod
from pathlib import Path
from typing import Any

from facesynth.errors import StoreDamaged
from facesynth.input_files import GB, MB, InputFileError, parse_json, read_bytes

META = "zarr.json"

MAX_ROOT_METADATA_BYTES = 16 * MB  # the root holds the dataset attributes (a Kinect calibration is ~10 KB)
MAX_NODE_METADATA_BYTES = 1 * MB  # a group's or an array's zarr.json (~600 bytes as written)
MAX_FRAMES = 1_000_000  # frames an array may declare (9 hours at 30 fps)
MAX_CHUNK_FRAMES = 4096  # also the graph's store.chunk_frames range (graph/spec.py)
MAX_FRAME_AXES = 4  # axes after the frame axis (N,H,W,3 has 3)
MAX_FRAME_AXIS = 16384  # the length of each of them (pixels, landmarks)
MAX_CHUNK_BYTES = 1 * GB  # one chunk, decompressed: what one read may allocate

#: data types facesynth writes (numeric, fixed size), with their item size in bytes
DATA_TYPES = {"bool": 1, "int8": 1, "uint8": 1, "int16": 2, "uint16": 2, "int32": 4, "uint32": 4,
              "int64": 8, "uint64": 8, "float16": 2, "float32": 4, "float64": 8}


@dataclass(frozen=True)
class ArrayLayout:
    """What an array's checked metadata promises: its shape and the bytes of one decoded chunk."""

    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    itemsize: int

    @property
    def chunk_bytes(self) -> int:
        return prod(self.chunks) * self.itemsize


def _count(n: int, word: str) -> str:
    return f"{n:,} {word}"


def zstd_bound(n: int) -> int:
    """The most bytes zstd's compressor writes for `n` input bytes (ZSTD_COMPRESSBOUND), plus headroom."""
    return n + (n >> 8) + ((128 * 1024 - n) >> 11 if n < 128 * 1024 else 0) + 64


def chunk_file_limit(layout: ArrayLayout | None) -> int:
    """The largest chunk file an array may hold: its decoded chunk, compressed at worst."""
    return zstd_bound(layout.chunk_bytes if layout else MAX_CHUNK_BYTES)


def refused(file: str | Path, name: str, problem: str) -> StoreDamaged:
    """The error for metadata that is not facesynth's: names the file, what is wrong and the limit."""
    store = Path(file).parents[len(name.split("/")) if name else 0]
    return StoreDamaged(f"{file}: {problem}; refused before reading any of it (`facesynth store check {store}` "
                        "lists every such problem)", array=name)


def _int_list(value: Any) -> list[int] | None:
    if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return value
    return None


def check_group_metadata(meta: Any, file: str | Path, name: str = "") -> int | None:
    """A group's (or the root's) zarr.json as facesynth writes it; the root's `chunk_frames`, if any."""
    if not isinstance(meta, dict) or meta.get("zarr_format") != 3 or meta.get("node_type") != "group":
        raise refused(file, name, "not a Zarr v3 group's metadata")
    attrs = meta.get("attributes", {})
    if not isinstance(attrs, dict):
        raise refused(file, name, "its attributes are not a JSON object")
    if meta.get("consolidated_metadata") is not None:  # other arrays' metadata, which would go unchecked
        raise refused(file, name, "it holds consolidated metadata, which facesynth never writes")
    cf = attrs.get("chunk_frames")
    if cf is None or name:
        return None
    if not isinstance(cf, int) or isinstance(cf, bool) or not 1 <= cf <= MAX_CHUNK_FRAMES:
        raise refused(file, name, f"the root attribute chunk_frames is {cf!r}, not a whole number "
                                  f"from 1 to {MAX_CHUNK_FRAMES}")
    return cf


def _check_codecs(codecs: Any) -> str | None:
    """Why `codecs` is not facesynth's [bytes, zstd] (the only chain whose decoded size is checked), or None."""
    if not isinstance(codecs, list) or len(codecs) != 2 or not all(isinstance(c, dict) for c in codecs):
        return f"its codecs are {_short(codecs)}, not facesynth's [bytes, zstd]"
    first, second = codecs
    bytes_conf = first.get("configuration", {})
    if (first.get("name") != "bytes" or not isinstance(bytes_conf, dict) or set(bytes_conf) - {"endian"}
            or bytes_conf.get("endian", "little") not in ("little", "big") or set(first) - {"name", "configuration"}):
        return f"its first codec is {_short(first)}, not facesynth's bytes codec"
    conf = second.get("configuration")
    if (second.get("name") != "zstd" or not isinstance(conf, dict) or set(conf) - {"level", "checksum"}
            or set(second) - {"name", "configuration"}):
        return f"its compressor is {_short(second)}, not facesynth's zstd"
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def check_array_metadata(meta: Any, file: str | Path, name: str, chunk_frames: int | None) -> ArrayLayout:
    """An array's zarr.json, checked against what FrameStore writes and the limits above.

    `chunk_frames` is the root's attribute (None for a store being created): the frame axis is
    chunked by it and every other axis is whole, so a chunk key is `c/<chunk>/0/0...`."""
    if not isinstance(meta, dict) or meta.get("zarr_format") != 3 or meta.get("node_type") != "array":
        raise refused(file, name, "not a Zarr v3 array's metadata")
    shape = _int_list(meta.get("shape"))
    if shape is None or not 1 <= len(shape) <= 1 + MAX_FRAME_AXES or min(shape) < 0:
        raise refused(file, name, f"its shape {_short(meta.get('shape'))} is not 1 to {1 + MAX_FRAME_AXES} "
                                  "whole numbers, frames first")
    if shape[0] > MAX_FRAMES:
        raise refused(file, name, f"it declares {_count(shape[0], 'frames')}, more than the limit of "
                                  f"{_count(MAX_FRAMES, 'frames')}")
    if any(not 1 <= n <= MAX_FRAME_AXIS for n in shape[1:]):
        raise refused(file, name, f"its frames are {tuple(shape[1:])}: each axis must hold 1 to "
                                  f"{MAX_FRAME_AXIS:,}")
    dtype = meta.get("data_type")
    if not isinstance(dtype, str) or dtype not in DATA_TYPES:
        raise refused(file, name, f"its data type {_short(dtype)} is not one facesynth writes "
                                  f"({', '.join(DATA_TYPES)})")
    grid = meta.get("chunk_grid")
    regular = isinstance(grid, dict) and grid.get("name") == "regular" and isinstance(grid.get("configuration"), dict)
    chunks = _int_list(grid["configuration"].get("chunk_shape")) if regular else None
    if chunks is None or len(chunks) != len(shape):
        raise refused(file, name, f"its chunk grid {_short(grid)} is not a regular grid of {len(shape)} axes")
    want = chunk_frames if chunk_frames is not None else chunks[0]
    if chunks[1:] != shape[1:] or chunks[0] != want or not 1 <= want <= MAX_CHUNK_FRAMES:
        frames = chunk_frames if chunk_frames is not None else f"1 to {MAX_CHUNK_FRAMES}"
        raise refused(file, name, f"its chunks are {tuple(chunks)}; facesynth writes chunks of the store's "
                                  f"chunk_frames ({frames}) whole frames, i.e. {(want, *shape[1:])}")
    layout = ArrayLayout(tuple(shape), tuple(chunks), DATA_TYPES[dtype])
    if layout.chunk_bytes > MAX_CHUNK_BYTES:
        raise refused(file, name, f"one chunk would hold {layout.chunk_bytes / GB:.1f} GB decompressed, more than "
                                  f"the limit of {MAX_CHUNK_BYTES / GB:.1f} GB")
    keys = meta.get("chunk_key_encoding")
    if keys != {"name": "default", "configuration": {"separator": "/"}}:
        raise refused(file, name, f"its chunk key encoding {_short(keys)} is not facesynth's (default, '/')")
    problem = _check_codecs(meta.get("codecs"))
    if problem:
        raise refused(file, name, problem)
    if meta.get("storage_transformers") not in (None, []):
        raise refused(file, name, "it declares storage transformers, which facesynth never writes")
    return layout


def read_node_metadata(store: Path, name: str = "") -> dict:
    """The zarr.json of node `name` ('' for the root) as a dict: regular, size- and nesting-limited.
    FileNotFoundError when absent; InputFileError naming the file and the limit otherwise."""
    return read_node(store, name)[1]


def read_node(store: Path, name: str = "") -> tuple[bytes, dict]:
    """The bytes of node `name`'s zarr.json and what they parse to (see read_node_metadata)."""
    file = store / name / META if name else store / META
    limit = MAX_NODE_METADATA_BYTES if name else MAX_ROOT_METADATA_BYTES
    data = read_bytes(file, limit, "Zarr metadata (zarr.json)")
    meta = parse_json(data, file, what="Zarr metadata (zarr.json)")
    if not isinstance(meta, dict):
        raise InputFileError(file, "the Zarr metadata (zarr.json) is not a JSON object")
    return data, meta
