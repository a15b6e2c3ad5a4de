"""`live.viewer`: watch the live RGBD frames as a coloured 3D point cloud in a browser or headset.

Serves (127.0.0.1 by default) a page that unprojects every frame with the crop's virtual camera
(generator.json: the face at D0, fx = size / crop_mm * D0) into millimetres and draws it with
three.js (shipped in facesynth/live/web/vendor). Reports `live.listening` with the page's URL
(what `facesynth view` opens) and `live.stats` like live.msgpack_out, latency measured from
landmarks received to the frame handed to the page's socket.
"""
from __future__ import annotations

import time

import numpy as np
from pydantic import Field

from facesynth.live.output_nodes import LiveStats
from facesynth.live.viewer_server import ViewerServer, encode_viewer_frame
from facesynth.nodes.base import Node, Output, Params
from facesynth.nodes.registry import register

DEFAULT_CROP_MM = 200.0  # only for models without normalisation (their depth is not metric anyway)


class ViewerParams(Params):
    host: str = Field("127.0.0.1", description="address to bind; 0.0.0.0 exposes the page to the network")
    port: int = Field(8090, ge=0, le=65535, description="HTTP + WebSocket port (0 = any free one)")
    max_clients: int = Field(8, ge=1, le=1000, description="browsers served at once; more are refused and counted")
    stride: int = Field(1, ge=1, le=16, description="send every n-th pixel per axis (less bandwidth for a headset on Wi-Fi)")
    compress: bool = Field(False, description="permessage-deflate the frames (a headset on a slow Wi-Fi link; "
                           "costs the graph CPU per frame and browser, so off by default)")
    point_size: float = Field(0.0, ge=0, le=100, description="initial point size in mm (0 = the pixel spacing at D0)")
    report_every_s: float = Field(1.0, gt=0, le=3600)


def virtual_camera(meta: dict, size: int) -> dict:
    """The crop's virtual pinhole camera (face/point_cloud.crop_intrinsics), from a model's metadata."""
    d0 = float(meta.get("d0_mm", 600.0))
    crop_mm = float(meta.get("crop_mm", DEFAULT_CROP_MM))
    f = size / crop_mm * d0
    c = (size - 1) / 2.0
    return {"fx": f, "fy": f, "cx": c, "cy": c, "d0_mm": d0, "crop_mm": crop_mm,
            "metric": bool(meta.get("metric", "d0_mm" in meta and "crop_mm" in meta))}


def viewer_frame(item: dict, stride: int = 1, point_size: float = 0.0) -> bytes:
    """One live RGBD payload as the page's binary WebSocket message (viewer_server.encode_viewer_frame)."""
    rgb, depth = item["rgb"], item["depth"]
    size = int(rgb.shape[0])
    if stride > 1:
        rgb, depth = rgb[::stride, ::stride], depth[::stride, ::stride]
    cam = virtual_camera(item.get("meta", {}), size)
    header = {"v": 1, "seq": int(item["seq"]), "source": str(item["source"]), "t_recv": float(item["t_recv"]),
              "t_sent": time.time(), "gen_ms": round(float(item.get("gen_ms", 0.0)), 3),
              "h": int(rgb.shape[0]), "w": int(rgb.shape[1]), "stride": int(stride),
              "depth_unit_mm": float(item["depth_unit_mm"]), "camera": cam,
              "point_size_mm": point_size or cam["crop_mm"] / size * stride,
              "calibrating": bool(item.get("calibrating", False))}
    if item.get("t_sender") is not None:
        header["t_sender"] = float(item["t_sender"])
    return encode_viewer_frame(header, np.ascontiguousarray(rgb, np.uint8).tobytes(),
                               np.ascontiguousarray(depth, "<u2").tobytes())


@register
class Viewer(Node):
    kind = "live.viewer"
    summary = "Serve a browser page (127.0.0.1) drawing the live RGBD frames as a metric 3D point cloud; WebXR"
    Params = ViewerParams
    inputs = {"rgbd": "live RGBD payload (live.generator)"}
    live = True
    max_replicas = 1

    async def setup(self) -> None:
        p = self.params
        self.server = ViewerServer(p.host, p.port, p.max_clients, compress=p.compress)
        host, port = await self.server.start()
        self.stats = LiveStats()
        self._next_report = time.monotonic() + p.report_every_s
        self.ctx.report("live.listening", protocol="viewer/http+ws", host=host, port=port, url=self.server.url)

    def _counts(self) -> dict:
        st = self.server.status()
        return {"clients": st["clients"], "viewer_rejected": st["rejected"], "viewer_replaced": st["replaced_frames"],
                "url": st["url"]}

    async def process(self, port: str, item: dict) -> list[Output]:
        if self.stats.is_late(item):
            self.stats.add_late()
            return []
        self.server.broadcast(viewer_frame(item, self.params.stride, self.params.point_size))
        self.stats.add(item, time.time())
        if time.monotonic() >= self._next_report:
            summary = self.stats.summary()
            self.server.status_extra = {"frames": summary["frames"], "fps": summary["fps"]}
            self.ctx.report("live.stats", **self._counts(), **summary)
            self._next_report = time.monotonic() + self.params.report_every_s
        return []

    async def close(self) -> None:
        if getattr(self, "server", None) is None:
            return
        self.ctx.report("live.stats", final=True, **self._counts(), **self.stats.summary())
        await self.server.close()
