"""`facesynth face ply|portrait`: metric point clouds from crops, and the face stage on one photo.

- `face ply STORE --frame N --out F.ply`: a stored crop back to coloured 3D points in mm (camera
  coordinates with the per-frame transform and the store's intrinsics; `--canonical` treats it like
  a network output: the face at D0 in front of the crop's virtual camera).
- `face portrait PHOTO --out DIR`: an iPhone TrueDepth portrait (.heic / MPO .jpg) through
  landmarks -> crop -> drawing -> PLY, writing crop.png, depth.png, drawing.png, face.ply, face.json.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from facesynth.errors import InputDataError, StoreError
from facesynth.input_files import check_output_path


def cmd_ply(args: argparse.Namespace) -> int:
    from facesynth.store.frame_store import FrameStore
    from facesynth.face.crop import Normalisation
    from facesynth.face.point_cloud import crop_points, write_ply

    check_output_path(args.out, "--out", example="frame.ply")
    st = FrameStore.open(args.store, mode="r")
    attrs = st.attrs
    if "normalisation" not in attrs:
        raise StoreError(f"store {args.store} has no 'normalisation' attribute: run face.crop first")
    try:  # a store from elsewhere may hold anything there
        norm = Normalisation.from_dict(attrs["normalisation"])
    except (TypeError, ValueError, ZeroDivisionError, AttributeError) as exc:
        raise StoreError(f"store {args.store}: its 'normalisation' attribute is not usable ({exc}); "
                         "run face.crop on it again (graph run --restart of the crop stage)") from None
    i = int(args.frame)
    ok = st.read("crop/ok")
    if not 0 <= i < len(ok) or not ok[i]:
        raise InputDataError(f"frame {i} has no crop in {args.store} ({int(ok.sum())} frames have one)")
    group = "fill/depth" if args.filled and st.has("fill/depth") else "crop/depth"
    depth = st.read(group, i, i + 1)[0]
    color = st.read("crop/color", i, i + 1)[0]
    if args.canonical:
        pts, cols = crop_points(color, depth, norm)
    else:
        intr = attrs.get("intrinsics")
        if not intr:
            raise StoreError(f"store {args.store} has no colour intrinsics: use --canonical")
        pts, cols = crop_points(color, depth, norm, st.read("crop/transform", i, i + 1)[0], intr)
    out = write_ply(args.out, pts, cols, binary=not args.ascii)
    print(json.dumps({"ply": str(out), "points": int(len(pts)), "depth": group, "d0_mm": norm.d0_mm}))
    return 0


def cmd_portrait(args: argparse.Namespace) -> int:
    import cv2

    from facesynth.face import crop as vc
    from facesynth.face.drawing import draw_landmarks_u8
    from facesynth.face.landmarks_mediapipe import FaceMeshLandmarker
    from facesynth.face.point_cloud import crop_points, point_at, write_ply
    from facesynth.capture.portrait.truedepth_portrait import load_portrait

    check_output_path(args.out, "--out", directory=True)
    p = load_portrait(args.photo)
    with FaceMeshLandmarker() as fl:
        faces = fl.detect(p.rgb)
    if len(faces) != 1:
        raise InputDataError(f"{args.photo}: {len(faces)} faces found, need exactly one")
    f = faces[0]
    fx = p.intrinsics["fx"]
    norm = vc.reference(f.points, p.depth_mm, fx, size=args.size, face_depth_mm=args.face_depth_mm)
    if norm is None:
        raise InputDataError(f"{args.photo}: no depth reading at the nose tip")
    c = vc.crop_frame(p.rgb, p.depth_mm, f.points, norm, fx)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out / "crop.png"), c.color[:, :, ::-1])
    cv2.imwrite(str(out / "depth.png"), c.depth)
    cv2.imwrite(str(out / "drawing.png"), draw_landmarks_u8(c.landmarks, args.size))
    pts, cols = crop_points(c.color, c.depth, norm, c.transform, p.intrinsics, mask=c.mask)
    write_ply(out / "face.ply", pts, cols)
    eyes = np.linalg.norm(point_at(c.landmarks[36], c.depth, norm, c.transform, p.intrinsics)
                          - point_at(c.landmarks[45], c.depth, norm, c.transform, p.intrinsics))
    info = {"photo": str(args.photo), "confidence": f.confidence, "pose_deg": [float(v) for v in f.pose],
            "normalisation": norm.to_dict(), "intrinsics": p.intrinsics, "points": int(len(pts)),
            "outer_eye_corners_mm": float(eyes), "out": str(out)}
    (out / "face.json").write_text(json.dumps(info, indent=2))
    print(json.dumps(info))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("face", help="point clouds of crops; the face stage on one TrueDepth photo")
    fsub = s.add_subparsers(dest="face_command", metavar="ACTION", required=True)
    p = fsub.add_parser("ply", help="a stored crop as a coloured metric point cloud (PLY)")
    p.add_argument("store")
    p.add_argument("--frame", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--ascii", action="store_true", help="ASCII PLY instead of binary little-endian")
    p.add_argument("--canonical", action="store_true", help="as a network output: face at D0, crop camera")
    p.add_argument("--filled", action="store_true", help="use fill/depth when the store has it")
    p.set_defaults(func=cmd_ply)
    q = fsub.add_parser("portrait", help="TrueDepth .heic/.jpg portrait -> crop, drawing, PLY")
    q.add_argument("photo")
    q.add_argument("--out", required=True)
    q.add_argument("--size", type=int, choices=(256, 512), default=256)
    q.add_argument("--face-depth-mm", type=float, default=80.0)
    q.set_defaults(func=cmd_portrait)
