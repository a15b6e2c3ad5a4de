"""Frames per second of Azure Kinect decode + depth/IR registration on the real recording.

Prints one JSON object. Everything is compared inside the same run, because the machines are
shared and noisy:
- decode only (MJPEG colour + big-endian depth/IR) vs decode + registration into 1280x720 colour;
- the registration kernels compiled (numba) vs the same code uncompiled (pure Python), on the
  same band of depth rows: the speed-up of the compiled path on equal work;
- decode with the damage checks (JPEG structure + Huffman walk, payload sizes, the cluster's
  CRC-32) vs the bare decoders on the same blocks: what finding damaged frames costs.
Timings are medians of interleaved repeats.

    python benchmarks/capture.py [--recording PATH] [--repeats 15] [--rows 12] [--quick]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT = ROOT / ".." / "shared" / "realdata" / "azure_kinect_mkv" / "recording.mkv"


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 3)


@contextlib.contextmanager
def uncompiled(module):
    """Swap the numba kernels of `module` for their Python originals (the reference implementation)."""
    names = ("correspond", "rasterize", "_draw_row", "_quad", "_triangle")
    saved = {n: getattr(module, n) for n in names}
    try:
        for n in names:
            setattr(module, n, saved[n].py_func)
        yield {n: getattr(module, n) for n in names}
    finally:
        for n, f in saved.items():
            setattr(module, n, f)


def _cluster_of(path: Path, pos: int) -> bytes:
    """The data of the Matroska cluster holding byte `pos` (what its CRC-32 covers, CRC element first)."""
    from facesynth.capture.kinect.mkv_blocks import header

    data = path.read_bytes()
    at = data.rfind(bytes.fromhex("1f43b675"), 0, pos)
    _, h, size = header(data, at)
    return data[at + h:at + h + size]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recording", default=str(DEFAULT))
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--rows", type=int, default=12, help="depth rows for the compiled-vs-Python comparison")
    ap.add_argument("--threads", type=int, default=1, help="registration threads (0: all cores)")
    ap.add_argument("--quick", action="store_true", help="5 repeats, 6 rows")
    args = ap.parse_args(argv)
    if args.quick:
        args.repeats, args.rows = 5, 6
    path = Path(args.recording)
    if not path.exists():
        print(json.dumps({"error": f"recording not found: {path}"}))
        return 1

    from facesynth.capture import registration as reg_mod
    import cv2

    from facesynth.capture.jpeg_check import jpeg_damage
    from facesynth.capture.kinect.images import decode_color, decode_u16
    from facesynth.capture.kinect.recording import KinectRecording
    from facesynth.capture.kinect.mkv_blocks import MkvFile

    t0 = time.perf_counter()
    rec = KinectRecording(path)
    cal = rec.calibration()
    registration = reg_mod.Registration(cal, threads=args.threads)
    setup_s = time.perf_counter() - t0
    group = next(g for g in rec._groups() if isinstance(g, tuple))[1]  # the raw blocks of frame 0
    tr = rec.tracks
    blocks = {role: data for role, (data, _) in group.blocks.items()}

    def decode():
        rgb = decode_color(blocks["color"], tr["color"].fmt, tr["color"].width, tr["color"].height)
        depth = decode_u16(blocks["depth"], tr["depth"].fmt, tr["depth"].width, tr["depth"].height, "DEPTH")
        ir = decode_u16(blocks["ir"], tr["ir"].fmt, tr["ir"].width, tr["ir"].height, "IR")
        return rgb, depth, ir

    rgb, depth, ir = decode()
    cluster = _cluster_of(path, min(pos for _, pos in group.blocks.values()))
    jpeg = np.frombuffer(blocks["color"], np.uint8)

    def decode_unchecked():  # the bare decoders: what reading cost before the damage checks
        img = cv2.imdecode(jpeg, cv2.IMREAD_COLOR_RGB)
        d = np.frombuffer(blocks["depth"], ">u2").reshape(depth.shape).astype(np.uint16)
        i = np.frombuffer(blocks["ir"], ">u2").reshape(ir.shape).astype(np.uint16)
        return img, d, i

    def decode_checked(huffman: bool):  # what the reader does: CRC-32, then check + decode each image
        assert MkvFile._crc_damage(cluster, 0) is None
        rgb = decode_color(blocks["color"], tr["color"].fmt, tr["color"].width, tr["color"].height, huffman)
        d = decode_u16(blocks["depth"], tr["depth"].fmt, tr["depth"].width, tr["depth"].height, "DEPTH")
        i = decode_u16(blocks["ir"], tr["ir"].fmt, tr["ir"].width, tr["ir"].height, "IR")
        return rgb, d, i

    assert np.array_equal(decode_unchecked()[0], rgb)
    t0 = time.perf_counter()
    registration.register(depth, ir)  # compile (or load the numba cache)
    compile_s = time.perf_counter() - t0

    dec, full, regs, reader = [], [], [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        decode()
        dec.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        _, d, i = decode()
        registration.register(d, i)
        full.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        registration.register(depth, ir)
        regs.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for cap in KinectRecording(path).captures():
            registration.register(cap.depth, cap.ir)
        reader.append(time.perf_counter() - t0)

    # compiled vs uncompiled kernels on the same band of depth rows
    r0 = depth.shape[0] // 2
    r1 = r0 + args.rows
    u, v, z = registration.project(depth)
    vals = ir.astype(np.float32).reshape(1, -1)

    def band(fns, project: bool) -> float:
        zbuf = np.zeros(registration.color_shape, np.float32)
        out = np.zeros((1, *registration.color_shape), np.float32)
        t0 = time.perf_counter()
        if project:
            uu, vv, zz = (np.zeros(depth.shape, np.float32) for _ in range(3))
            fns["correspond"](depth[r0 - 1:r1], registration.xt[r0 - 1:r1], registration.yt[r0 - 1:r1],
                              registration.rot, registration.trans, registration.lens,
                              uu[r0 - 1:r1], vv[r0 - 1:r1], zz[r0 - 1:r1])
        fns["rasterize"](u, v, z, vals, zbuf, out, float(registration.max_step_mm), r0, r1)
        return time.perf_counter() - t0

    compiled = {"correspond": reg_mod.correspond, "rasterize": reg_mod.rasterize}
    fast, slow = [], []
    band(compiled, True)  # warm-up: these slices may be a new signature for numba
    for _ in range(max(3, args.repeats // 5)):
        fast.append(band(compiled, True))
        with uncompiled(reg_mod) as py:
            slow.append(band(py, True))

    unchecked, checked_auto, checked_full, walk = [], [], [], []
    for _ in range(args.repeats):  # interleaved, on the same blocks
        t0 = time.perf_counter()
        decode_unchecked()
        unchecked.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        decode_checked(False)  # jpeg_check auto on a file with cluster CRC-32s (k4arecord)
        checked_auto.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        decode_checked(True)  # jpeg_check full, or auto without CRC-32s
        checked_full.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        jpeg_damage(jpeg)
        walk.append(time.perf_counter() - t0)

    dec_ms, full_ms, reg_ms = median_ms(dec), median_ms(full), median_ms(regs)
    result = {
        "benchmark": "capture",
        "recording": str(path.resolve()),
        "color": [tr["color"].width, tr["color"].height, tr["color"].fmt],
        "depth": [tr["depth"].width, tr["depth"].height, cal.depth_mode],
        "repeats": args.repeats,
        "threads": registration.threads,
        "setup_s": round(setup_s, 3),
        "first_register_s": round(compile_s, 3),
        "decode_ms": dec_ms,
        "register_ms": reg_ms,
        "decode_register_ms": full_ms,
        "reader_open_demux_decode_register_ms": median_ms(reader),
        "decode_fps": round(1000 / dec_ms, 2),
        "decode_register_fps": round(1000 / full_ms, 2),
        "ratio_decode_register_vs_decode_only": round(dec_ms / full_ms, 3),
        "damage_checks": {
            "decode_unchecked_ms": median_ms(unchecked),
            "decode_checked_auto_ms": median_ms(checked_auto),
            "decode_checked_full_ms": median_ms(checked_full),
            "jpeg_full_check_ms": median_ms(walk),
            "ratio_auto_vs_unchecked": round(statistics.median(checked_auto) / statistics.median(unchecked), 3),
            "ratio_full_vs_unchecked": round(statistics.median(checked_full) / statistics.median(unchecked), 3),
            "ratio_full_vs_unchecked_with_registration": round(
                (statistics.median(checked_full) + statistics.median(regs))
                / (statistics.median(unchecked) + statistics.median(regs)), 3),
        },
        "kernel_band": {
            "rows": args.rows,
            "numba_ms": median_ms(fast),
            "python_ms": median_ms(slow),
            "speedup_vs_uncompiled": round(statistics.median(slow) / statistics.median(fast), 1),
        },
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
