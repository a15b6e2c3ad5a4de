"""Depth estimated from the face mesh (capture.video) against a real TrueDepth sensor.

Data: ../shared/realdata/truedepth_face_sequence (34 frames, one man turning his head; colour
720x1280, sensor depth 360x640 registered to it). Per frame mediapipe's mesh (with iris) is found
on the colour image and turned into depth by each method below, all measured in this run on the
same pixels: inside the face as the mesh's triangles cover it, where the sensor has a reading
(depth pixel (x, y) = colour pixel (2x, 2y)).

- `naive` (baseline, the first measurement of issue 20): the 468 vertices scattered and linearly
  interpolated (scipy griddata), mediapipe's raw z as depth relief along the optical axis, the
  distance from each frame's own iris (11.7 mm);
- `triangles`: the same, rasterised over the mesh's triangles instead of scattered points;
- `view_ray`: triangles, relief along the ray to the face (mesh_depth.vertex_depths), still the
  per-frame iris;
- `facesynth`: what capture.video writes (mesh_depth.face_depth_map): triangles, view ray, one
  face size per video measured from the iris on every frame.

Figures, per method: |error| in mm, raw and after fitting the offset D0 per frame (the median
difference: what face.crop's nose-depth shift does), as the median over frames of each frame's
median and 90th percentile, and pooled over all pixels; the error of the estimated nose-tip distance;
CPU ms per frame. Prints JSON.

    .venv/bin/python benchmarks/mesh_depth.py [--frames 0,1,2] [--per-frame]
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from facesynth.capture.video import mesh_depth as md
from facesynth.depth.testdata_realdepth import load_truedepth_sequence
from facesynth.face.landmarks_mediapipe import FaceMeshLandmarker

NOSE_TIP = 1


def iris_distance_depths(mesh: np.ndarray, fx: float) -> np.ndarray:
    """Vertex depths as the naive method has them: the iris centres at fx x 11.7 / iris px, raw z along the axis."""
    z_iris = fx * md.IRIS_MM / md.iris_diameter_px(mesh)
    z_ref = z_iris / (1 + mesh[list(md.IRIS_CENTRES), 2].mean() / fx)
    return z_ref * (1 + mesh[:, 2] / fx)


def view_ray_per_frame_iris(mesh: np.ndarray, k: dict) -> np.ndarray:
    """View-ray relief with this frame's own iris scale (the face size this one frame implies)."""
    size = md.rigid_size_px(mesh) * md.IRIS_MM / md.iris_diameter_px(mesh)
    return md.vertex_depths(mesh, size, k["fx"], k["fy"], k["cx"], k["cy"])


def naive_map(mesh: np.ndarray, z: np.ndarray, h: int, w: int) -> np.ndarray:
    from scipy.interpolate import griddata

    gy, gx = np.mgrid[0:h, 0:w]
    d = griddata(mesh[:468, :2], z[:468], (gx, gy), method="linear")
    return np.nan_to_num(d, nan=0.0)


def errors(est: np.ndarray, sensor: np.ndarray, mask: np.ndarray) -> dict:
    e = est[mask] - sensor[mask]
    off = float(np.median(e))
    a, b = np.abs(e), np.abs(e - off)
    return {"median": float(np.median(a)), "p90": float(np.percentile(a, 90)), "offset_d0": off,
            "median_after_d0": float(np.median(b)), "p90_after_d0": float(np.percentile(b, 90)),
            "pixels": int(mask.sum()), "_abs": a, "_abs_d0": b}


def nose_sensor(mesh: np.ndarray, sensor: np.ndarray) -> float:
    x, y = (np.round(mesh[NOSE_TIP, :2] / 2)).astype(int)
    win = sensor[y - 1:y + 2, x - 1:x + 2]
    return float(np.median(win[win > 0])) if (win > 0).any() else float("nan")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", default=None, help="comma-separated frame indices (default: all 34)")
    ap.add_argument("--per-frame", action="store_true", help="include every frame's figures")
    args = ap.parse_args(argv)
    indices = [int(i) for i in args.frames.split(",")] if args.frames else None
    seq = load_truedepth_sequence(indices)
    k = seq.intrinsics
    h, w = seq.color.shape[1:3]
    with FaceMeshLandmarker() as fl:
        found = [fl.detect(rgb) for rgb in seq.color]
    meshes = {i: f[0].mesh.astype(np.float64) for i, f in zip(seq.indices, found) if len(f) == 1}
    scale = md.calibrate_face_size(meshes.values())
    methods = {
        "naive": lambda m: naive_map(m, iris_distance_depths(m, k["fx"]), h, w),
        "triangles": lambda m: md.rasterise_depth(m[:, :2], iris_distance_depths(m, k["fx"]), md.triangles(), h, w),
        "view_ray": lambda m: md.rasterise_depth(m[:, :2], view_ray_per_frame_iris(m, k), md.triangles(), h, w),
        "facesynth": lambda m: md.face_depth_map(m, scale.size_mm, k, h, w).astype(np.float64),
    }
    methods["facesynth"](next(iter(meshes.values())))  # compile the rasteriser before timing
    per_frame, pooled = [], {n: {"abs": [], "abs_d0": [], "ms": []} for n in methods}
    for j, i in enumerate(seq.indices):
        if i not in meshes:
            per_frame.append({"frame": i, "faces": len(found[j])})
            continue
        m, sensor = meshes[i], seq.depth_mm[j]
        maps = {}
        for name, fn in methods.items():
            t = time.process_time()  # CPU time: the machine is shared, wall time says more about the others
            maps[name] = fn(m)[::2, ::2]
            pooled[name]["ms"].append((time.process_time() - t) * 1000)
        mask = (maps["facesynth"] > 0) & (sensor > 0)  # inside the face (the mesh's triangles), measured
        row = {"frame": i, "nose_sensor_mm": nose_sensor(m, sensor)}
        for name, est in maps.items():
            r = errors(est, sensor, mask)
            pooled[name]["abs"].append(r.pop("_abs"))
            pooled[name]["abs_d0"].append(r.pop("_abs_d0"))
            x, y = (np.round(m[NOSE_TIP, :2] / 2)).astype(int)
            r["nose_distance_error_mm"] = float(est[y, x] - row["nose_sensor_mm"])
            row[name] = r
        per_frame.append(row)
    done = [r for r in per_frame if "naive" in r]
    summary = {}
    for name in methods:
        rows = [r[name] for r in done]
        a, b = np.concatenate(pooled[name]["abs"]), np.concatenate(pooled[name]["abs_d0"])
        nose = np.array([r["nose_distance_error_mm"] for r in rows])
        summary[name] = {
            "median_of_frames": {key: float(np.median([r[key] for r in rows]))
                                 for key in ("median", "p90", "median_after_d0", "p90_after_d0")},
            "pooled": {"median": float(np.median(a)), "p90": float(np.percentile(a, 90)),
                       "median_after_d0": float(np.median(b)), "p90_after_d0": float(np.percentile(b, 90))},
            "nose_distance_error_mm": {"mean": float(nose.mean()), "mean_abs": float(np.abs(nose).mean()),
                                       "min": float(nose.min()), "max": float(nose.max())},
            "cpu_ms_per_frame_median": float(np.median(pooled[name]["ms"])),
        }
    base = summary["naive"]["median_of_frames"]
    for name in methods:
        s = summary[name]["median_of_frames"]
        summary[name]["vs_naive"] = {key: s[key] / base[key] for key in ("median_after_d0", "p90_after_d0")}
    out = {"data": "truedepth_face_sequence", "frames": len(seq.indices), "frames_with_one_face": len(done),
           "face_scale": scale.to_dict(), "intrinsics": k, "summary": summary}
    if args.per_frame:
        out["per_frame"] = per_frame
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
