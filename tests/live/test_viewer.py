"""The browser viewer's server and frames: binary layout, metric unprojection against the point
cloud code, the `latest` policy for a browser that stops reading, and hostile clients."""
from __future__ import annotations

import asyncio
import json
import urllib.request

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from facesynth.face import rgbd_output as ro
from facesynth.live.viewer_nodes import viewer_frame
from facesynth.live.viewer_server import ViewerServer, decode_viewer_frame

S = 32
META = {"d0_mm": 600.0, "face_depth_mm": 80.0, "near_mm": 20.0, "crop_mm": 200.0, "size": S}


def payload(seq: int, rng=np.random.default_rng(0)) -> dict:
    depth = rng.integers(5800, 6600, (S, S)).astype(np.uint16)
    depth[:4] = 0  # background rows
    return {"rgb": rng.integers(0, 255, (S, S, 3), dtype=np.uint8), "depth": depth, "depth_unit_mm": 0.1,
            "seq": seq, "source": "track", "t_recv": 1.0e9, "t_sender": None, "gen_ms": 1.5, "meta": dict(META)}


def unproject_like_the_page(head: dict, depth: np.ndarray) -> np.ndarray:
    """viewer.js's loop in numpy (image camera frame, before its y/z flip)."""
    cam, st = head["camera"], head["stride"]
    v, u = np.nonzero(depth)
    z = depth[v, u] * head["depth_unit_mm"]
    return np.stack([(u * st - cam["cx"]) * z / cam["fx"], (v * st - cam["cy"]) * z / cam["fy"], z], 1)


def test_viewer_frame_layout_and_metric_points_match_the_point_cloud_code():
    item = payload(7)
    head, rgb, depth = decode_viewer_frame(viewer_frame(item))
    assert head["rgb_offset"] % 4 == 0 and head["depth_offset"] % 2 == 0
    assert rgb == item["rgb"].tobytes() and depth == item["depth"].astype("<u2").tobytes()
    assert (head["seq"], head["h"], head["w"], head["camera"]["metric"]) == (7, S, S, True)
    d = np.frombuffer(depth, "<u2").reshape(S, S)
    reference = ro.points_xyzrgb(item["rgb"], d.astype(np.float32) * 0.1, META)  # face/point_cloud.py
    np.testing.assert_allclose(unproject_like_the_page(head, d), reference[:, :3], rtol=1e-5, atol=1e-3)
    # stride 2: every other pixel, on the same metric positions
    head2, _, depth2 = decode_viewer_frame(viewer_frame(item, stride=2))
    d2 = np.frombuffer(depth2, "<u2").reshape(S // 2, S // 2)
    sub = np.zeros_like(d)
    sub[::2, ::2] = d[::2, ::2]
    ref2 = ro.points_xyzrgb(item["rgb"], sub.astype(np.float32) * 0.1, META)
    np.testing.assert_allclose(unproject_like_the_page(head2, d2), ref2[:, :3], rtol=1e-5, atol=1e-3)


async def _get(url: str, headers: dict | None = None) -> tuple[int, bytes]:
    def go():
        req = urllib.request.Request(url, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()
    return await asyncio.to_thread(go)


async def test_slow_browser_gets_only_the_newest_frame_and_never_blocks():
    server = ViewerServer("127.0.0.1", 0)
    _, port = await server.start()
    try:
        async with connect(f"ws://127.0.0.1:{port}/ws", max_size=None, max_queue=1) as slow:
            await asyncio.sleep(0.2)
            frames = [viewer_frame(payload(i)) for i in range(1, 201)]
            for f in frames:  # 200 frames offered back to back while the client reads nothing
                assert server.broadcast(f) == 1
            await asyncio.sleep(0.5)
            seqs = []
            while True:
                try:
                    msg = await asyncio.wait_for(slow.recv(), 2.0)
                except asyncio.TimeoutError:
                    break
                seqs.append(decode_viewer_frame(msg)[0]["seq"])
            assert seqs[-1] == 200          # the newest frame does arrive
            assert len(seqs) < 200          # older ones were replaced instead of queued
            assert seqs == sorted(seqs)
            assert server.status()["replaced_frames"] == 200 - len(seqs)
    finally:
        await server.close()


@pytest.mark.parametrize("compress", [False, True])
async def test_frames_go_uncompressed_unless_asked(compress):
    """A browser offers permessage-deflate on every connection; deflating each frame costs the graph
    CPU per frame and client (the live benchmark's largest cost after the generator), so the server
    accepts it only when the viewer's `compress` asks for it."""
    server = ViewerServer("127.0.0.1", 0, compress=compress)
    _, port = await server.start()
    try:
        async with connect(f"ws://127.0.0.1:{port}/ws", max_size=None) as ws:  # offers deflate, as browsers do
            assert "permessage-deflate" in ws.request.headers.get("Sec-WebSocket-Extensions", "")
            accepted = ws.response.headers.get("Sec-WebSocket-Extensions", "")
            assert ("permessage-deflate" in accepted) is compress
            await asyncio.sleep(0.1)
            sent = viewer_frame(payload(1))
            assert server.broadcast(sent) == 1
            assert await asyncio.wait_for(ws.recv(), 2.0) == sent
    finally:
        await server.close()


async def test_hostile_and_foreign_clients_are_dropped_and_counted():
    server = ViewerServer("127.0.0.1", 0, max_clients=2)
    _, port = await server.start()
    ws_url = f"ws://127.0.0.1:{port}/ws"
    try:
        status, body = await _get(f"http://127.0.0.1:{port}/")
        assert status == 200 and b"viewer.js" in body
        assert (await _get(f"http://127.0.0.1:{port}/vendor/three-viewer.min.js"))[0] == 200
        assert (await _get(f"http://127.0.0.1:{port}/../../pyproject.toml"))[0] == 404
        assert (await _get(f"http://127.0.0.1:{port}/", {"Host": "attacker.example:80"}))[0] == 403
        with pytest.raises(InvalidStatus):  # a page of another web site must not read the stream
            async with connect(ws_url, origin="http://attacker.example"):
                pass
        for bad in (b"\x00\x01binary", "not json", json.dumps({"type": "eval", "code": "1"}), "x" * 5000):
            async with connect(ws_url) as ws:
                await ws.send(bad)
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 5)
        async with connect(ws_url) as flood:
            with pytest.raises(ConnectionClosed):
                for _ in range(100):
                    await flood.send(json.dumps({"type": "ping"}))
                    await asyncio.sleep(0.005)
                await asyncio.wait_for(flood.recv(), 5)
        r, w = await asyncio.open_connection("127.0.0.1", port)  # not HTTP at all
        w.write(b"\x16\x03\x01\x02\x00garbage\r\n\r\n")
        await w.drain()
        assert await asyncio.wait_for(r.read(), 5) is not None
        w.close()
        r, w = await asyncio.open_connection("127.0.0.1", port)  # an upgrade without a key
        w.write(f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\n\r\n".encode())
        await w.drain()
        assert (await asyncio.wait_for(r.read(), 5)).startswith(b"HTTP/1.1 400")
        w.close()
        good = await connect(ws_url, origin=f"http://127.0.0.1:{port}")  # the page itself
        await good.send(json.dumps({"type": "ping"}))
        other = await connect(ws_url)
        await asyncio.sleep(0.1)
        with pytest.raises(InvalidStatus):  # a third one is over max_clients
            async with connect(ws_url):
                pass
        server.broadcast(viewer_frame(payload(5)))
        head, _, _ = decode_viewer_frame(await asyncio.wait_for(good.recv(), 5))
        assert head["seq"] == 5
        await good.close()
        await other.close()
        rejected = server.status()["rejected"]
        assert rejected == {"bad_host": 1, "bad_origin": 1, "binary_message": 1, "bad_json": 1,
                            "unknown_message": 1, "oversized": 1, "flooding": 1, "too_many_clients": 1,
                            "bad_http": 1, "bad_handshake": 1}
    finally:
        await server.close()


def test_shipped_demo_graph_is_valid_loopback_and_latest():
    from pathlib import Path

    from facesynth.graph.checks import load_graph
    from facesynth.runtime.plan import build_plan

    loaded = load_graph(str(Path(__file__).resolve().parents[2] / "graphs" / "live_demo.yaml"))
    plan = build_plan(loaded.spec, 2)
    assert [(e.src, e.dst) for e in plan.edges] == [
        ("track/landmarks", "condition/landmarks"), ("condition/landmarks", "generator/landmarks"),
        ("generator/rgbd", "viewer/rgbd")]
    assert all(e.policy == "latest" and e.bound == 1 for e in plan.edges)
    assert plan.nodes["viewer"].spec.params["host"] == "127.0.0.1"
    track = plan.nodes["track"].spec.params
    assert (track["split"], track["store"]) == ("eval", "data_store/capture_to_model.zarr")


def test_view_command_explains_when_no_viewer_runs(tmp_path, capsys):
    from facesynth.cli import main

    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "old.jsonl").write_text(
        json.dumps({"type": "event", "name": "live.listening", "protocol": "viewer/http+ws",
                    "url": "http://127.0.0.1:9/"}) + "\n" + json.dumps({"type": "run_end", "status": "ok"}) + "\n")
    assert main(["view", "--print", str(tmp_path / "runs")]) == 2  # that run has ended
    assert "no running graph with a live.viewer" in capsys.readouterr().err
    assert main(["view", "--print", str(tmp_path / "nothing")]) == 2
    assert "no run logs" in capsys.readouterr().err


async def test_a_taken_port_is_a_clear_error():
    from facesynth.errors import PortInUseError

    first = ViewerServer("127.0.0.1", 0)
    _, port = await first.start()
    try:
        with pytest.raises(PortInUseError, match=f"127.0.0.1:{port}"):
            await ViewerServer("127.0.0.1", port).start()
    finally:
        await first.close()


def test_landmark_replay_picks_the_eval_split(tmp_path):
    """The demo replays the store's eval landmarks: frames flagged ok whose raw/split is 1."""
    from facesynth.errors import InputDataError
    from facesynth.live.source_nodes import load_landmark_file
    from facesynth.store.frame_store import FrameStore

    pts = np.arange(8 * 140, dtype=np.float32).reshape(8, 70, 2)
    store = FrameStore.create(tmp_path / "s.zarr", chunk_frames=8)
    store.ensure_array("crop/landmarks", 8, (70, 2), np.float32)
    store.ensure_array("crop/ok", 8, (), bool)
    store.write("crop/landmarks", 0, pts)
    store.write("crop/ok", 0, np.array([1, 1, 1, 0, 1, 1, 1, 1], bool))
    with pytest.raises(InputDataError, match="raw/split"):
        load_landmark_file(str(tmp_path / "s.zarr"), "crop/landmarks", None, "eval")
    store.ensure_array("raw/split", 8, (), np.uint8)
    store.write("raw/split", 0, np.array([0, 1, 0, 1, 0, 0, 1, 0], np.uint8))
    got = load_landmark_file(str(tmp_path / "s.zarr"), "crop/landmarks", None, "eval")
    np.testing.assert_array_equal(got, pts[[1, 6]])  # frame 3 is eval but not ok
    assert len(load_landmark_file(str(tmp_path / "s.zarr"), "crop/landmarks", None, "train")) == 5
