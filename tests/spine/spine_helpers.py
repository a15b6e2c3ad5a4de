"""Graph files and expected results shared by the spine tests (a plain module: conftest names clash)."""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from facesynth.nodes.bench import bench_frames, bench_work


def passthrough_graph(tmp_path: Path, frames: int = 48, chunk: int = 8, queue: int = 4, blur: str = "",
                      replicas: int = 1, max_restarts: int = 3, src: str = "") -> str:
    """A source -> blur -> blur2 graph file in tmp_path; `blur` and `src` add params to the first
    blur and to the source."""
    text = f"""\
    version: 1
    name: pt
    store:
      path: {tmp_path / 'store.zarr'}
      chunk_frames: {chunk}
    defaults: {{queue: {queue}, policy: block, max_restarts: {max_restarts}}}
    nodes:
      - id: src
        kind: bench.frames
        params: {{frames: {frames}, height: 16, width: 16{', ' + src if src else ''}}}
      - id: blur
        kind: bench.passthrough
        replicas: {replicas}
        params: {{{blur}}}
        inputs: {{frames: src/frames}}
      - id: blur2
        kind: bench.passthrough
        inputs: {{frames: blur/frames}}
    """
    p = tmp_path / "pt.yaml"
    p.write_text(textwrap.dedent(text))
    return str(p)


def expected_blur2(frames: int) -> np.ndarray:
    return bench_work(bench_work(bench_frames(0, frames, 16, 16, 0)))
