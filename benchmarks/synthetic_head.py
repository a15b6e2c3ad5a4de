"""Milliseconds per frame of the synthetic RGB-D camera (capture.synthetic's renderer).

Prints one JSON object. Compared inside the same run, because the machines are shared and noisy:
- render_frame (maps + ray cast + shading + holes) vs its first stage alone (the expression's
  height/colour maps), both per frame of a seeded sequence;
- against a reference workload of the same image size: one bilinear cv2.remap of a float RGB
  image over every pixel (the cheapest possible per-pixel "render"); the ratio says how many
  such passes a frame costs, which travels between machines better than milliseconds.
Timings are medians of interleaved repeats; wall and process CPU time are both given.

    python benchmarks/synthetic_head.py [--frames 40] [--size 640x480] [--quick]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from facesynth.capture.synthetic.face_features import frame_maps  # noqa: E402
from facesynth.capture.synthetic.head import Intrinsics, render_frame, sample_sequence  # noqa: E402


def timed(fn) -> tuple[float, float]:
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 2)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--quick", action="store_true", help="10 frames")
    args = ap.parse_args(argv)
    n = 10 if args.quick else args.frames
    width, height = (int(v) for v in args.size.lower().split("x"))
    cam = Intrinsics.default(width, height)
    seq = sample_sequence(0, n)
    render_frame(seq[0], cam)  # build the cached identity and wall

    img = np.random.default_rng(0).random((height, width, 3), dtype=np.float32)
    u, v = np.meshgrid(np.arange(width, dtype=np.float32) * 0.97 + 3, np.arange(height, dtype=np.float32) * 0.97 + 3)
    times: dict[str, list[float]] = {k: [] for k in ("render", "maps", "reference")}
    cpu: dict[str, list[float]] = {k: [] for k in times}
    for p in seq:  # interleaved, so load changes hit all three alike
        for name, fn in (("render", lambda: render_frame(p, cam)), ("maps", lambda: frame_maps(p)),
                         ("reference", lambda: cv2.remap(img, u, v, cv2.INTER_LINEAR))):
            w, c = timed(fn)
            times[name].append(w)
            cpu[name].append(c)
    render, ref = statistics.median(times["render"]), statistics.median(times["reference"])
    result = {
        "benchmark": "synthetic_head", "size": f"{width}x{height}", "frames": n,
        "render_ms": ms(times["render"]), "render_cpu_ms": ms(cpu["render"]),
        "maps_ms": ms(times["maps"]), "maps_cpu_ms": ms(cpu["maps"]),
        "reference_remap_ms": ms(times["reference"]),
        "render_over_reference": round(render / ref, 1),
        "fps": round(1.0 / render, 1),
        "cv2_threads": cv2.getNumThreads(),
    }
    print(json.dumps(result))
    print(f"{result['size']}: render {result['render_ms']} ms/frame (cpu {result['render_cpu_ms']}), "
          f"maps {result['maps_ms']} ms, = {result['render_over_reference']} x one full-frame remap", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
