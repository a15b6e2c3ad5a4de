"""Runtime overhead: a synthetic pass-through graph on Ray vs the same work in a plain loop.

Both do exactly the same work per chunk (generate frames, blur, write to a Zarr frame store);
the graph runs it as two Ray actors (source -> pass-through) with chunk references on the
edge. Prints JSON: frames/s of each (median of repeats, same run) and their ratio.

On all cores the graph also runs its two nodes in parallel, which the loop cannot; `--cores 1`
pins this process, and the Ray processes it starts, to one core, so the ratio there is the
runtime's own cost (calls, routing, progress log) with no parallel gain to hide it.

    .venv/bin/python benchmarks/runtime.py [--frames 4096] [--size 128] [--chunk 8] [--repeats 3] [--cores 1]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

from facesynth.nodes.bench import bench_frames, bench_work
from facesynth.runtime.api import run_graph
from facesynth.store.frame_store import FrameStore


def plain_loop(path: Path, frames: int, size: int, chunk: int, passes: int) -> float:
    """The same work as the graph, one process, no runtime: returns seconds."""
    t0 = time.perf_counter()
    store = FrameStore.create(path, chunk_frames=chunk)
    store.ensure_array("bench/frames", frames, (size, size), np.uint8)
    store.ensure_array("blur/frames", frames, (size, size), np.uint8)
    for start in range(0, frames, chunk):
        stop = min(start + chunk, frames)
        store.write("bench/frames", start, bench_frames(start, stop, size, size, 0))
        src = store.read("bench/frames", start, stop)
        store.write("blur/frames", start, bench_work(src, passes))
    return time.perf_counter() - t0


def steady_fps(samples: list[tuple[float, int]], frames: int, chunk: int) -> float:
    """Frames/s once the pipeline runs: from the first stats sample where the last node has
    finished a chunk to the end (leaves out starting the actors, which a long run amortises)."""
    started = [(t, n) for t, n in samples if n > 0]
    if len(started) < 2:
        return float("nan")
    (t1, n1), (t2, n2) = started[0], started[-1]
    return (min(n2 * chunk, frames) - n1 * chunk) / (t2 - t1) if t2 > t1 else float("nan")


def graph_file(tmp: Path, frames: int, size: int, chunk: int, passes: int) -> Path:
    text = f"""\
    version: 1
    name: runtime_bench
    store:
      path: {tmp / 'graph.zarr'}
      chunk_frames: {chunk}
    nodes:
      - id: src
        kind: bench.frames
        params: {{frames: {frames}, height: {size}, width: {size}}}
      - id: blur
        kind: bench.passthrough
        params: {{passes: {passes}}}
        inputs: {{frames: src/frames}}
    """
    p = tmp / "bench.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=4096)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--chunk", type=int, default=8)
    ap.add_argument("--passes", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--backend", choices=["ray", "local"], default="ray")
    ap.add_argument("--cores", type=int, default=0, help="pin the loop and Ray to this many cores (0 = all)")
    a = ap.parse_args()
    if a.cores:  # before Ray starts: its processes inherit the affinity
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:a.cores])
    import ray

    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_worker_niceness", "0")  # as RayBackend does for embedded Ray
    if a.backend == "ray":
        ray.init(include_dashboard=False, namespace="facesynth", _node_ip_address="127.0.0.1",
                 configure_logging=False, log_to_driver=False)
    loop_s, graph_s, steady = [], [], []
    tmp = Path(tempfile.mkdtemp(prefix="fs_runtime_bench_"))
    try:
        for _ in range(a.repeats):
            for p in tmp.glob("*"):
                shutil.rmtree(p) if p.is_dir() else p.unlink()
            loop_s.append(plain_loop(tmp / "loop.zarr", a.frames, a.size, a.chunk, a.passes))
            g = graph_file(tmp, a.frames, a.size, a.chunk, a.passes)
            samples: list[tuple[float, int]] = []

            def sample(rec: dict) -> None:
                if rec.get("type") == "stats":
                    samples.append((time.perf_counter(), rec["nodes"]["blur"]["items"]))

            t0 = time.perf_counter()
            res = run_graph(str(g), backend=a.backend, restart=True, shutdown=False, on_record=sample)
            graph_s.append(time.perf_counter() - t0)
            steady.append(steady_fps(samples, a.frames, a.chunk))
            ref = FrameStore.open(tmp / "loop.zarr", "r").read("blur/frames")
            out = FrameStore.open(tmp / "graph.zarr", "r").read("blur/frames")
            assert np.array_equal(ref, out), "graph and loop results differ"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if a.backend == "ray":
            ray.shutdown()
    loop_fps = a.frames / statistics.median(loop_s)
    graph_fps = a.frames / statistics.median(graph_s)
    result = {
        "benchmark": "runtime_passthrough", "backend": a.backend, "frames": a.frames, "size": a.size,
        "chunk_frames": a.chunk, "passes": a.passes, "repeats": a.repeats,
        "cores": len(os.sched_getaffinity(0)),
        "loop_fps_median": round(loop_fps, 1), "graph_fps_median": round(graph_fps, 1),
        "graph_steady_fps_median": round(statistics.median(steady), 1),
        "graph_over_loop": round(graph_fps / loop_fps, 3),
        "steady_over_loop": round(statistics.median(steady) / loop_fps, 3),
        "overhead_pct": round(100.0 * (loop_fps / graph_fps - 1.0), 1),
        "steady_overhead_pct": round(100.0 * (loop_fps / statistics.median(steady) - 1.0), 1),
        "note": "graph_fps: whole run incl. starting the actors (~1-2 s here); steady: once chunks flow",
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
