"""Live inference benchmark: the live graph driven at 30, 60, 90 Hz vs the generator in a plain loop.

For each rate a sender process streams msgpack landmark messages (with its send time) into
live.msgpack_in -> live.generator -> live.msgpack_out and, in the same run, live.viewer (the browser
viewer's WebSocket; local backend: one process, the lowest-latency way to run it); a TCP client and
a WebSocket client here receive the frames (the viewer's `viewer` block: fps and latency
landmarks in -> frame received from the page's socket). Reported per rate: achieved fps, latency
sender -> client (client clock, same machine) and landmarks received -> frame sent (the graph's own
live.stats) as min/p50/p99, generator ms, frames skipped by the `latest` edges. The baseline is the
same work (draw + generator + mask + rgb/depth conversion) called directly in a loop on this machine
in the same run, with one replica's threads (`max_fps` = 1000 / its p50: one replica's ceiling);
`overhead_ratio` = graph p50 latency / direct p50 time. The graph runs `--replicas` generators (2,
as graphs/live_inference.yaml) with `--threads` each (0: the node's default, the usable cores shared
among the replicas: 1 each on 2 cores). Each generator format in
`--formats` (default: `weights`, the PyTorch path, as the baseline, and `auto`, live.generator's
default: ONNX Runtime when the export has generator.onnx) runs the same rates, one after the
other per rate, in the same run. Prints JSON.

  .venv/bin/python benchmarks/live.py --quick          # 64 px tiny model, ~1 min: the graph's overhead
  .venv/bin/python benchmarks/live.py --model data_store/capture_to_model.zarr.model/export   # the main job's export
  .venv/bin/python benchmarks/live.py --size 256 --ngf 64 --device cuda   # random weights, real shape
Target (issue 7): 90 fps at 256 px with p99 latency under 11 ms on a GPU; on 2 CPU cores (issue 22):
the main job's model holds >= 85 fps at 90 Hz in ONNX Runtime, with a lower p50 latency than the weights.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import socket
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from facesynth.live import protocol as lp  # noqa: E402
from facesynth.nodes.cores import cores_per_replica  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sender(port: int, rate: float, seconds: float, size: int, ready, phase_start, sent) -> None:
    """Second process: warm up at 5 Hz until `ready`, then stream at `rate` for `seconds`."""
    rng = np.random.default_rng(0)
    sets = rng.uniform(0.1 * size, 0.9 * size, (32, 70, 2)).astype(np.float32)
    while True:
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=1.0)
            break
        except OSError:
            time.sleep(0.05)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    seq = 0
    while not ready.is_set():
        seq += 1
        sock.sendall(lp.frame_bytes(lp.encode_landmark_message(sets[seq % 32], seq)))
        time.sleep(0.2)
    t0 = time.time()
    phase_start.value = t0
    n = 0
    while True:
        due = t0 + n / rate
        if due - t0 >= seconds:
            break
        delay = due - time.time()
        if delay > 0:
            time.sleep(delay)
        seq += 1
        n += 1
        sock.sendall(lp.frame_bytes(lp.encode_landmark_message(sets[seq % 32], seq)))
    sent.value = n
    sock.close()


def receive(port: int, frames: list, ready, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=1.0)
            break
        except OSError:
            time.sleep(0.05)
    else:
        return
    dec = lp.StreamDecoder(lp.MAX_FRAME_MESSAGE)
    sock.settimeout(60)
    with sock:
        while data := sock.recv(1 << 20):
            now = time.time()
            for body in dec.feed(data):
                f = lp.decode_frame(body)
                frames.append((now, f.get("t_sender"), f["t_recv"]))
                ready.set()


def receive_viewer(port: int, frames: list, stop: threading.Event) -> None:
    """A WebSocket client like the viewer page: (receive time, t_sender, t_recv) per frame."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    from facesynth.live.viewer_server import decode_viewer_frame

    while not stop.is_set():
        try:
            ws = connect(f"ws://127.0.0.1:{port}/ws", max_size=None, open_timeout=2).__enter__()
            break
        except OSError:
            time.sleep(0.05)
    else:
        return
    with ws:
        while not stop.is_set():
            try:
                msg = ws.recv(timeout=0.5)
            except TimeoutError:
                continue
            except ConnectionClosed:
                return
            now = time.time()
            head, _, _ = decode_viewer_frame(msg)
            frames.append((now, head.get("t_sender"), head["t_recv"]))


def pct(values: list[float]) -> dict:
    if not values:
        return {"min": None, "p50": None, "p99": None}
    a = np.asarray(values)
    return {"min": round(float(a.min()), 3), "p50": round(float(np.percentile(a, 50)), 3),
            "p99": round(float(np.percentile(a, 99)), 3)}


def direct_loop(model: str, device: str, seconds: float, threads: int, fmt: str = "auto") -> dict:
    """The baseline: the generator node's work, called in a plain loop (one replica's threads)."""
    from facesynth.live.output_nodes import LiveGenerator
    from facesynth.face import rgbd_output as ro

    gen = LiveGenerator(model, device, threads, format=fmt)
    d0, fd, _ = ro.depth_params(gen.meta)
    rng = np.random.default_rng(1)
    sets = rng.uniform(0.1 * gen.size, 0.9 * gen.size, (32, 70, 2)).astype(np.float32)
    gen.warm_up(5)  # as live.generator's setup does
    times, gen_ms = [], []
    t_end = time.perf_counter() + seconds
    i = 0
    while time.perf_counter() < t_end or i < 5:
        t = time.perf_counter()
        out, ms = gen.infer(sets[i % 32])
        ro.to_rgbd(out, d0, fd)
        times.append((time.perf_counter() - t) * 1000.0)
        gen_ms.append(ms)
        i += 1
    p = pct(times)
    return {"format": gen.format, "iterations": i, "ms": p, "generator_ms_p50": round(float(np.median(gen_ms)), 3),
            "max_fps": round(1000.0 / p["p50"], 2)}


def run_rate(model: str, device: str, threads: int, replicas: int, size: int, rate: float, seconds: float,
             workdir: Path, fmt: str = "auto", backend: str = "local") -> dict:
    from facesynth.runtime.api import run_graph

    tin, tout, tview = free_port(), free_port(), free_port()
    graph = workdir / f"live_{int(rate)}_{fmt}.yaml"
    graph.write_text(textwrap.dedent(f"""\
        version: 1
        name: live_bench
        defaults: {{queue: 1, policy: latest}}
        nodes:
          - id: net
            kind: live.msgpack_in
            params: {{port: {tin}, size: {size}, idle_timeout_s: 1.0}}
          - id: generator
            kind: live.generator
            replicas: {replicas}
            params: {{model: "{model}", device: {device}, threads: {threads}, format: {fmt}}}
            inputs: {{landmarks: {{from: net/landmarks, policy: latest, queue: 1}}}}
          - id: out
            kind: live.msgpack_out
            params: {{port: {tout}}}
            inputs: {{rgbd: {{from: generator/rgbd, policy: latest, queue: 1}}}}
          - id: viewer
            kind: live.viewer
            params: {{port: {tview}}}
            inputs: {{rgbd: {{from: generator/rgbd, policy: latest, queue: 1}}}}
        """))
    ctx = mp.get_context("spawn")
    ready, phase_start, sent = ctx.Event(), ctx.Value("d", 0.0), ctx.Value("i", 0)
    frames: list = []
    stop = threading.Event()
    client = threading.Thread(target=receive, args=(tout, frames, ready, stop), daemon=True)
    client.start()
    vframes: list = []
    vclient = threading.Thread(target=receive_viewer, args=(tview, vframes, stop), daemon=True)
    vclient.start()
    proc = ctx.Process(target=sender, args=(tin, rate, seconds, size, ready, phase_start, sent))
    proc.start()
    res = run_graph(str(graph), backend=backend)
    proc.join(30)
    stop.set()
    client.join(10)
    vclient.join(10)
    t0 = phase_start.value
    measured = [f for f in frames if f[1] is not None and f[1] >= t0]
    vmeasured = [f for f in vframes if f[1] is not None and f[1] >= t0]
    stats = [json.loads(line) for line in Path(res.run_log).read_text().splitlines()]
    finals = {r.get("node"): r for r in stats if r.get("name") == "live.stats" and r.get("final")}
    final, vfinal = finals.get("out", {}), finals.get("viewer", {})
    return {"format": fmt, "rate_hz": rate, "seconds": seconds, "sent": int(sent.value), "received": len(measured),
            "achieved_fps": round(len(measured) / seconds, 2),
            "latency_ms_sender_to_client": pct([(r - s) * 1000.0 for r, s, _ in measured]),
            "latency_ms_graph": final.get("latency_ms"), "generator_ms": final.get("generator_ms"),
            "skipped_by_latest": final.get("skipped"), "late": final.get("late"),
            "viewer": {"received": len(vmeasured), "achieved_fps": round(len(vmeasured) / seconds, 2),
                       "latency_ms_sender_to_page": pct([(r - s) * 1000.0 for r, s, _ in vmeasured]),
                       "latency_ms_landmarks_in_to_page": pct([(r - t) * 1000.0 for r, _, t in vmeasured]),
                       "latency_ms_graph": vfinal.get("latency_ms"), "replaced_for_slow_page": vfinal.get("viewer_replaced")}}


def model_shape(model: str) -> dict:
    """size and ngf of an export, from its generator.json (what the header reports)."""
    from facesynth.model.export_meta import export_files, read_meta

    meta = read_meta(export_files(model, "weights")[1])
    return {"size": int(meta["size"]), "ngf": int(meta.get("ngf") or meta.get("arch", {}).get("ngf", 0)) or None}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="exported generator (its directory or a file of it); default: random weights")
    ap.add_argument("--size", type=int, default=256, help="random weights only: network size")
    ap.add_argument("--ngf", type=int, default=64, help="random weights only: generator width")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--replicas", type=int, default=2,
                    help="live.generator replicas in the graph (2, as in graphs/live_inference.yaml)")
    ap.add_argument("--threads", type=int, default=0,
                    help="generator CPU threads per replica (torch or ONNX Runtime), for the loop and the graph "
                         "(0 = the node's default: the usable cores shared among the replicas)")
    ap.add_argument("--formats", default="weights,auto",
                    help="live.generator formats to compare in the same run (weights, auto, onnx, torchscript)")
    ap.add_argument("--rates", default="30,60,90")
    ap.add_argument("--backend", default="local", choices=["local", "ray"],
                    help="local: the graph in this process (`graph run --local`, what the README's live inference "
                         "command runs); ray: embedded Ray, a process per node replica")
    ap.add_argument("--seconds", type=float, default=5.0, help="streaming time per rate")
    ap.add_argument("--quick", action="store_true", help="64 px, ngf 8, 3 s per rate")
    a = ap.parse_args()
    if a.quick:
        a.size, a.ngf, a.seconds = 64, 8, 3.0
    model = str(Path(a.model).resolve()) if a.model else None  # before the chdir below
    formats = [f.strip() for f in a.formats.split(",") if f.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.chdir(work)  # run logs of store-less graphs go to ./data_store/runs
        if model is None:
            import torch

            from facesynth.model.export import export_generator
            from facesynth.model.generator import UNetGenerator

            torch.manual_seed(0)
            model = str(export_generator(UNetGenerator(a.size, a.ngf).eval(), work / "model",
                                         {"d0_mm": 600.0, "face_depth_mm": 80.0, "crop_mm": 200.0},
                                         onnx=any(f in ("auto", "onnx") for f in formats)).parent)
        import torch

        shape = model_shape(model)
        threads = a.threads or cores_per_replica(a.replicas)  # what the node resolves 0 to
        direct = {f: direct_loop(model, a.device, min(a.seconds, 5.0), threads, f) for f in formats}
        runs = [run_rate(model, a.device, threads, a.replicas, shape["size"], float(r), a.seconds, work, f,
                         a.backend)
                for r in a.rates.split(",") for f in formats]  # the formats take turns at each rate
        for r in runs:
            d = direct[r["format"]]
            r["resolved_format"] = d["format"]
            g = (r["latency_ms_graph"] or {}).get("p50")
            r["overhead_ratio"] = round(g / d["ms"]["p50"], 3) if g else None
            r["fps_vs_possible"] = round(r["achieved_fps"] / min(r["rate_hz"], a.replicas * d["max_fps"]), 3)
        base = formats[0]
        for r in runs:  # each format against the first (the baseline) at the same rate
            b = next(x for x in runs if x["format"] == base and x["rate_hz"] == r["rate_hz"])
            bl, rl = (b["latency_ms_graph"] or {}).get("p50"), (r["latency_ms_graph"] or {}).get("p50")
            r["vs_" + base] = {"fps_ratio": round(r["achieved_fps"] / b["achieved_fps"], 3) if b["achieved_fps"] else None,
                               "p50_latency_ratio": round(rl / bl, 3) if rl and bl else None}
        out = {"benchmark": "live", "backend": a.backend, "device": a.device, **shape, "model": a.model or "random",
               "replicas": a.replicas, "threads_per_replica": threads, "torch_threads": torch.get_num_threads(),
               "cpus": os.cpu_count(),
               "load_avg_1m": round(os.getloadavg()[0], 2), "formats": formats, "direct": direct, "graph": runs,
               "target": "GPU: 90 fps at 256 px, p99 latency < 11 ms; 2 CPU cores: >= 85 fps at 90 Hz (main job's model)"}
    print(json.dumps(out, indent=2))
    print(f"{'format':>8} {'rate':>5} {'fps':>6} {'p50 ms':>7} {'p99 ms':>7} {'gen ms':>7} {'ratio':>6} "
          f"{'view fps':>9} {'view p50':>9} {'view p99':>9}", file=sys.stderr)
    for r in runs:
        lat = r["latency_ms_graph"] or {}
        v = r["viewer"]
        vl = v["latency_ms_landmarks_in_to_page"]
        print(f"{r['resolved_format']:>8} {r['rate_hz']:>5.0f} {r['achieved_fps']:>6.1f} {lat.get('p50')!s:>7} "
              f"{lat.get('p99')!s:>7} {r['generator_ms']!s:>7} {r['overhead_ratio']!s:>6} {v['achieved_fps']:>9.1f} "
              f"{vl['p50']!s:>9} {vl['p99']!s:>9}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
