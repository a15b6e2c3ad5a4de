"""Depth filling: facesynth's depth.fill against the original FDCBOP, on the same real frames.

Data: for every real frame in ../shared/realdata (NYU, SUN, TUM, Redwood, Azure Kinect),
the size x size crop with the fewest sensor holes; then about `fraction` of its measured
pixels are removed in realistic shapes (blobs, depth-edge dropouts, stripes, hole masks
copied from the other frames: facesynth/depth/testdata_hole_masks.py). Both methods fill the whole
crop; the error is measured on the removed pixels only (their true depth is known).

Prints one JSON object: per method ms/frame (median), mean / p95 / median absolute error in
mm over all removed pixels, and the speed ratio FDCBOP / depth.fill. The naive nearest-
neighbour fill is reported too, as a floor any method should beat. The FDCBOP part is the
slow one (seconds per crop): --frames bounds it.

    .venv/bin/python benchmarks/depth_fill.py --quick
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from facesynth.depth.fill import fill_depth  # noqa: E402
from facesynth.depth.testdata_hole_masks import make_holes  # noqa: E402
from facesynth.depth.testdata_realdepth import DepthFrame, least_holes_crop, load_all, realdata_root  # noqa: E402


def make_cases(size: int = 256, fraction: float = 0.03, seed: int = 0, frames: int | None = None,
               root: Path | None = None) -> list[tuple[DepthFrame, np.ndarray, np.ndarray]]:
    """[(crop, depth with removed pixels, removed mask)] for the real frames, deterministic."""
    real = load_all(root)
    donors = [f.depth == 0 for f in real]
    cases = []
    for i, f in enumerate(real):
        crop = least_holes_crop(f, size) if size else f
        others = [m for j, m in enumerate(donors) if j != i]
        removed = make_holes(crop.depth, fraction, seed=seed + i, donors=others)
        holed = crop.depth.copy()
        holed[removed] = 0
        cases.append((crop, holed, removed))
    if frames is not None and frames < len(cases):
        pick = np.linspace(0, len(cases) - 1, frames).round().astype(int)
        cases = [cases[k] for k in pick]
    return cases


def measure(name: str, fill, cases, repeat: int = 1) -> dict:
    """Run `fill(depth, color) -> depth` on every case; time (median ms) and errors on removed pixels."""
    times, errs = [], []
    for crop, holed, removed in cases:
        best = None
        for _ in range(repeat):
            t0 = time.perf_counter()
            out = fill(holed, crop.color)
            dt = time.perf_counter() - t0
            best = dt if best is None else min(best, dt)
        times.append(best)
        if not np.array_equal(out[holed > 0], holed[holed > 0]):
            raise AssertionError(f"{name} changed measured pixels of {crop.name}")
        e = np.abs(out[removed].astype(np.float64) - crop.depth[removed].astype(np.float64))
        errs.append(e)
    e = np.concatenate(errs)
    return {"method": name, "frames": len(cases), "ms_per_frame": round(1000 * float(np.median(times)), 3),
            "mean_abs_err_mm": round(float(e.mean()), 2), "p95_abs_err_mm": round(float(np.percentile(e, 95)), 1),
            "median_abs_err_mm": round(float(np.median(e)), 1), "removed_px": int(e.size)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256, help="crop size (0 = full frames: FDCBOP takes minutes)")
    ap.add_argument("--fraction", type=float, default=0.03, help="share of measured pixels removed")
    ap.add_argument("--frames", type=int, default=9, help="frames (9 = every real frame; FDCBOP takes seconds each)")
    ap.add_argument("--quick", action="store_true", help="3 frames")
    ap.add_argument("--loop", action="store_true",
                    help="FDCBOP with the original's Python loop over candidates (slower; default batches them)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if not (realdata_root() / "nyu_tum_sun_redwood_open3d").is_dir():
        print(json.dumps({"error": f"real data not found at {realdata_root()}"}))
        return 1
    from fdcbop import FDCBOP

    frames = 3 if args.quick else args.frames
    cases = make_cases(args.size, args.fraction, args.seed, frames)
    fill_depth(cases[0][1], cases[0][0].color)  # compile numba once, outside the timing
    fast = measure("depth.fill (guided)", lambda d, c: fill_depth(d, c, method="guided"), cases, repeat=5)
    nearest = measure("nearest neighbour", lambda d, c: fill_depth(d, c, method="nearest"), cases, repeat=5)
    slow = measure("FDCBOP" + (" (loop)" if args.loop else ""),
                   lambda d, c: FDCBOP(vectorised=not args.loop, seed=args.seed)(d, c), cases)
    result = {
        "benchmark": "depth_fill",
        "data": {"frames": [c[0].name for c in cases], "size": args.size or "full",
                 "removed_fraction": args.fraction,
                 "holes_fraction_mean": round(float(np.mean([(c[1] == 0).mean() for c in cases])), 4)},
        "fdcbop": slow, "depth_fill": fast, "nearest": nearest,
        "speedup_vs_fdcbop": round(slow["ms_per_frame"] / max(fast["ms_per_frame"], 1e-6), 1),
        "error_ratio_vs_fdcbop": round(fast["mean_abs_err_mm"] / max(slow["mean_abs_err_mm"], 1e-9), 3),
        "target": {"speedup_at_least": 1000, "error_ratio_at_most": 1.0},
    }
    result["meets_target"] = bool(result["speedup_vs_fdcbop"] >= 1000 and result["error_ratio_vs_fdcbop"] <= 1.0)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
