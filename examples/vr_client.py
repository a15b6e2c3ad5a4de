"""A minimal VR-side subscriber of the live RGBD stream (graphs/live_inference.yaml, live.msgpack_out).

Connects to the TCP stream, decodes each length-prefixed msgpack frame into numpy arrays
(rgb HxWx3 uint8, depth in mm, optional xyz+rgb points) and prints fps and latency once a second.
Latency here is landmarks received by the graph -> frame received here (same machine clock);
with --send it also feeds the graph itself: a wobbling landmark set over msgpack (port 9001),
so you can try the whole loop without a camera:

  facesynth graph run graphs/live_inference.yaml --local &
  python examples/vr_client.py --send --seconds 10 --save last_frame.npz

Only numpy and msgpack are needed on the client side (the decoder below is the protocol, spelled out).
"""
from __future__ import annotations

import argparse
import socket
import struct
import threading
import time

import msgpack
import numpy as np


def read_frames(sock: socket.socket, max_bytes: int = 64 * 1024 * 1024):
    """Yield decoded frames from a connected socket: 4-byte big-endian length, then msgpack."""
    buf = bytearray()
    while True:
        data = sock.recv(1 << 20)
        if not data:
            return
        buf += data
        while len(buf) >= 4:
            (n,) = struct.unpack_from(">I", buf)
            if n > max_bytes:
                raise ValueError(f"frame of {n} bytes is over the limit; not a facesynth stream?")
            if len(buf) < 4 + n:
                break
            body = bytes(buf[4:4 + n])
            del buf[:4 + n]
            yield decode(body, max_bytes)


def decode(body: bytes, max_bytes: int) -> dict:
    msg = msgpack.unpackb(body, raw=False, max_bin_len=max_bytes, max_str_len=1024, max_array_len=64,
                          max_map_len=64)
    h, w = msg["size"]
    frame = dict(msg)
    frame["rgb"] = np.frombuffer(msg["rgb"], np.uint8).reshape(h, w, 3)
    frame["depth_mm"] = np.frombuffer(msg["depth"], "<u2").reshape(h, w) * np.float32(msg["depth_unit_mm"])
    if "points" in msg:  # x, y, z in mm (the crop's virtual camera) + r, g, b in 0..255
        frame["points"] = np.frombuffer(msg["points"], "<f4").reshape(msg["n_points"], 6)
    return frame


def send_landmarks(host: str, port: int, stop: threading.Event, rate: float = 60.0, size: int = 256) -> None:
    """A wobbling face-like landmark set, sent as msgpack messages (the documented input schema)."""
    angles = np.linspace(0, 2 * np.pi, 70, endpoint=False)
    base = np.stack([np.cos(angles), np.sin(angles)], 1) * size * 0.3 + size / 2
    s = None
    while s is None and not stop.is_set():  # the graph may still be starting
        try:
            s = socket.create_connection((host, port), timeout=2)
        except OSError:
            time.sleep(0.1)
    if s is None:
        return
    with s:
        seq = 0
        while not stop.is_set():
            seq += 1
            pts = (base + 4 * np.sin(seq / 10.0)).astype("<f4")
            body = msgpack.packb({"v": 1, "seq": seq, "t": time.time(), "landmarks": pts.tobytes()},
                                 use_bin_type=True)
            s.sendall(struct.pack(">I", len(body)) + body)
            time.sleep(1.0 / rate)


def main() -> int:
    ap = argparse.ArgumentParser(description="print fps/latency of a facesynth live RGBD stream")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9002)
    ap.add_argument("--seconds", type=float, default=0, help="stop after this long (0 = until the stream ends)")
    ap.add_argument("--send", action="store_true", help="also send test landmarks to --send-port")
    ap.add_argument("--send-port", type=int, default=9001)
    ap.add_argument("--size", type=int, default=256, help="network image size of the model (for --send)")
    ap.add_argument("--save", help="write the last frame to this .npz")
    a = ap.parse_args()
    stop = threading.Event()
    if a.send:
        threading.Thread(target=send_landmarks, args=(a.host, a.send_port, stop, 60.0, a.size), daemon=True).start()
    sock = None
    for _ in range(200):  # the graph's output server starts with its first frame
        try:
            sock = socket.create_connection((a.host, a.port), timeout=5)
            break
        except OSError:
            time.sleep(0.1)
    if sock is None:
        print(f"no stream at {a.host}:{a.port}")
        return 1
    t_start = t_print = time.time()
    n, lat, last = 0, [], None
    with sock:
        for frame in read_frames(sock):
            now = time.time()
            n += 1
            lat.append((now - frame["t_recv"]) * 1000.0)
            last = frame
            if now - t_print >= 1.0:
                pts = f", {len(frame['points'])} points" if "points" in frame else ""
                print(f"{n / (now - t_print):6.1f} fps  latency p50 {np.median(lat):6.2f} ms  max {max(lat):6.2f} ms"
                      f"  seq {frame['seq']} from {frame['source']}  {frame['size']}{pts}", flush=True)
                t_print, n, lat = now, 0, []
            if a.seconds and now - t_start >= a.seconds:
                break
    stop.set()
    if a.save and last is not None:
        np.savez_compressed(a.save, rgb=last["rgb"], depth_mm=last["depth_mm"],
                            **({"points": last["points"]} if "points" in last else {}))
        print(f"saved {a.save}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
