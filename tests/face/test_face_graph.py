"""capture.folder -> face.landmarks -> face.crop (2 replicas) as a real graph run on real face frames."""

import cv2
import numpy as np
import pytest

from facesynth.runtime.api import run_graph
from facesynth.store.frame_store import FrameStore
from facesynth.depth.testdata_realdepth import realdata_root

REAL = realdata_root() / "truedepth_faces"
pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason=f"real TrueDepth faces not found at {REAL}")

GRAPH = """\
version: 1
name: face_graph
store: {{path: {store}, chunk_frames: 2}}
nodes:
  - id: camera
    kind: capture.folder
    params: {{path: {data}, frames: {{train: 6, eval: 0}}, intrinsics: {{fx: {fx}, fy: {fx}, cx: {cx}, cy: {cy}}}}}
  - id: landmarks
    kind: face.landmarks
    inputs: {{rgbd: camera/rgbd}}
  - id: crop
    kind: face.crop
    replicas: 2
    params: {{size: 256, face_depth_mm: 80}}
    inputs: {{landmarks: landmarks/landmarks}}
"""


@pytest.fixture(scope="module")
def graph_file(tmp_path_factory):
    from facesynth.capture.portrait.truedepth_portrait import load_portrait

    p = load_portrait(REAL / "heic_face_data.heic")
    s = 480 / p.rgb.shape[0]
    w, h = round(p.rgb.shape[1] * s), 480
    rgb = cv2.resize(p.rgb, (w, h), interpolation=cv2.INTER_AREA)
    depth = cv2.resize(p.depth_mm, (w, h), interpolation=cv2.INTER_NEAREST)
    root = tmp_path_factory.mktemp("facegraph")
    for sub in ("Color", "Depth"):
        (root / "data" / "train" / sub).mkdir(parents=True)
    for i in range(6):
        img = rgb if i != 3 else np.zeros_like(rgb)  # frame 3: no face
        cv2.imwrite(str(root / "data" / "train" / "Color" / f"{i}.png"), img[:, :, ::-1])
        cv2.imwrite(str(root / "data" / "train" / "Depth" / f"{i}.png"), depth)
    k = p.intrinsics
    text = GRAPH.format(store=root / "s.zarr", data=root / "data", fx=k["fx"] * s, cx=k["cx"] * s, cy=k["cy"] * s)
    (root / "g.yaml").write_text(text)
    return root / "g.yaml", root / "s.zarr"


def _check(store_path):
    st = FrameStore.open(store_path, "r")
    assert st.read("landmarks/ok").tolist() == [True, True, True, False, True, True]
    assert st.read("crop/ok").tolist() == [True, True, True, False, True, True]
    norm = st.attrs["normalisation"]
    assert norm["reference_frame"] == 0 and 280 < norm["d0_mm"] < 400
    d, lm = st.read("crop/depth"), st.read("crop/landmarks")
    x, y = np.round(lm[5, 30]).astype(int)
    assert abs(int(d[5, y, x]) - norm["d0_mm"]) <= 3
    assert st.read("crop/color").shape == (6, 256, 256, 3)


def test_graph_local(graph_file, tmp_path):
    from facesynth.cli import main
    from facesynth.face.point_cloud import read_ply

    g, store = graph_file
    res = run_graph(str(g), backend="local", restart=True)
    assert res.status == "ok"
    _check(store)
    # the stored crop back to metric points, in camera coordinates: the face ~D0 away
    assert main(["face", "ply", str(store), "--frame", "5", "--out", str(tmp_path / "f.ply")]) == 0
    pts, _ = read_ply(tmp_path / "f.ply")
    st = FrameStore.open(store, "r")
    assert len(pts) == int((st.read("crop/depth", 5, 6)[0] > 0).sum())
    assert abs(float(np.median(pts[:, 2])) - st.attrs["normalisation"]["d0_mm"]) < 60
    assert main(["face", "ply", str(store), "--frame", "3", "--out", str(tmp_path / "g.ply")]) == 1


@pytest.mark.ray
def test_graph_ray(graph_file):
    g, store = graph_file
    res = run_graph(str(g), backend="ray", restart=True)
    assert res.status == "ok"
    _check(store)
