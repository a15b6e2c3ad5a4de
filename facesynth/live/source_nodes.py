"""Live landmark sources: OSC/UDP, msgpack/TCP, a file replay, and a webcam or recording.

Every source emits one payload per accepted landmark set on port `landmarks`:
  {"landmarks": (70, 2) float32 network px, "seq": int (per source), "source": node id,
   "t_recv": unix s when it arrived, "t_sender": sender's t or None, "drops": bad messages so far}
Bad input is dropped and counted by reason (never raised): a live graph keeps running whatever
the network sends. Counts go out as `live.input` events. Sockets bind 127.0.0.1 unless told.
A source ends (and so the graph) after `max_messages`, after `duration_s`, or when no valid
message came for `idle_timeout_s` after the first one; by default it runs until interrupted.
"""
from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any, AsyncIterator, Literal

import numpy as np
from pydantic import Field

from facesynth.errors import InputDataError, MissingDependencyError
from facesynth.nodes.base import Node, Output, Params
from facesynth.nodes.registry import register
from facesynth.live import protocol as lp

PORT_DOC = "live landmarks payload {landmarks (70,2) f32 px, seq, source, t_recv, t_sender, drops}"


class SourceParams(Params):
    size: int = Field(256, ge=32, le=4096, description="network image size; points far outside it are dropped")
    max_messages: int = Field(0, ge=0, description="end after this many accepted messages (0 = never)")
    duration_s: float = Field(0.0, ge=0, description="end after this many seconds (0 = never)")
    idle_timeout_s: float = Field(0.0, ge=0, description="end when no valid message came for this long after the first (0 = never)")
    queue: int = Field(2, ge=1, le=1000, description="accepted messages held while the graph is busy (oldest dropped)")
    report_every_s: float = Field(1.0, gt=0, le=3600)


class NetParams(SourceParams):
    host: str = Field("127.0.0.1", description="address to bind; 0.0.0.0 exposes it to the network")


class _LiveSource(Node):
    """Queue + counters + end conditions shared by every live source; subclasses feed `_accept`."""

    live = True
    max_replicas = 1
    outputs = {"landmarks": PORT_DOC}

    def __init__(self, params: Any, ctx: Any):
        super().__init__(params, ctx)
        self.received = 0
        self.accepted = 0
        self.superseded = 0
        self.reasons: Counter[str] = Counter()
        self._queue: asyncio.Queue | None = None
        self._seq = 0
        self.calibrations = 0  # `calibrate` requests so far (sent with every payload: survives drops)

    @property
    def drops(self) -> int:
        return sum(self.reasons.values())

    def _q(self) -> asyncio.Queue:
        if self._queue is None:
            self._queue = asyncio.Queue()
        return self._queue

    def _reject(self, reason: str) -> None:
        self.received += 1
        self.reasons[reason] += 1

    def _accept(self, points: np.ndarray, t_recv: float, t_sender: float | None = None,
                calibrate: bool = False) -> None:
        self.received += 1
        self.calibrations += bool(calibrate)
        q = self._q()
        while q.qsize() >= self.params.queue:
            q.get_nowait()
            self.superseded += 1
        q.put_nowait((points, t_recv, t_sender))

    def counts(self) -> dict:
        return {"received": self.received, "accepted": self.accepted, "drops": self.drops,
                "reasons": dict(self.reasons), "superseded": self.superseded,
                "connections": getattr(self, "connections", None)}

    async def produce(self) -> AsyncIterator[Output]:
        p = self.params
        t_start = time.monotonic()
        last_ok: float | None = None
        next_report = t_start + p.report_every_s
        try:
            while not (p.max_messages and self.accepted >= p.max_messages):
                now = time.monotonic()
                limits = [next_report - now]
                if p.duration_s:
                    limits.append(t_start + p.duration_s - now)
                if p.idle_timeout_s and last_ok is not None:
                    limits.append(last_ok + p.idle_timeout_s - now)
                if (p.duration_s and now - t_start >= p.duration_s) or (
                        p.idle_timeout_s and last_ok is not None and now - last_ok >= p.idle_timeout_s):
                    return
                if now >= next_report:
                    self.ctx.report("live.input", **self.counts())
                    next_report = now + p.report_every_s
                    continue
                try:
                    pts, t_recv, t_sender = await asyncio.wait_for(self._q().get(), max(1e-3, min(limits)))
                except asyncio.TimeoutError:
                    continue
                last_ok = time.monotonic()
                self.accepted += 1
                self._seq += 1
                yield Output("landmarks", {"landmarks": pts, "seq": self._seq, "source": self.ctx.node_id,
                                           "t_recv": t_recv, "t_sender": t_sender, "drops": self.drops,
                                           "calibrations": self.calibrations})
        finally:
            self.ctx.report("live.input", final=True, **self.counts())


class _OscProtocol(asyncio.DatagramProtocol):
    def __init__(self, node: "OscIn"):
        self.node = node

    def datagram_received(self, data: bytes, addr: Any) -> None:
        t = time.time()
        try:
            pts = lp.decode_osc_landmarks(data, self.node.params.size)
        except lp.ProtocolError as exc:
            self.node._reject(exc.reason)
            return
        self.node._accept(pts, t)

    def error_received(self, exc: Exception) -> None:  # ICMP errors etc.: never fatal
        self.node.reasons["socket_error"] += 1


class OscParams(NetParams):
    port: int = Field(9000, ge=0, le=65535, description="UDP port (the original live tools use 9000)")


@register
class OscIn(_LiveSource):
    kind = "live.osc_in"
    summary = "Landmarks from OSC '/landmarks' (140 float32 x0,y0..x69,y69) on UDP; bad datagrams dropped+counted"
    Params = OscParams

    async def setup(self) -> None:
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(
            lambda: _OscProtocol(self), local_addr=(self.params.host, self.params.port))
        self.bound = self._transport.get_extra_info("sockname")[:2]
        self.ctx.report("live.listening", protocol="osc/udp", host=self.bound[0], port=self.bound[1])

    async def close(self) -> None:
        if getattr(self, "_transport", None) is not None:
            self._transport.close()


class MsgpackInParams(NetParams):
    port: int = Field(9001, ge=0, le=65535, description="TCP port; messages are 4-byte big-endian length + msgpack")
    max_connections: int = Field(16, ge=1, le=4096, description="clients connected at once; "
                                 "further ones are closed at once and counted (refused)")
    client_idle_timeout_s: float = Field(30.0, ge=0, description="close a client that sent nothing for this "
                                         "long, counted (idle_closed); 0 = never")


@register
class MsgpackIn(_LiveSource):
    kind = "live.msgpack_in"
    summary = "Landmarks as length-prefixed msgpack over TCP (docs/live_protocol.md); up to max_connections clients"
    Params = MsgpackInParams

    async def setup(self) -> None:
        # every held connection costs a file descriptor and memory: cap them, close idle ones
        self.connections = self.open_connections = self.refused = self.idle_closed = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._server = await asyncio.start_server(self._client, self.params.host, self.params.port,
                                                  limit=lp.MAX_LANDMARK_MESSAGE * 4)
        self.bound = self._server.sockets[0].getsockname()[:2]
        self.ctx.report("live.listening", protocol="msgpack/tcp", host=self.bound[0], port=self.bound[1])

    def counts(self) -> dict:
        return {**super().counts(), "open_connections": self.open_connections, "refused": self.refused,
                "idle_closed": self.idle_closed}

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.open_connections >= self.params.max_connections:
            self.refused += 1
            writer.transport.abort()  # close at once (RST): the descriptor is freed now
            return
        self.connections += 1
        self.open_connections += 1
        self._writers.add(writer)
        dec: lp.StreamDecoder | None = lp.StreamDecoder(lp.MAX_LANDMARK_MESSAGE)
        idle_s = self.params.client_idle_timeout_s or None
        try:
            while True:
                try:
                    data = await asyncio.wait_for(reader.read(65536), idle_s)
                except asyncio.TimeoutError:
                    self.idle_closed += 1
                    return
                if not data:
                    return
                t = time.time()
                for body in dec.feed(data):
                    try:
                        msg = lp.decode_landmark_message(body, self.params.size)
                    except lp.ProtocolError as exc:
                        self._reject(exc.reason)
                        continue
                    self._accept(msg["landmarks"], t, msg["t"], msg.get("calibrate", False))
        except lp.ProtocolError as exc:  # an impossible length prefix: this stream cannot go on
            self._reject(exc.reason)
            dec = None  # what follows it is not a message: not counted again as truncated
        except (ConnectionError, OSError):
            self.reasons["connection_error"] += 1
        except asyncio.CancelledError:  # the graph is stopping (and 3.11 logs a cancelled handler as an error)
            pass
        finally:
            self.open_connections -= 1
            self._writers.discard(writer)
            if dec is not None and dec.pending:  # the connection ended (EOF, reset, idle) inside a message
                self._reject("truncated")
            writer.close()

    async def close(self) -> None:
        if getattr(self, "_server", None) is not None:
            self._server.close()
            for writer in list(self._writers):  # held clients too: their descriptors go now
                writer.close()


class FileParams(Params):
    store: str | None = Field(None, description="frame store to replay from (with `array`)")
    array: str = Field("crop/landmarks", description="(N, 70, 2) landmarks array in the store")
    split: Literal["all", "train", "eval"] = Field("all", description="replay only this capture split (raw/split)")
    npy: str | None = Field(None, description="a .npy of (N, 70, 2) landmarks instead of a store")
    rate_hz: float = Field(30.0, ge=0, le=10_000, description="emission rate; 0 = as fast as the graph takes them")
    frames: int = Field(0, ge=0, description="emit this many (0 = every frame once, or forever with loop)")
    loop: bool = False
    start_delay_s: float = Field(0.0, ge=0, le=600)


def load_landmark_file(store: str | None, array: str, npy: str | None, split: str = "all") -> np.ndarray:
    """(N, 70, 2) float32 landmarks from a .npy or a store array (frames flagged ok, of `split`, only)."""
    if npy:
        arr = np.load(npy, allow_pickle=False)
    elif store:
        from facesynth.store.frame_store import FrameStore

        st = FrameStore.open(store, mode="r")
        arr = np.asarray(st.read(array))
        keep = np.ones(len(arr), bool)
        ok_name = array.rsplit("/", 1)[0] + "/ok"
        if "/" in array and st.has(ok_name):  # replay only the frames that exist
            keep &= np.asarray(st.read(ok_name), bool)[:len(arr)]
        if split != "all":
            if not st.has("raw/split"):
                raise InputDataError(f"store {store} has no raw/split to pick the {split} frames from")
            keep &= np.asarray(st.read("raw/split"))[:len(arr)] == (0 if split == "train" else 1)
        arr = arr[keep]
    else:
        raise InputDataError("live.landmarks_file needs `npy` or `store`")
    arr = np.asarray(arr, np.float32)
    if arr.ndim != 3 or arr.shape[1:] != (lp.N_POINTS, 2) or not len(arr):
        raise InputDataError(f"expected (N, 70, 2) landmarks, got {arr.shape}")
    return arr


@register
class LandmarksFile(Node):
    kind = "live.landmarks_file"
    summary = "Replay (N,70,2) landmarks from a store's crop/landmarks or a .npy at a fixed rate (tests, benchmarks)"
    Params = FileParams
    outputs = {"landmarks": PORT_DOC}
    live = True
    max_replicas = 1

    async def setup(self) -> None:
        p = self.params
        self.points = await self.run_blocking(load_landmark_file, p.store, p.array, p.npy, p.split)

    async def produce(self) -> AsyncIterator[Output]:
        p, n = self.params, len(self.points)
        total = p.frames or (n if not p.loop else 0)
        await asyncio.sleep(p.start_delay_s)
        t0, i = time.monotonic(), 0
        while not total or i < total:
            if p.rate_hz:
                delay = t0 + i / p.rate_hz - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            pts = self.points[i % n]
            i += 1
            yield Output("landmarks", {"landmarks": pts, "seq": i, "source": self.ctx.node_id,
                                       "t_recv": time.time(), "t_sender": None, "drops": 0})


class FaceParams(Params):
    device: int = Field(0, ge=0, le=64, description="webcam index (when no `video` is given)")
    video: str | None = Field(None, description="a video file to read instead of a webcam")
    size: int = Field(256, ge=32, le=4096, description="network image size the points are mapped into")
    margin: float = Field(1.7, gt=1.0, le=4.0, description="crop side / the 68 landmarks' larger extent")
    frames: int = Field(0, ge=0, description="stop after this many frames (0 = until the stream ends)")


def to_network_px(points70: np.ndarray, size: int, margin: float = 1.7) -> np.ndarray:
    """Frame px -> network px at a scale set by the stable points (eye corners, nose bridge) only,
    so an open mouth never shrinks the face (live/conditioning.py; align to the model there)."""
    from facesynth.live.conditioning import frame_to_network_px

    return frame_to_network_px(points70, size, margin)


@register
class FaceLandmarks(Node):
    kind = "live.face_landmarks"
    summary = "Landmarks from a webcam or a video through mediapipe (optional; needs a camera or file)"
    Params = FaceParams
    outputs = {"landmarks": PORT_DOC}
    live = True
    max_replicas = 1

    async def setup(self) -> None:
        import cv2

        from facesynth.face import landmarks_mediapipe as lmm

        self.lmm = lmm
        src = self.params.video if self.params.video else self.params.device
        if self.params.video and not Path(self.params.video).is_file():
            raise MissingDependencyError(f"video {self.params.video} does not exist")
        self.cap = cv2.VideoCapture(src)
        if not self.cap.isOpened():
            raise MissingDependencyError(f"cannot open camera/video {src!r}; connect a webcam or give "
                                         "params.video, or use live.osc_in / live.msgpack_in instead")
        self.misses = 0

    def _next(self) -> tuple[bool, np.ndarray | None]:
        import cv2

        ok, bgr = self.cap.read()
        if not ok:
            return False, None
        face = self.lmm.landmarks70(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        return True, None if face is None else face.points

    async def produce(self) -> AsyncIterator[Output]:
        seq = 0
        while not self.params.frames or seq < self.params.frames:
            ok, pts = await self.run_blocking(self._next)
            if not ok:
                return
            t = time.time()
            if pts is None:
                self.misses += 1
                continue
            seq += 1
            yield Output("landmarks", {"landmarks": to_network_px(pts, self.params.size, self.params.margin),
                                       "seq": seq, "source": self.ctx.node_id, "t_recv": t,
                                       "t_sender": None, "drops": self.misses})

    async def close(self) -> None:
        if getattr(self, "cap", None) is not None:
            self.cap.release()
