"""Small graphs and store damage helpers for the store tests (a plain module: conftest names clash)."""
from __future__ import annotations

import os
import struct
import textwrap
from pathlib import Path


def bench_graph(tmp_path: Path, store: Path | str | None = None, frames: int = 16, chunk: int = 4,
                max_restarts: int = 3, blur: str = "", side: int = 8) -> str:
    """bench.frames -> bench.passthrough (blur): groups bench/ and blur/ (no ok flags)."""
    store = store or tmp_path / "store.zarr"
    text = f"""\
    version: 1
    name: storetest
    store:
      path: {store}
      chunk_frames: {chunk}
    defaults: {{queue: 4, policy: block, max_restarts: {max_restarts}}}
    nodes:
      - id: src
        kind: bench.frames
        params: {{frames: {frames}, height: {side}, width: {side}}}
      - id: blur
        kind: bench.passthrough
        params: {{{blur}}}
        inputs: {{frames: src/frames}}
    """
    p = tmp_path / "bench.yaml"
    p.write_text(textwrap.dedent(text))
    return str(p)


def pipeline_graph(tmp_path: Path, store: Path) -> str:
    """capture.synthetic -> landmarks (true ones) -> crop -> fill on 12 tiny frames, chunks of 4:
    every group has ok flags, like the real capture_to_model job."""
    text = f"""\
    version: 1
    name: tiny_pipeline
    store:
      path: {store}
      chunk_frames: 4
    nodes:
      - id: camera
        kind: capture.synthetic
        params: {{frames: {{train: 10, eval: 2}}, width: 96, height: 72, seed: 3}}
      - id: landmarks
        kind: face.landmarks
        params: {{use_true_landmarks: true}}
        inputs: {{rgbd: camera/rgbd}}
      - id: crop
        kind: face.crop
        params: {{size: 256}}
        inputs: {{landmarks: landmarks/landmarks}}
      - id: fill
        kind: depth.fill
        inputs: {{face: crop/face}}
    """
    p = tmp_path / "pipeline.yaml"
    p.write_text(textwrap.dedent(text))
    return str(p)


def chunk_path(store: Path, array: str, index: int, ndim: int) -> Path:
    """Where Zarr v3's default chunk key encoding puts chunk `index` (frame axis) of `array`,
    written out by hand from the spec ("c/" + indices joined by "/") to stay independent of facesynth."""
    return Path(store) / array / "c" / "/".join([str(index)] + ["0"] * (ndim - 1))


def zstd_bomb(size: int, declare_size: bool = True) -> bytes:
    """A zstd frame that decompresses to `size` zero bytes, written by hand from RFC 8878: a frame
    header (declaring `size`, or no size and a 128 KiB window) and RLE blocks of 128 KiB, 4 bytes
    each; 1 GiB in 32 KiB. Independent of facesynth's header parser."""
    out = bytearray(b"\x28\xb5\x2f\xfd")  # magic 0xFD2FB528
    if declare_size:
        out += bytes([0b11100000]) + struct.pack("<Q", size)  # 8-byte content size, single segment
    else:
        out += bytes([0b00000000, (17 - 10) << 3])  # no content size; window 2^17
    left = size
    while left > 0:
        block = min(128 << 10, left)
        left -= block
        header = (1 if left == 0 else 0) | (1 << 1) | (block << 3)  # last?, RLE, regenerated size
        out += struct.pack("<I", header)[:3] + b"\x00"
    return bytes(out)


def replace_with(path: Path, kind: str) -> None:
    """Put a hostile thing where a store file was: a link to /dev/zero, a FIFO, or a 20 GB sparse
    file (nothing on disk)."""
    path = Path(path)
    if path.exists() or path.is_symlink():
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "dev_zero":
        path.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "sparse":
        with open(path, "wb") as f:
            f.truncate(20 << 30)
    else:
        raise ValueError(kind)
