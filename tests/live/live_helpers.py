"""Shared pieces of the live tests: a tiny exported generator, landmark sets, an RGBD client,
and the expected frame computed directly (TorchScript + drawing + mask), not through the nodes."""
from __future__ import annotations

import functools
import json
import socket
import threading
import time
import warnings
from pathlib import Path

import numpy as np

SIZE = 64
META = {"d0_mm": 600.0, "face_depth_mm": 80.0, "near_mm": 20.0, "crop_mm": 200.0, "size": SIZE}


def export_tiny_model(out_dir: Path, extra_meta: dict | None = None) -> Path:
    """A 64 px, ngf 4 U-Net whose depth output saturates, so part of every frame is background.
    `extra_meta` goes into generator.json too (e.g. landmark_stats for live.condition)."""
    import torch

    from facesynth.model.export import export_generator
    from facesynth.model.generator import UNetGenerator

    torch.manual_seed(0)
    gen = UNetGenerator(SIZE, 4).eval()
    with torch.no_grad():  # a large last-layer depth gain: tanh saturates to +-1 -> mixed mask
        gen.ups[0][1].weight[:, 3] *= 400.0
        gen.ups[0][1].bias[3] = -3.0
    export_generator(gen, out_dir, {**META, **(extra_meta or {})}, onnx=False)
    return out_dir


def landmark_sets(n: int, seed: int = 0) -> np.ndarray:
    """n distinct (70, 2) float32 landmark sets inside a 64 px image."""
    rng = np.random.default_rng(seed)
    return rng.uniform(6.0, SIZE - 6.0, size=(n, 70, 2)).astype(np.float32)


@functools.lru_cache(maxsize=4)
def _load(path: str):
    import torch

    with warnings.catch_warnings():  # TorchScript is deprecated upstream but is the shipped format
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(path).eval()


def expected_rgbd(model_dir: Path, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """rgb uint8 and depth uint16 (0.1 mm) straight from the traced generator."""
    import torch

    from facesynth.model.generator import apply_background_mask
    from facesynth.face.depth_norm import unit_to_mm
    from facesynth.face.drawing import draw_landmarks

    module = _load(str(model_dir / "generator.ts.pt"))
    x = torch.from_numpy(draw_landmarks(points, SIZE)[None, None])
    with torch.inference_mode(), torch.jit.optimized_execution(False):  # no slow profiling runs
        y = apply_background_mask(module(x).numpy()[0], channel_axis=0)
    rgb = np.clip(np.rint((y[:3].transpose(1, 2, 0) + 1.0) * 127.5), 0, 255).astype(np.uint8)
    mm = unit_to_mm(y[3], META["d0_mm"], META["face_depth_mm"])
    return rgb, np.clip(np.rint(mm * 10.0), 0, 65535).astype(np.uint16)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FrameClient(threading.Thread):
    """Connects (retrying) to a live.msgpack_out server and collects decoded frames until EOF."""

    def __init__(self, port: int, connect_timeout_s: float = 60.0):
        super().__init__(daemon=True)
        self.port, self.connect_timeout_s = port, connect_timeout_s
        self.frames: list[dict] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        from facesynth.live import protocol as lp

        try:
            deadline = time.monotonic() + self.connect_timeout_s
            while True:
                try:
                    sock = socket.create_connection(("127.0.0.1", self.port), timeout=1.0)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            sock.settimeout(120.0)
            dec = lp.StreamDecoder(lp.MAX_FRAME_MESSAGE)
            with sock:
                while data := sock.recv(1 << 20):
                    self.frames.extend(lp.decode_frame(b) for b in dec.feed(data))
        except ConnectionResetError:  # the server went away while we connected: the stream ended
            pass
        except BaseException as exc:  # reported by the test
            self.error = exc

    def sources(self) -> set[str]:
        return {f["source"] for f in list(self.frames)}


def events(run_log: Path, name: str) -> list[dict]:
    recs = [json.loads(line) for line in Path(run_log).read_text().splitlines() if line.strip()]
    return [r for r in recs if r.get("type") == "event" and r.get("name") == name]
