"""depth.fill scaling: one data set filled with 1 and 2 replicas (embedded Ray) and on a 2-node
local Ray cluster (`ray start --head` + `ray start --address`, both on loopback, started and
stopped here), through the real graph runtime and graphs/fill_cluster.yaml.

The data set: face-shaped crops cut from the real sensor depth in ../shared/realdata with
realistic holes (facesynth.depth.testdata_realdepth.face_like_crops), written as crop/* into a store.
frames/s counts fill work only (from the first chunk's start to the last chunk's end, taken
from the run log's fill.chunk events), so Ray's start-up is not in it; wall_s includes it.
Every run must produce the same fill/depth (checked). On a shared 2-core machine the
2-replica speed-up is bounded by what the other processes leave free.

    .venv/bin/python benchmarks/fill_scaling.py --quick
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from facesynth.runtime.api import run_graph  # noqa: E402
from facesynth.store.frame_store import FrameStore  # noqa: E402
from facesynth.depth.testdata_realdepth import face_like_crops, load_all, realdata_root  # noqa: E402

GRAPH = ROOT / "graphs" / "fill_cluster.yaml"
RAY = str(Path(sys.executable).with_name("ray"))

# Ray 2.60's `ray start --address` refuses to join a head on this machine unless
# RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=1, and that same switch makes the new node advertise and
# bind the machine's public IP. This runs the same `ray start` entry point with only the refusal
# lifted (in the CLI module), so the second node stays on 127.0.0.1 like the head.
RAY_START_LOOPBACK = """
import sys, types
import ray._private.ray_constants as rc
from ray.scripts import scripts
scripts.ray_constants = types.SimpleNamespace(**{k: getattr(rc, k) for k in dir(rc) if not k.startswith("__")})
scripts.ray_constants.ENABLE_RAY_CLUSTER = True
sys.argv = ["ray", *sys.argv[1:]]
scripts.main()
"""


def build_store(path: Path, frames: int, size: int, chunk: int, seed: int = 0) -> None:
    """crop/color, /depth, /mask, /ok as face.crop writes them, from real depth frames."""
    c = face_like_crops(load_all(), frames, size, 0.05, seed=seed)
    store = FrameStore.create(path, chunk_frames=chunk)
    for name, data, shape, dtype in (("crop/color", c.color, (size, size, 3), np.uint8),
                                     ("crop/depth", c.depth, (size, size), np.uint16),
                                     ("crop/mask", c.mask, (size, size), bool),
                                     ("crop/ok", np.ones(frames, bool), (), bool)):
        store.ensure_array(name, frames, shape, dtype)
        store.write(name, 0, data)


def reset_fill(path: Path) -> None:
    for sub in ("fill", "_progress", "_faults"):
        shutil.rmtree(path / sub, ignore_errors=True)


def fill_rate(run_log: Path) -> tuple[float, int]:
    """(frames/s of fill work, frames) from the run log's fill.chunk events."""
    evs = [json.loads(x) for x in run_log.read_text().splitlines()]
    evs = [e for e in evs if e.get("type") == "event" and e.get("name") == "fill.chunk"]
    frames = sum(int(e["frames"]) for e in evs)
    first = min(evs, key=lambda e: e["t"])
    start = first["t"] - first["frames"] * first["ms_per_frame"] / 1000.0
    end = max(e["t"] for e in evs)
    return frames / max(end - start, 1e-9), frames


def run(store: Path, chunk: int, replicas: int | str, address: str | None = None) -> tuple[dict, np.ndarray]:
    reset_fill(store)
    t0 = time.perf_counter()
    res = run_graph(str(GRAPH), overrides=[f"store.path={store}", f"store.chunk_frames={chunk}",
                                           f"nodes.fill.replicas={replicas}"],
                    backend="ray", address=address)
    wall = time.perf_counter() - t0
    fps, frames = fill_rate(res.run_log)
    node = res.stats["nodes"]["fill"]
    out = {"replicas": node["replicas"], "frames": frames, "frames_per_s": round(fps, 1),
           "wall_s": round(wall, 2), "status": res.status}
    return out, FrameStore.open(store, "r").read("fill/depth").copy()


def run_cli(store: Path, chunk: int, cluster: "LoopbackCluster") -> tuple[dict, np.ndarray]:
    """`facesynth graph run graphs/fill_cluster.yaml --address ...` in a fresh process, as a user runs it."""
    reset_fill(store)
    cmd = [str(Path(sys.executable).with_name("facesynth")), "graph", "run", str(GRAPH), "--quiet",
           "--address", cluster.address, "--set", f"store.path={store}", "--set", f"store.chunk_frames={chunk}"]
    probe = ("import ray, json; ray.init(address=%r, configure_logging=False, log_to_driver=False); "
             "print(json.dumps(sum(1 for n in ray.nodes() if n['Alive'])))" % cluster.address)
    nodes = json.loads(subprocess.run([sys.executable, "-c", probe], env=cluster.env, capture_output=True,
                                      text=True, timeout=120).stdout.strip().splitlines()[-1])
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=cluster.env, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}")
    summary = json.loads(p.stdout.strip().splitlines()[-1])
    fps, frames = fill_rate(Path(summary["run_log"]))
    stats = [json.loads(x) for x in Path(summary["run_log"]).read_text().splitlines() if '"type":"stats"' in x]
    reps = stats[-1]["nodes"]["fill"]["replicas"] if stats else None
    out = {"replicas": reps, "frames": frames, "frames_per_s": round(fps, 1), "wall_s": round(wall, 2),
           "status": summary["status"], "nodes": nodes, "address": cluster.address,
           "command": "facesynth graph run graphs/fill_cluster.yaml --address ADDR --set store.path=..."}
    return out, FrameStore.open(store, "r").read("fill/depth").copy()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LoopbackCluster:
    """A head and one worker node on 127.0.0.1 via `ray start`, token-authenticated, own temp dir.

    Stopped by killing exactly the processes this cluster started (found by its temp dir),
    never with `ray stop`, which would end every Ray on the machine.
    """

    def __init__(self, cpus_per_node: int = 1):
        self.cpus = cpus_per_node
        self.tmp = Path(tempfile.mkdtemp(prefix="fsray_", dir="/tmp"))
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = dict(os.environ, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16),
                        RAY_USAGE_STATS_ENABLED="0", RAY_worker_niceness="0",
                        RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")  # every socket on loopback

    def _ray(self, *args: str, cli: list[str] | None = None) -> None:
        p = subprocess.run([*(cli or [RAY]), *args], env=self.env, capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            raise RuntimeError(f"ray {' '.join(args)} failed:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")

    def __enter__(self) -> "LoopbackCluster":
        try:
            self._ray("start", "--head", f"--port={self.port}", "--node-ip-address=127.0.0.1",
                      f"--num-cpus={self.cpus}", "--include-dashboard=false", f"--temp-dir={self.tmp}",
                      "--disable-usage-stats")
            self._ray("start", f"--address={self.address}", "--node-ip-address=127.0.0.1",
                      f"--num-cpus={self.cpus}", f"--temp-dir={self.tmp}",
                      cli=[sys.executable, "-c", RAY_START_LOOPBACK])
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        import psutil

        me = psutil.Process()
        skip = {me.pid, *(p.pid for p in me.parents())}

        mine: dict[int, psutil.Process] = {}
        for p in psutil.process_iter(["pid", "cmdline"]):
            try:
                if p.pid not in skip and str(self.tmp) in " ".join(p.info["cmdline"] or []):
                    mine[p.pid] = p
                    for ch in p.children(recursive=True):
                        mine[ch.pid] = ch
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        for p in mine.values():
            try:
                os.kill(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        _, alive = psutil.wait_procs(list(mine.values()), timeout=10)
        for p in alive:
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=96)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--chunk", type=int, default=8)
    ap.add_argument("--quick", action="store_true", help="48 frames")
    ap.add_argument("--no-cluster", action="store_true", help="skip the 2-node ray start cluster")
    args = ap.parse_args(argv)
    if not (realdata_root() / "nyu_tum_sun_redwood_open3d").is_dir():
        print(json.dumps({"error": f"real data not found at {realdata_root()}"}))
        return 1
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    frames = 48 if args.quick else args.frames
    work = Path(tempfile.mkdtemp(prefix="fill_scaling_"))
    store = work / "ds.zarr"
    try:
        build_store(store, frames, args.size, args.chunk)
        runs: dict[str, dict] = {}
        ref = None
        for name, reps in (("embedded_1_replica", 1), ("embedded_2_replicas", 2)):
            runs[name], got = run(store, args.chunk, reps)
            ref = got if ref is None else ref
            runs[name]["same_result"] = bool(np.array_equal(got, ref))
        if not args.no_cluster:
            with LoopbackCluster(cpus_per_node=1) as cl:
                runs["cluster_2_nodes"], got = run_cli(store, args.chunk, cl)
                runs["cluster_2_nodes"]["same_result"] = bool(np.array_equal(got, ref))
        base = runs["embedded_1_replica"]["frames_per_s"]
        result = {"benchmark": "fill_scaling", "frames": frames, "size": args.size, "chunk_frames": args.chunk,
                  "cpus_here": os.cpu_count(), "load_avg_1m_at_end": round(os.getloadavg()[0], 2), "runs": runs,
                  "speedup_vs_1_replica": {k: round(v["frames_per_s"] / max(base, 1e-9), 2) for k, v in runs.items()}}
        print(json.dumps(result, indent=2))
        return 0 if all(r["status"] == "ok" and r["same_result"] for r in runs.values()) else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
