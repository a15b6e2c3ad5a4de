"""face.landmarks and face.crop as nodes on a small real-face store (2 chunks of 2 frames)."""
import asyncio

import cv2
import numpy as np
import pytest

from facesynth.nodes.base import ChunkRef, NodeContext
from facesynth.face.nodes import CropParams, FaceCrop, FaceLandmarks, LandmarkParams
from facesynth.nodes.registry import kinds
from facesynth.store.frame_store import FrameStore
from facesynth.depth.testdata_realdepth import realdata_root

REAL = realdata_root() / "truedepth_faces"
pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason=f"real TrueDepth faces not found at {REAL}")


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    from facesynth.capture.portrait.truedepth_portrait import load_portrait

    p = load_portrait(REAL / "jpeg_depth_data.jpg")
    w, h = p.rgb.shape[1] // 4, p.rgb.shape[0] // 4
    rgb = cv2.resize(p.rgb, (w, h), interpolation=cv2.INTER_AREA)
    depth = cv2.resize(p.depth_mm, (w, h), interpolation=cv2.INTER_NEAREST)
    intr = {k: (v / 4 if k in ("fx", "fy", "cx", "cy") else v) for k, v in p.intrinsics.items()}
    intr.update(width=w, height=h)
    path = tmp_path_factory.mktemp("face") / "s.zarr"
    st = FrameStore.create(path, chunk_frames=2, attrs={"intrinsics": intr})
    colors = np.stack([rgb, rgb, np.zeros_like(rgb), rgb])  # frame 2 has no face
    for name, data, dtype in (("raw/color", colors, np.uint8), ("raw/depth", np.stack([depth] * 4), np.uint16),
                              ("raw/ok", np.ones(4, bool), bool)):
        st.ensure_array(name, 4, data.shape[1:], dtype)
        st.write(name, 0, data)
    true = np.full((4, 70, 2), np.nan, np.float32)
    true[[0, 1, 3]] = 5.0
    st.ensure_array("raw/landmarks_true", 4, (70, 2), np.float32, fill_value=np.nan)
    st.write("raw/landmarks_true", 0, true)
    return str(path)


def _ctx(path, kind, reports):
    return NodeContext(node_id=kind, kind=kind, store_path=path, chunk_frames=2,
                       reporter=lambda name, data: reports.append((name, data)))


def test_kinds_registered():
    k = kinds()
    assert k["face.landmarks"] is FaceLandmarks and k["face.crop"] is FaceCrop
    assert CropParams().size == 256 and CropParams().face_depth_mm == 80.0
    with pytest.raises(Exception):
        CropParams(size=300)


async def test_landmarks_then_crop_with_d0_race(store_path):
    reports = []
    lm = FaceLandmarks(LandmarkParams(), _ctx(store_path, "face.landmarks", reports))
    crops = [FaceCrop(CropParams(), _ctx(store_path, "face.crop", reports)) for _ in range(2)]
    await lm.setup()
    # landmarks chunk 1 first; the crop of chunk 1 must wait for chunk 0's landmarks to know D0
    out1 = await lm.process("rgbd", ChunkRef("raw", 2, 4))
    assert out1[0].item == ChunkRef("landmarks", 2, 4)
    crop1 = asyncio.create_task(crops[1].process("landmarks", ChunkRef("landmarks", 2, 4)))
    await asyncio.sleep(0.5)
    assert not crop1.done()  # waiting for frame 0
    await lm.process("rgbd", ChunkRef("raw", 0, 2))
    out_c1 = await asyncio.wait_for(crop1, 60)
    out_c0 = await crops[0].process("landmarks", ChunkRef("landmarks", 0, 2))
    await lm.close()
    assert out_c0[0].item == ChunkRef("crop", 0, 2) and out_c1[0].item == ChunkRef("crop", 2, 4)

    st = FrameStore.open(store_path, "r")
    assert st.read("landmarks/ok").tolist() == [True, True, False, True]
    assert np.isfinite(st.read("landmarks/points")[[0, 1, 3]]).all()
    assert (st.read("landmarks/confidence")[[0, 1, 3]] > 0.3).all()
    assert any(n == "landmarks.skipped" and d["reasons"] == {"no_face": 1} for n, d in reports)
    norm = st.attrs["normalisation"]
    assert norm["reference_frame"] == 0 and norm["size"] == 256 and norm["face_depth_mm"] == 80.0
    assert 350 < norm["d0_mm"] < 450 and norm["scale_factor"] > 0
    assert st.read("crop/ok").tolist() == [True, True, False, True]
    cd, cl = st.read("crop/depth"), st.read("crop/landmarks")
    assert cd.shape == (4, 256, 256) and cd.dtype == np.uint16
    x, y = np.round(cl[3, 30]).astype(int)
    assert abs(int(cd[3, y, x]) - norm["d0_mm"]) <= 3
    assert np.array_equal(st.read("crop/color")[0], st.read("crop/color")[3])  # same frame, same crop
    assert st.read("crop/mask")[0].mean() > 0.2


async def test_use_true_landmarks(store_path, tmp_path):
    lm = FaceLandmarks(LandmarkParams(use_true_landmarks=True), _ctx(store_path, "face.landmarks", []))
    await lm.setup()
    await lm.process("rgbd", ChunkRef("raw", 0, 2))
    await lm.process("rgbd", ChunkRef("raw", 2, 4))
    st = FrameStore.open(store_path, "r")
    assert st.read("landmarks/ok").tolist() == [True, True, False, True]
    assert np.allclose(st.read("landmarks/points")[0], 5.0)
