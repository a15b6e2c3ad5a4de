"""Small graphs and store damage helpers for the store tests (a plain module: conftest names clash)."""
from __future__ import annotations

import textwrap
from pathlib import Path


def bench_graph(tmp_path: Path, store: Path | str | None = None, frames: int = 16, chunk: int = 4,
                max_restarts: int = 3, blur: str = "") -> str:
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
        params: {{frames: {frames}, height: 8, width: 8}}
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
