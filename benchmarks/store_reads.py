"""What the store's damage checks cost: chunk reads with the missing-chunk check vs without,
and `store check` throughput.

Prints one JSON object. Both read variants run interleaved in the same process on the same
store (a fresh FrameStore handle per pass, as a node opens one), so the ratio is what the check
costs on this machine now. The store holds camera-sized frames (640x480 colour + depth,
chunks of 8), written through FrameStore like a capture.

    python benchmarks/store_reads.py [--frames 64] [--repeats 7] [--out DIR]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from facesynth.store.check import check_store  # noqa: E402
from facesynth.store.frame_store import FrameStore  # noqa: E402


def make_store(path: Path, frames: int) -> None:
    st = FrameStore.create(path, chunk_frames=8)
    rng = np.random.default_rng(0)
    for name, shape, dtype in (("raw/color", (480, 640, 3), np.uint8), ("raw/depth", (480, 640), np.uint16)):
        st.ensure_array(name, frames, shape, dtype)
    st.ensure_array("raw/ok", frames, (), bool, fill_value=False)
    for a in range(0, frames, 8):
        st.write("raw/color", a, rng.integers(0, 255, (8, 480, 640, 3), np.uint8))
        st.write("raw/depth", a, rng.integers(400, 900, (8, 480, 640)).astype(np.uint16))
        st.write("raw/ok", a, np.ones(8, bool))


def read_pass(path: Path, frames: int, check: bool) -> float:
    st = FrameStore.open(path, "r")
    st.checks_chunks = check
    t = time.perf_counter()
    for a in range(0, frames, 8):
        st.read("raw/color", a, a + 8)
        st.read("raw/depth", a, a + 8)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", default=None, help="where to build the store (default: a temporary folder)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.out) as tmp:
        path = Path(tmp) / "bench.zarr"
        make_store(path, args.frames)
        plain, checked = [], []
        for _ in range(args.repeats):
            plain.append(read_pass(path, args.frames, False))
            checked.append(read_pass(path, args.frames, True))
        t = time.perf_counter()
        report = check_store(path, repair=False)
        check_s = time.perf_counter() - t
    res = {"frames": args.frames, "repeats": args.repeats,
           "read_ms_plain": round(statistics.median(plain) * 1000, 2),
           "read_ms_checked": round(statistics.median(checked) * 1000, 2),
           "checked_over_plain": round(statistics.median(checked) / statistics.median(plain), 3),
           "store_check_s": round(check_s, 3), "store_check_chunks": report.chunks_checked,
           "store_check_frames_per_s": round(args.frames / check_s, 1), "clean": report.clean}
    print(json.dumps(res))


if __name__ == "__main__":
    main()
