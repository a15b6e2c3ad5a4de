"""Live inference and its outputs: the traced generator, the RGBD msgpack stream, file sinks.

live.generator draws the landmarks, runs the exported generator (by default, `format: auto`, on
CPU its generator.onnx in ONNX Runtime when the export has one, else its weights rebuilt from
generator.json: neither runs code from the model file; `format: torchscript` loads TorchScript,
which runs code stored in the file, for trusted files only), applies the background mask (again, outside the exported graph: the
output is clean whatever was exported)
and turns the result into rgb uint8 + depth uint16 (0.1 mm). live.msgpack_out serves those
frames to any number of TCP clients (slow clients lose frames, they never slow the graph) and
reports `live.stats`: fps, end-to-end latency (landmarks received -> frame written to the
sockets) min/p50/p99, generator ms, drops.
"""
from __future__ import annotations

import asyncio
import time
from collections import deque
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from facesynth.errors import InputDataError, MissingDependencyError
from facesynth.nodes.base import Node, Output, Params
from facesynth.nodes.cores import cores_per_replica
from facesynth.nodes.registry import register
from facesynth.live import protocol as lp
from facesynth.face import rgbd_output as ro

RGBD_DOC = ("live RGBD payload: the landmarks payload + rgb (S,S,3) u8, depth (S,S) u16, depth_unit_mm, "
            "gen_ms, meta (d0_mm, face_depth_mm, crop_mm...)")
META_KEYS = ("d0_mm", "face_depth_mm", "near_mm", "crop_mm", "size", "margin", "fx", "camera_intrinsics")


class GeneratorParams(Params):
    model: str = Field("data_store/capture_to_model.zarr.model/export",
                       description="the export directory (or one of its files: generator.pt, .onnx, .ts.pt)")
    format: Literal["auto", "weights", "onnx", "torchscript"] = Field(
        "auto", description="auto (default): onnx on CPU when the export has generator.onnx, else weights; "
        "weights: generator.pt + generator.json, no code from the file; "
        "onnx: generator.onnx in ONNX Runtime (data, not code); torchscript: generator.ts.pt, which runs code stored in "
        "the file: only for files you trust")
    device: str = Field("cpu", description="torch device: cpu, cuda, cuda:1 ...")
    size: int = Field(0, ge=0, le=4096, description="expected network size (0 = the model's)")
    threads: int = Field(0, ge=0, le=256, description="CPU threads per replica, torch or ONNX Runtime intra-op "
                         "(0 = the usable cores shared among the node's replicas: 1 each for 2 replicas on 2 cores)")
    half: bool = Field(False, description="run in float16 (GPU only; weights and torchscript formats)")
    warmup: int = Field(5, ge=0, le=1000, description="calls at setup: the first runs are slow (allocation, TorchScript profiling)")


class LiveGenerator:
    """Exported generator on a device: landmarks -> masked (4, S, S) float32 output (pure enough to bench)."""

    def __init__(self, model: str, device: str = "cpu", threads: int = 0, half: bool = False,
                 format: str = "auto"):
        import torch

        from facesynth.model.export import default_format, load_exported

        if format == "auto":
            format = "weights" if half else default_format(model, device)
        self.torch = torch
        if threads and format != "onnx":
            torch.set_num_threads(threads)
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise MissingDependencyError(f"device {device!r} asked for but torch sees no CUDA GPU; "
                                         "use device: cpu or install a CUDA build of torch")
        self.exported = load_exported(model, format, onnx_threads=threads or 2, device=device)
        self.format = format
        self.meta = dict(self.exported.meta)
        self.size = int(self.meta["size"])
        self.device = torch.device(device)
        if format == "onnx":  # the session owns its device; inputs and outputs are CPU arrays
            if half:
                raise InputDataError("half: true needs format weights or torchscript (the ONNX export is float32)")
            self.device, self.half, self.module = torch.device("cpu"), False, self.exported.module
            return
        self.half = half and self.device.type == "cuda"
        self.module = self.exported.module.to(self.device)
        if self.half:
            self.module = self.module.half()

    def warm_up(self, calls: int = 5) -> None:
        """The first calls allocate (and, for TorchScript, profile and optimise: hundreds of ms each)."""
        pts = np.full((70, 2), self.size / 2.0, np.float32) + np.arange(140, dtype=np.float32).reshape(70, 2) % 17
        for _ in range(calls):
            self.infer(pts)

    def infer(self, points70: np.ndarray) -> tuple[np.ndarray, float]:
        """(masked (4, S, S) float32 output, generator ms) for one landmark set."""
        torch = self.torch
        x = torch.from_numpy(ro.network_input(points70, self.size)).to(self.device)
        if self.half:
            x = x.half()
        t0 = time.perf_counter()
        with torch.inference_mode():
            y = self.module(x)
        y = y.float().cpu().numpy()  # waits for the device, so the time is the real one
        ms = (time.perf_counter() - t0) * 1000.0
        return ro.masked_output(y), ms


@register
class Generator(Node):
    kind = "live.generator"
    summary = "Draw landmarks, run the exported generator (weights, ONNX or trusted TorchScript), mask the background -> RGBD"
    Params = GeneratorParams
    inputs = {"landmarks": "live landmarks payload"}
    outputs = {"rgbd": RGBD_DOC}
    live = True

    async def setup(self) -> None:
        p = self.params
        threads = p.threads or cores_per_replica(self.ctx.replicas)
        self.gen = await self.run_blocking(LiveGenerator, p.model, p.device, threads, p.half, p.format)
        if p.size and p.size != self.gen.size:
            raise InputDataError(f"model {p.model} is {self.gen.size} px but params.size is {p.size}")
        self.d0, self.face_depth, self.metric = ro.depth_params(self.gen.meta)
        self.meta = {k: self.gen.meta[k] for k in META_KEYS if k in self.gen.meta}
        self.meta["metric"] = self.metric
        await self.run_blocking(self.gen.warm_up, p.warmup)

    def _run(self, pts: np.ndarray) -> dict:
        out, ms = self.gen.infer(pts)
        rgb, depth = ro.to_rgbd(out, self.d0, self.face_depth)
        return {"rgb": rgb, "depth": depth, "depth_unit_mm": ro.DEPTH_UNIT_MM, "gen_ms": ms}

    async def process(self, port: str, item: dict) -> list[Output]:
        res = await self.run_blocking(self._run, item["landmarks"])
        return [Output("rgbd", {**item, **res, "meta": self.meta})]


class LiveStats:
    """Rolling end-to-end latency, generator time and fps, plus drops, for `live.stats` events."""

    def __init__(self, window: int = 100_000):
        self.latency_ms: deque = deque(maxlen=window)
        self.gen_ms: deque = deque(maxlen=window)
        self.sent_t: deque = deque(maxlen=window)
        self.frames = 0
        self.source_drops: dict[str, int] = {}
        self.last_seq: dict[str, int] = {}
        self.skipped = 0  # landmark sets that never became a frame (superseded on a `latest` edge)
        self.late = 0     # frames dropped because a newer one of their source had gone out
        self.client_drops = 0

    def is_late(self, item: dict) -> bool:
        """A frame older than one already sent for its source (generator replicas finish out
        of order): sending it would make the client's face jump back in time."""
        src, seq = str(item.get("source", "")), int(item.get("seq", 0))
        return src in self.last_seq and seq <= self.last_seq[src]

    def add_late(self) -> None:
        self.late += 1
        self.skipped = max(0, self.skipped - 1)  # counted as skipped when the newer one went out

    def add(self, item: dict, t_done: float) -> None:
        self.frames += 1
        self.latency_ms.append((t_done - float(item["t_recv"])) * 1000.0)
        self.gen_ms.append(float(item.get("gen_ms", 0.0)))
        self.sent_t.append(t_done)
        src, seq = str(item.get("source", "")), int(item.get("seq", 0))
        self.source_drops[src] = int(item.get("drops", 0))
        if src in self.last_seq and seq > self.last_seq[src] + 1:
            self.skipped += seq - self.last_seq[src] - 1
        self.last_seq[src] = max(seq, self.last_seq.get(src, 0))

    def summary(self, recent_s: float = 2.0) -> dict:
        lat = np.asarray(self.latency_ms, np.float64)
        t = np.asarray(self.sent_t, np.float64)
        recent = t[t >= t[-1] - recent_s] if len(t) else t
        fps = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 and recent[-1] > recent[0] else 0.0
        pct = (lambda q: round(float(np.percentile(lat, q)), 3)) if len(lat) else (lambda q: None)
        return {"frames": self.frames, "fps": round(float(fps), 2),
                "latency_ms": {"min": round(float(lat.min()), 3) if len(lat) else None, "p50": pct(50), "p99": pct(99)},
                "generator_ms": round(float(np.median(self.gen_ms)), 3) if self.gen_ms else None,
                "drops": sum(self.source_drops.values()) + self.client_drops,
                "bad_messages": dict(self.source_drops), "skipped": self.skipped, "late": self.late,
                "client_drops": self.client_drops}


class MsgpackOutParams(Params):
    host: str = Field("127.0.0.1", description="address to bind; 0.0.0.0 exposes it to the network")
    port: int = Field(9002, ge=0, le=65535, description="TCP port; frames are 4-byte big-endian length + msgpack")
    points: bool = Field(False, description="add metric points (N,6) xyz mm + rgb (needs the model's normalisation)")
    landmarks: bool = Field(True, description="echo the landmarks the frame was made from")
    max_client_buffer: int = Field(8 * 1024 * 1024, ge=1024, description="bytes queued to a client before its frames are dropped")
    report_every_s: float = Field(1.0, gt=0, le=3600)


@register
class MsgpackOut(Node):
    kind = "live.msgpack_out"
    summary = "Serve RGBD frames (+ optional xyz+rgb points) as length-prefixed msgpack over TCP; reports live.stats"
    Params = MsgpackOutParams
    inputs = {"rgbd": "live RGBD payload (live.generator)"}
    live = True
    max_replicas = 1

    async def setup(self) -> None:
        self.clients: set[asyncio.StreamWriter] = set()
        self.stats = LiveStats()
        self.connections = 0
        self._next_report = time.monotonic() + self.params.report_every_s
        self._server = await asyncio.start_server(self._client, self.params.host, self.params.port)
        self.bound = self._server.sockets[0].getsockname()[:2]
        self.ctx.report("live.listening", protocol="rgbd-msgpack/tcp", host=self.bound[0], port=self.bound[1])

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.clients.add(writer)
        try:
            while await reader.read(4096):  # clients send nothing we need; EOF = gone
                pass
        except (ConnectionError, OSError):
            pass
        finally:
            self.clients.discard(writer)
            writer.close()

    def encode(self, item: dict) -> bytes:
        pts = None
        if self.params.points:
            depth_mm = item["depth"].astype(np.float32) * np.float32(item["depth_unit_mm"])
            pts = ro.points_xyzrgb(item["rgb"], depth_mm, item.get("meta", {}))
        meta = item.get("meta", {})
        extra = {"gen_ms": round(float(item.get("gen_ms", 0.0)), 3),
                 **{k: meta[k] for k in ("d0_mm", "face_depth_mm", "crop_mm", "metric") if k in meta}}
        if item.get("t_sender") is not None:
            extra["t_sender"] = float(item["t_sender"])
        return lp.encode_frame(item["rgb"], item["depth"], seq=item["seq"], source=item["source"],
                               t_recv=item["t_recv"], depth_unit_mm=item["depth_unit_mm"],
                               landmarks=item["landmarks"] if self.params.landmarks else None,
                               points=pts, extra=extra)

    async def process(self, port: str, item: dict) -> list[Output]:
        if self.stats.is_late(item):
            self.stats.add_late()
            return []
        data = lp.frame_bytes(self.encode(item))
        for w in list(self.clients):
            if w.is_closing():
                self.clients.discard(w)
            elif w.transport.get_write_buffer_size() > self.params.max_client_buffer:
                self.stats.client_drops += 1
            else:
                w.write(data)
        self.stats.add(item, time.time())
        if time.monotonic() >= self._next_report:
            self.ctx.report("live.stats", clients=len(self.clients), **self.stats.summary())
            self._next_report = time.monotonic() + self.params.report_every_s
        return []

    async def close(self) -> None:
        if getattr(self, "_server", None) is None:
            return
        self.ctx.report("live.stats", final=True, clients=len(self.clients), **self.stats.summary())
        for w in list(self.clients):
            try:
                await asyncio.wait_for(w.drain(), 1.0)
            except (asyncio.TimeoutError, ConnectionError, OSError):
                pass
            w.close()
        self._server.close()


class FileSinkParams(Params):
    dir: str = Field("data_store/live_frames", description="output directory")
    png: bool = Field(True, description="write <name>_rgb.png and <name>_depth.png (16-bit, depth_unit_mm)")
    ply: bool = Field(True, description="write <name>.ply metric points (needs the model's normalisation)")
    every: int = Field(1, ge=1, description="write every n-th frame")
    max_frames: int = Field(0, ge=0, description="stop writing after this many (0 = no limit)")


def write_frame_files(out_dir: Path, item: dict, png: bool, ply: bool) -> list[Path]:
    """PNG (rgb, 16-bit depth) and PLY files for one RGBD payload; returns the paths written."""
    import cv2

    from facesynth.face.point_cloud import write_ply

    out_dir.mkdir(parents=True, exist_ok=True)
    name = f"{item['source']}_{int(item['seq']):08d}"
    written = []
    if png:
        for suffix, img in (("rgb", cv2.cvtColor(item["rgb"], cv2.COLOR_RGB2BGR)), ("depth", item["depth"])):
            path = out_dir / f"{name}_{suffix}.png"
            if not cv2.imwrite(str(path), img):
                raise OSError(f"could not write {path}")
            written.append(path)
    if ply:
        depth_mm = item["depth"].astype(np.float32) * np.float32(item["depth_unit_mm"])
        pts = ro.points_xyzrgb(item["rgb"], depth_mm, item.get("meta", {}))
        if pts is not None:
            written.append(write_ply(out_dir / f"{name}.ply", pts[:, :3], pts[:, 3:].astype(np.uint8)))
    return written


@register
class FileSink(Node):
    kind = "live.file_sink"
    summary = "Write live RGBD frames as PNG (rgb + 16-bit depth) and PLY point clouds"
    Params = FileSinkParams
    inputs = {"rgbd": "live RGBD payload (live.generator)"}
    live = True
    max_replicas = 1

    async def setup(self) -> None:
        self.seen = 0
        self.written = 0

    async def process(self, port: str, item: dict) -> list[Output]:
        p = self.params
        self.seen += 1
        if (self.seen - 1) % p.every or (p.max_frames and self.written >= p.max_frames):
            return []
        await self.run_blocking(write_frame_files, Path(p.dir), item, p.png, p.ply)
        self.written += 1
        return []

    async def finish(self) -> list[Output]:
        self.ctx.report("live.files", frames=self.written, dir=self.params.dir)
        return []
