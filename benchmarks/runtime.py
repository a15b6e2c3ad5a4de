"""Runtime overhead: a synthetic pass-through graph on Ray vs the same work in a plain loop.

Both do exactly the same work per chunk (generate frames, blur, write to a Zarr frame store);
the graph runs it as two Ray actors (source -> pass-through) with chunk references on the
edge. Prints JSON: frames/s of each (median of repeats, same run) and their ratio.

On all cores the graph also runs its two nodes in parallel, which the loop cannot; `--cores 1`
pins this process, and the Ray processes it starts, to one core, so the ratio there is the
runtime's own cost (calls, routing, progress log) with no parallel gain to hide it. Both also
report CPU time per frame, summed over this process and every process under it (Ray's daemons
and workers): the runtime's cost whatever the cores, and less shaken by other tenants than
wall time.

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
import psutil

from facesynth.nodes.bench import bench_frames, bench_work
from facesynth.runtime.api import run_graph
from facesynth.store.frame_store import FrameStore


def tree_cpu_s() -> float:
    """CPU seconds of this process and every process under it, with the children they reaped."""
    me = psutil.Process()
    total = 0.0
    for p in [me, *me.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.Error:  # exited between the listing and the reading
            pass
    return total


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


def steady(samples: list[tuple[float, int, float]], frames: int, chunk: int) -> tuple[float, float]:
    """(frames/s, CPU ms per frame) once the pipeline runs: from the first stats sample where
    the last node has finished a chunk to the last one (leaves out starting the actors, which
    a long run amortises)."""
    started = [s for s in samples if s[1] > 0]
    if len(started) < 2:
        return float("nan"), float("nan")
    (t1, n1, c1), (t2, n2, c2) = started[0], started[-1]
    done = min(n2 * chunk, frames) - n1 * chunk
    if t2 <= t1 or done <= 0:
        return float("nan"), float("nan")
    return done / (t2 - t1), 1000.0 * (c2 - c1) / done


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
    loop_s, graph_s, steady_fps, per_call = [], [], [], []
    loop_cpu, graph_cpu, steady_cpu = [], [], []
    tmp = Path(tempfile.mkdtemp(prefix="fs_runtime_bench_"))
    try:
        for _ in range(a.repeats):
            for p in tmp.glob("*"):
                shutil.rmtree(p) if p.is_dir() else p.unlink()
            c0 = tree_cpu_s()
            loop_s.append(plain_loop(tmp / "loop.zarr", a.frames, a.size, a.chunk, a.passes))
            loop_cpu.append(1000.0 * (tree_cpu_s() - c0) / a.frames)
            g = graph_file(tmp, a.frames, a.size, a.chunk, a.passes)
            samples: list[tuple[float, int, float]] = []

            def sample(rec: dict) -> None:
                if rec.get("type") == "stats":
                    samples.append((time.perf_counter(), rec["nodes"]["blur"]["items"], tree_cpu_s()))

            t0, c0 = time.perf_counter(), tree_cpu_s()
            res = run_graph(str(g), backend=a.backend, restart=True, shutdown=False, on_record=sample)
            graph_s.append(time.perf_counter() - t0)
            graph_cpu.append(1000.0 * (tree_cpu_s() - c0) / a.frames)
            fps, cpu = steady(samples, a.frames, a.chunk)
            steady_fps.append(fps)
            steady_cpu.append(cpu)
            per_call.append({n: round(s["items"] / max(1, s["calls"]), 2) for n, s in res.stats["nodes"].items()})
            ref = FrameStore.open(tmp / "loop.zarr", "r").read("blur/frames")
            out = FrameStore.open(tmp / "graph.zarr", "r").read("blur/frames")
            assert np.array_equal(ref, out), "graph and loop results differ"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if a.backend == "ray":
            ray.shutdown()
    med = statistics.median
    loop_fps, graph_fps, graph_steady = a.frames / med(loop_s), a.frames / med(graph_s), med(steady_fps)
    result = {
        "benchmark": "runtime_passthrough", "backend": a.backend, "frames": a.frames, "size": a.size,
        "chunk_frames": a.chunk, "passes": a.passes, "repeats": a.repeats,
        "cores": len(os.sched_getaffinity(0)),
        "loop_fps_median": round(loop_fps, 1), "graph_fps_median": round(graph_fps, 1),
        "graph_steady_fps_median": round(graph_steady, 1),
        "graph_over_loop": round(graph_fps / loop_fps, 3),
        "steady_over_loop": round(graph_steady / loop_fps, 3),
        "loop_cpu_ms_per_frame": round(med(loop_cpu), 3),
        "graph_cpu_ms_per_frame": round(med(graph_cpu), 3),
        "graph_steady_cpu_ms_per_frame": round(med(steady_cpu), 3),
        "steady_cpu_overhead_pct": round(100.0 * (med(steady_cpu) / med(loop_cpu) - 1.0), 1),
        "chunks_per_call": per_call[len(per_call) // 2],
        "note": "graph: whole run incl. starting the actors (~1-2 s here); steady: once chunks flow; "
                "cpu: this process and every process under it (Ray daemons and workers)",
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
