"""capture.* nodes through the node contract: arrays, attributes, chunks, resume, clear errors."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from mkv_fixture_tools import RECORDING, block_offsets, repeat_capture  # noqa: E402

from facesynth.errors import InputDataError, MissingDependencyError  # noqa: E402
from facesynth.nodes import registry  # noqa: E402
from facesynth.nodes.base import ChunkRef, NodeContext  # noqa: E402
from facesynth.store.frame_store import FrameStore  # noqa: E402

needs_real = pytest.mark.skipif(not RECORDING.exists(), reason=f"real recording not found at {RECORDING}")


def make_node(kind: str, store: Path, params: dict, done: dict | None = None, chunk_frames: int = 4):
    FrameStore.create(store, chunk_frames=chunk_frames)
    events: list[tuple[str, dict]] = []
    ctx = NodeContext(node_id="camera", kind=kind, store_path=str(store), chunk_frames=chunk_frames,
                      done=done or {}, reporter=lambda name, data: events.append((name, data)))
    cls = registry.get(kind)
    return cls(cls.Params(**params), ctx), events


async def run(node) -> list:
    await node.setup()
    try:
        return [o async for o in node.produce()]
    finally:
        await node.close()


def test_kinds_are_registered():
    for kind in ("capture.recording", "capture.kinect", "capture.folder"):
        cls = registry.get(kind)
        assert cls is not None and "rgbd" in cls.outputs and cls.is_source()


@needs_real
async def test_recording_fills_raw_arrays_in_chunks(tmp_path):
    data, _ = repeat_capture(6)
    rec = tmp_path / "six.mkv"
    rec.write_bytes(data)
    node, events = make_node("capture.recording", tmp_path / "s.zarr",
                             {"path": str(rec), "frames": {"train": 4, "eval": 10}, "eval_every": 3})
    outs = await run(node)
    assert [(o.port, o.item) for o in outs] == [("rgbd", ChunkRef("raw", 0, 4)), ("rgbd", ChunkRef("raw", 4, 6))]
    store = FrameStore.open(tmp_path / "s.zarr", "r")
    assert store.read("raw/color").shape == (6, 720, 1280, 3)  # capacity = frames in the file
    assert store.read("raw/ok").tolist() == [True] * 6
    assert store.read("raw/split").tolist() == [0, 0, 1, 0, 0, 1]
    assert store.read("raw/timestamp_us").tolist() == [463945 + 33333 * k for k in range(6)]
    depth = store.read("raw/depth", 0, 1)[0]
    assert depth.shape == (720, 1280) and 0.3 < (depth == 0).mean() < 0.6
    assert store.read("raw/ir", 0, 1)[0][depth > 0].min() >= 0 and store.read("raw/ir", 0, 1)[0].max() > 0
    attrs = store.attrs
    assert attrs["intrinsics"]["width"] == 1280 and attrs["intrinsics"]["fx"] == pytest.approx(611.795, abs=0.01)
    assert attrs["calibration"]["depth_mode"] == "NFOV_UNBINNED"
    assert attrs["capture"]["source"] == "capture.recording" and attrs["capture"]["frames_planned"] == 6
    rejects = [d for n, d in events if n == "capture.rejects"]
    assert rejects and rejects[-1]["kept"] == 6


@needs_real
async def test_finished_chunks_are_reyielded_not_recomputed(tmp_path):
    data, _ = repeat_capture(6)
    rec = tmp_path / "six.mkv"
    rec.write_bytes(data)
    store = tmp_path / "s.zarr"
    node, _ = make_node("capture.recording", store, {"path": str(rec)})
    first = await run(node)
    # overwrite chunk 0 with a marker: a rerun that recomputed it would restore the real pixels
    fs = FrameStore.open(store)
    fs.write("raw/depth", 0, np.full((4, 720, 1280), 7, np.uint16))
    done = {first[0].key: [{"port": "rgbd", "chunk": first[0].item.to_dict()}]}
    node2, _ = make_node("capture.recording", store, {"path": str(rec)}, done=done)
    starts = []
    real_frames = node2.frames
    node2.frames = lambda start: (starts.append(start), real_frames(start))[1]
    outs = await run(node2)
    assert [o.item for o in outs] == [o.item for o in first]
    assert starts == [4]  # decoding resumed after the finished chunk
    assert FrameStore.open(store, "r").read("raw/depth", 0, 4).max() == 7


@needs_real
async def test_truncated_recording_keeps_frames_and_names_the_frame(tmp_path):
    data, offsets = repeat_capture(6)
    cut = block_offsets(data, offsets[5])[1][2] + 100
    rec = tmp_path / "cut.mkv"
    rec.write_bytes(data[:cut])
    node, _ = make_node("capture.recording", tmp_path / "s.zarr", {"path": str(rec), "on_error": "fail"})
    outs = []
    with pytest.raises(InputDataError) as err:
        async for o in node.produce():
            outs.append(o)
    assert "cut.mkv" in str(err.value) and "frame 5" in str(err.value)
    assert [o.item for o in outs] == [ChunkRef("raw", 0, 4)]
    store = FrameStore.open(tmp_path / "s.zarr", "r")
    assert store.read("raw/ok").tolist() == [True] * 5 + [False]  # frame 4 (before the cut) written too
    assert store.read("raw/depth", 4, 5).max() > 0
    for policy in ("stop", "skip"):  # skip is the default: the same frames, the damage reported
        params = {"path": str(rec)} if policy == "skip" else {"path": str(rec), "on_error": policy}
        node2, events = make_node("capture.recording", tmp_path / f"s_{policy}.zarr", params)
        assert [o.item for o in await run(node2)] == [ChunkRef("raw", 0, 4), ChunkRef("raw", 4, 5)]
        damaged = [d for n, d in events if n == "capture.damaged"]
        assert [(d["frame"], d["kind"], d["tally"], d["policy"]) for d in damaged] == [(5, "truncated", "truncated", policy)]
        rejects = [d for n, d in events if n == "capture.rejects"][-1]
        assert rejects["kept"] == 5 and rejects["damaged"] == {"truncated": 1}


async def test_folder_source_original_layout(tmp_path):
    import cv2

    for split, n in (("train", 5), ("eval", 2)):
        for sub in ("Color", "Depth", "Infrared"):
            (tmp_path / "ds" / split / sub).mkdir(parents=True)
        for i in range(n):
            cv2.imwrite(str(tmp_path / "ds" / split / "Color" / f"{i}.png"), np.full((8, 12, 3), i, np.uint8))
            cv2.imwrite(str(tmp_path / "ds" / split / "Depth" / f"{i}.png"), np.full((8, 12), 500 + i, np.uint16))
            cv2.imwrite(str(tmp_path / "ds" / split / "Infrared" / f"{i}.png"), np.full((8, 12), 9, np.uint16))
    node, _ = make_node("capture.folder", tmp_path / "s.zarr",
                        {"path": str(tmp_path / "ds"), "intrinsics": {"fx": 10, "fy": 10, "cx": 5.5, "cy": 3.5}})
    outs = await run(node)
    assert [o.item for o in outs] == [ChunkRef("raw", 0, 4), ChunkRef("raw", 4, 7)]
    store = FrameStore.open(tmp_path / "s.zarr", "r")
    assert store.read("raw/split").tolist() == [0, 0, 0, 0, 0, 1, 1]  # the folders' own split
    assert store.read("raw/depth")[:, 0, 0].tolist() == [500, 501, 502, 503, 504, 500, 501]
    assert store.read("raw/ir").max() == 9
    assert store.attrs["intrinsics"] == {"fx": 10.0, "fy": 10.0, "cx": 5.5, "cy": 3.5, "width": 12, "height": 8}


async def test_live_kinect_without_pyk4a_says_what_to_install(tmp_path):
    pytest.importorskip("pytest")
    try:
        import pyk4a  # noqa: F401
        pytest.skip("pyk4a is installed here")
    except (ImportError, OSError):
        pass
    node, _ = make_node("capture.kinect", tmp_path / "s.zarr", {})
    with pytest.raises(MissingDependencyError, match=r"pip install 'facesynth\[kinect\]'"):
        await run(node)


def test_record_command_without_pyk4a(tmp_path, capsys):
    try:
        import pyk4a  # noqa: F401
        pytest.skip("pyk4a is installed here")
    except (ImportError, OSError):
        pass
    from facesynth.cli import main

    assert main(["record", str(tmp_path / "x.mkv"), "--frames", "3"]) == 1
    assert "pyk4a" in capsys.readouterr().err


def write_rgbd_folder(root: Path, images: list[np.ndarray]) -> None:
    import cv2

    root.mkdir(parents=True, exist_ok=True)
    for i, rgb in enumerate(images):
        cv2.imwrite(str(root / f"rgb_{i:03d}.png"), rgb[..., ::-1])
        cv2.imwrite(str(root / f"depth_{i:03d}.png"), np.full(rgb.shape[:2], 400, np.uint16))


async def test_gating_keeps_dense_slots_and_resumes(tmp_path, monkeypatch):
    from facesynth.capture import source as capture_sources

    # unit test of the node's gating logic: the face probe reads (faces, yaw) from the pixels
    monkeypatch.setattr(capture_sources, "_face_probe",
                        lambda: lambda rgb: (int(rgb[0, 0, 0]), (float(rgb[0, 0, 1]), 0.0, 0.0)))
    spec = [(1, 0), (0, 0), (1, 0), (2, 0), (1, 30), (1, 5), (1, 0), (1, 0), (1, 0), (1, 0)]
    write_rgbd_folder(tmp_path / "ds", [np.full((6, 8, 3), (f, y, 0), np.uint8) for f, y in spec])
    params = {"path": str(tmp_path / "ds"), "gate": True, "frames": {"train": 4, "eval": 1}, "eval_every": 2}
    node, events = make_node("capture.folder", tmp_path / "s.zarr", params, chunk_frames=2)
    outs = await run(node)
    store = FrameStore.open(tmp_path / "s.zarr", "r")
    assert [o.item for o in outs] == [ChunkRef("raw", 0, 2), ChunkRef("raw", 2, 4), ChunkRef("raw", 4, 5)]
    assert store.read("raw/source_index").tolist() == [0, 2, 5, 6, 7]
    assert store.read("raw/split").tolist() == [0, 1, 0, 0, 0]
    last = [d for n, d in events if n == "capture.rejects"][-1]
    assert last["rejects"]["no_face"] == 1 and last["rejects"]["several_faces"] == 1 and last["rejects"]["yaw"] == 1
    # a rerun with the first two chunks finished continues after source frame 6 with the same split
    done = {o.key: [{"port": "rgbd", "chunk": o.item.to_dict()}] for o in outs[:2]}
    node2, _ = make_node("capture.folder", tmp_path / "s.zarr", params, done=done, chunk_frames=2)
    starts = []
    real_frames = node2.frames
    node2.frames = lambda start: (starts.append(start), real_frames(start))[1]
    outs2 = await run(node2)
    assert starts == [7] and [o.item for o in outs2] == [o.item for o in outs]
    assert FrameStore.open(tmp_path / "s.zarr", "r").read("raw/source_index").tolist() == [0, 2, 5, 6, 7]


FACES = RECORDING.parents[1] / "truedepth_faces"


@pytest.mark.slow
@pytest.mark.skipif(not (FACES / "heic_face_data.heic").exists(), reason="real face photos not present")
async def test_gating_with_real_faces(tmp_path):
    import cv2
    pillow_heif = pytest.importorskip("pillow_heif")
    from PIL import Image

    pillow_heif.register_heif_opener()

    def load(path: Path, size=(579, 772)) -> np.ndarray:
        return cv2.resize(np.asarray(Image.open(path).convert("RGB")), size)

    frontal = load(FACES / "heic_face_data.heic")          # a man facing the camera
    tilted = load(FACES / "jpeg_depth_data.jpg")           # head pitched about 35 degrees
    mug = cv2.resize(KinectRecordingFrame(), (579, 772))   # the Kinect scene: no face
    write_rgbd_folder(tmp_path / "ds", [frontal, tilted, mug])
    node, events = make_node("capture.folder", tmp_path / "s.zarr",
                             {"path": str(tmp_path / "ds"), "gate": True, "frames": {"train": 3, "eval": 1}})
    await run(node)
    store = FrameStore.open(tmp_path / "s.zarr", "r")
    assert store.read("raw/ok").tolist() == [True, False, False]
    assert store.read("raw/source_index").tolist()[0] == 0
    rejects = [d for n, d in events if n == "capture.rejects"][-1]["rejects"]
    assert rejects["pitch"] == 1 and rejects["no_face"] == 1


def KinectRecordingFrame() -> np.ndarray:
    from facesynth.capture.kinect.recording import KinectRecording

    return next(iter(KinectRecording(RECORDING).captures())).color


async def test_live_kinect_node_logic_with_a_stand_in_device(tmp_path, monkeypatch):
    """Unit test of capture.kinect's own logic (no hardware here): capacity, gating default, stop, close."""
    from facesynth.capture import source as capture_sources
    from facesynth.capture.kinect import live as kinect_live
    from facesynth.capture.kinect.calibration import CameraModel, KinectCalibration

    cal = KinectCalibration(depth=CameraModel(width=16, height=12, fx=12.0, fy=12.0, cx=7.5, cy=5.5),
                            color=CameraModel(width=24, height=18, fx=18.0, fy=18.0, cx=11.5, cy=8.5),
                            rotation=np.eye(3), translation=np.zeros(3), depth_mode="NFOV_UNBINNED",
                            color_mode="720P")

    class StandIn:
        calibration, serial, closed, skipped = cal, "000123", False, None

        def captures(self, skip=0):
            StandIn.skipped = skip
            for k in range(1000):
                rgb = np.full((18, 24, 3), 1 if k % 3 else 0, np.uint8)  # every 3rd frame: no face
                yield 1000 * k, rgb, np.full((12, 16), 700, np.uint16), np.full((12, 16), 50, np.uint16)

        def close(self):
            StandIn.closed = True

    monkeypatch.setattr(kinect_live, "open_device", lambda *a, **k: StandIn())
    monkeypatch.setattr(capture_sources, "_face_probe", lambda: lambda rgb: (int(rgb[0, 0, 0]), (0.0, 0.0, 0.0)))
    node, events = make_node("capture.kinect", tmp_path / "s.zarr", {"frames": {"train": 5, "eval": 1}})
    outs = await run(node)
    assert [o.item for o in outs] == [ChunkRef("raw", 0, 4), ChunkRef("raw", 4, 6)]
    store = FrameStore.open(tmp_path / "s.zarr", "r")
    assert store.read("raw/ok").all() and store.read("raw/depth").shape == (6, 18, 24)
    assert store.read("raw/depth")[0, 9, 12] == 700 and store.read("raw/ir")[0, 9, 12] == 50
    assert store.read("raw/source_index").tolist() == [1, 2, 4, 5, 7, 8]  # gated by default
    assert store.attrs["capture"]["serial"] == "000123" and StandIn.closed and StandIn.skipped == 15
    assert [d for n, d in events if n == "capture.rejects"][-1]["rejects"]["no_face"] == 3
