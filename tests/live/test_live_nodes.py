"""Live node kinds driven directly (NodeContext + setup/produce/process) and through the local runtime."""
from __future__ import annotations

import asyncio
import socket
import textwrap

import numpy as np
import pytest
from live_helpers import SIZE, events, expected_rgbd, export_tiny_model, landmark_sets

from facesynth.errors import MissingDependencyError
from facesynth.nodes import registry
from facesynth.nodes.base import NodeContext
from facesynth.live.source_nodes import to_network_px
from facesynth.runtime.api import run_graph
from facesynth.store.frame_store import FrameStore
from facesynth.live import protocol as lp
from facesynth.face.point_cloud import read_ply
from facesynth.depth.testdata_realdepth import realdata_root


def make(kind: str, node_id: str = "n", **params):
    cls = registry.get(kind)
    assert cls is not None and cls.live
    reports: list = []
    ctx = NodeContext(node_id=node_id, kind=kind, reporter=lambda name, data: reports.append((name, data)))
    return cls(cls.Params.model_validate(params), ctx), reports


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return export_tiny_model(tmp_path_factory.mktemp("model"))


async def test_msgpack_in_survives_clients_and_counts_bad_messages():
    node, reports = make("live.msgpack_in", "net", port=0, size=SIZE, max_messages=2)
    await node.setup()
    host, port = node.bound
    assert host == "127.0.0.1"
    sets = landmark_sets(2)
    gen = node.produce().__aiter__()

    async def send(*bodies, raw=b""):
        r, w = await asyncio.open_connection(host, port)
        w.write(b"".join(lp.frame_bytes(b) for b in bodies) + raw)
        await w.drain()
        w.close()

    await send()  # connect and leave
    await send(b"junk", lp.encode_landmark_message(sets[0], 1))
    first = await asyncio.wait_for(gen.__anext__(), 10)
    await send(raw=(1 << 31).to_bytes(4, "big"))  # impossible length: that client is dropped
    await send(lp.encode_landmark_message(sets[1] * 100, 2), lp.encode_landmark_message(sets[1], 3))
    second = await asyncio.wait_for(gen.__anext__(), 10)
    with pytest.raises(StopAsyncIteration):
        await gen.__anext__()
    await node.close()
    np.testing.assert_array_equal(first.item["landmarks"], sets[0])
    np.testing.assert_array_equal(second.item["landmarks"], sets[1])
    assert (first.item["seq"], second.item["seq"]) == (1, 2) and second.item["drops"] == 3
    assert node.reasons == {"bad_msgpack": 1, "oversized": 1, "out_of_range": 1}
    final = [d for n, d in reports if n == "live.input" and d.get("final")][0]
    assert final["accepted"] == 2 and final["drops"] == 3


async def test_osc_in_accepts_and_counts_on_an_ephemeral_port():
    node, _ = make("live.osc_in", "osc", port=0, size=SIZE, max_messages=1)
    await node.setup()
    pts = landmark_sets(1)[0]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for data in (b"\x00garbage", lp.encode_osc_landmarks(pts)[:-8], lp.encode_osc_landmarks(pts)):
            s.sendto(data, node.bound)
    out = [o async for o in node.produce()]
    await node.close()
    assert len(out) == 1 and out[0].port == "landmarks"
    np.testing.assert_array_equal(out[0].item["landmarks"], pts)
    assert node.drops == 2 and node.accepted == 1


async def test_generator_node_output_equals_the_traced_model(model):
    node, _ = make("live.generator", "g", model=str(model))
    await node.setup()
    pts = landmark_sets(3, seed=9)[2]
    (out,) = await node.process("landmarks", {"landmarks": pts, "seq": 1, "source": "x", "t_recv": 0.0,
                                             "t_sender": None, "drops": 0})
    rgb, depth = expected_rgbd(model, pts)
    np.testing.assert_array_equal(out.item["rgb"], rgb)
    np.testing.assert_array_equal(out.item["depth"], depth)
    assert out.item["gen_ms"] > 0 and out.item["meta"]["d0_mm"] == 600.0


async def test_missing_model_and_camera_are_missing_dependencies(tmp_path):
    node, _ = make("live.generator", "g", model=str(tmp_path / "nothing"))
    with pytest.raises(MissingDependencyError, match="facesynth model export"):
        await node.setup()
    cam, _ = make("live.face_landmarks", "cam", video=str(tmp_path / "none.mp4"))
    with pytest.raises(MissingDependencyError):
        await cam.setup()


def test_to_network_px_scales_by_the_stable_points_only():
    pts = landmark_sets(1)[0] * 3 + 500
    net = to_network_px(pts, 256, 1.7)
    moved = pts.copy()
    moved[48:68] += 40.0  # mouth and lips elsewhere: no change to the other points
    np.testing.assert_allclose(to_network_px(moved, 256, 1.7)[:48], net[:48], atol=1e-3)
    np.testing.assert_allclose(to_network_px(pts * 2 + 7, 256, 1.7), net, atol=1e-3)  # scale-free


def test_store_replay_to_file_sink_through_the_runtime(tmp_path, monkeypatch, model):
    monkeypatch.chdir(tmp_path)
    sets = landmark_sets(5, seed=4)
    store = FrameStore.create(tmp_path / "s.zarr", chunk_frames=8)
    store.ensure_array("crop/landmarks", 8, (70, 2), np.float32)
    store.ensure_array("crop/ok", 8, (), bool)
    store.write("crop/landmarks", 0, np.concatenate([sets, np.zeros((3, 70, 2), np.float32)]))
    store.write("crop/ok", 0, np.array([1, 1, 0, 1, 1, 0, 0, 0], bool))
    graph = tmp_path / "replay.yaml"
    graph.write_text(textwrap.dedent(f"""\
        version: 1
        name: replay
        defaults: {{queue: 4, policy: block}}
        nodes:
          - id: src
            kind: live.landmarks_file
            params: {{store: {tmp_path / 's.zarr'}, rate_hz: 0}}
          - id: gen
            kind: live.generator
            params: {{model: {model}}}
            inputs: {{landmarks: src/landmarks}}
          - id: files
            kind: live.file_sink
            params: {{dir: {tmp_path / 'frames'}}}
            inputs: {{rgbd: gen/rgbd}}
        """))
    res = run_graph(str(graph), backend="local")
    assert res.status == "ok"
    written = sorted(p.name for p in (tmp_path / "frames").iterdir())
    assert written[:3] == ["src_00000001.ply", "src_00000001_depth.png", "src_00000001_rgb.png"]
    assert len(written) == 12  # frames 0, 1, 3, 4 (frame 2 not ok)
    import cv2

    rgb, depth = expected_rgbd(model, sets[3])  # the third replayed frame is store frame 3
    got_rgb = cv2.cvtColor(cv2.imread(str(tmp_path / "frames/src_00000003_rgb.png")), cv2.COLOR_BGR2RGB)
    got_depth = cv2.imread(str(tmp_path / "frames/src_00000003_depth.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(got_rgb, rgb)
    np.testing.assert_array_equal(got_depth, depth)
    pts, cols = read_ply(tmp_path / "frames/src_00000003.ply")
    assert len(pts) == int((depth > 0).sum())
    np.testing.assert_allclose(np.sort(pts[:, 2]), np.sort(depth[depth > 0] * 0.1), atol=1e-3)
    assert events(res.run_log, "live.files")[0]["frames"] == 4


REAL = realdata_root() / "truedepth_faces"


async def test_face_landmarks_from_a_real_face_video(tmp_path):
    import cv2

    jpg = REAL / "jpeg_depth_data.jpg"
    if not jpg.is_file():
        pytest.skip(f"real face data not found at {REAL} (needs ../shared/realdata or $FACESYNTH_REALDATA)")
    bgr = cv2.imread(str(jpg))
    bgr = cv2.resize(bgr, (bgr.shape[1] * 640 // bgr.shape[0], 640), interpolation=cv2.INTER_AREA)
    video = tmp_path / "face.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (bgr.shape[1], bgr.shape[0]))
    for _ in range(3):
        writer.write(bgr)
    writer.release()
    node, _ = make("live.face_landmarks", "cam", video=str(video), size=256, frames=2)
    await node.setup()
    out = [o async for o in node.produce()]
    await node.close()
    assert len(out) == 2 and [o.item["seq"] for o in out] == [1, 2]
    pts = out[0].item["landmarks"]
    assert pts.shape == (70, 2) and pts.dtype == np.float32
    lo, hi = pts[:68].min(0), pts[:68].max(0)
    # framed by the stable points (expression-independent), not by this frame's own extent:
    # close to centred and to 1/1.7 of the image, not exactly
    assert np.abs((lo + hi) / 2 - 128).max() < 0.1 * 256
    assert 0.75 < float(max(hi - lo)) / (256 / 1.7) < 1.25
    # the eyes sit above the mouth, the pupils inside their eye outlines
    assert pts[36:48, 1].mean() < pts[48:68, 1].mean()
    for pupil, eye in ((68, slice(36, 42)), (69, slice(42, 48))):
        assert pts[eye, 0].min() <= pts[pupil, 0] <= pts[eye, 0].max()


async def test_msgpack_out_drops_frames_that_finish_after_a_newer_one():
    """Two generator replicas can finish out of order: the older frame must not go out after."""
    node, reports = make("live.msgpack_out", "out", port=0)
    await node.setup()
    host, port = node.bound
    reader, writer = await asyncio.open_connection(host, port)
    await asyncio.sleep(0.05)
    rgb, depth = np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.uint16)

    def frame(seq: int) -> dict:
        return {"rgb": rgb, "depth": depth, "depth_unit_mm": 0.1, "seq": seq, "source": "net", "t_recv": 0.0,
                "t_sender": None, "landmarks": np.zeros((70, 2), np.float32), "drops": 0, "gen_ms": 1.0}

    for seq in (1, 3, 2, 4):
        await node.process("rgbd", frame(seq))
    got = []
    for _ in range(3):
        n = int.from_bytes(await asyncio.wait_for(reader.readexactly(4), 2), "big")
        got.append(lp.decode_frame(await reader.readexactly(n))["seq"])
    await node.close()
    writer.close()
    assert got == [1, 3, 4]
    final = [d for name, d in reports if name == "live.stats" and d.get("final")][-1]
    assert (final["frames"], final["late"], final["skipped"]) == (3, 1, 0)
