"""The live wire formats: strict OSC and msgpack landmark decoding, stream framing, RGBD frames."""
from __future__ import annotations

import struct

import msgpack
import numpy as np
import pytest
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from facesynth.errors import InputDataError
from facesynth.live import protocol as lp
from facesynth.face import rgbd_output as ro


@pytest.fixture
def pts():
    return np.random.default_rng(0).uniform(0, 256, (70, 2)).astype(np.float32)


def test_osc_roundtrip_and_python_osc_compatibility(pts):
    b = OscMessageBuilder("/landmarks")
    for v in pts.reshape(-1):
        b.add_arg(float(v))
    theirs = b.build().dgram
    assert lp.encode_osc_landmarks(pts) == theirs  # what python-osc (and the original tools) send
    np.testing.assert_array_equal(lp.decode_osc_landmarks(theirs, 256), pts)
    parsed = OscMessage(lp.encode_osc_landmarks(pts))
    assert parsed.address == "/landmarks" and len(parsed.params) == 140


@pytest.mark.parametrize("mutate,reason", [
    (lambda d, p: d.replace(b"/landmarks", b"/landmarkx"), "wrong_address"),
    (lambda d, p: d[:-4], "wrong_length"),
    (lambda d, p: d + b"\0\0\0\0", "wrong_length"),
    (lambda d, p: lp._pad(b"/landmarks") + lp._pad(b"," + b"f" * 2) + b"\0" * 8, "wrong_length"),
    (lambda d, p: d.replace(b",ff", b",if", 1), "wrong_type"),
    (lambda d, p: b"\xff\xfe", "bad_osc"),
    (lambda d, p: b"", "bad_osc"),
    (lambda d, p: b"#bundle\0" + d, "bad_osc"),
    (lambda d, p: d + b"\0" * 20000, "oversized"),
    (lambda d, p: lp.encode_osc_landmarks(np.where(np.arange(140).reshape(70, 2) == 7, np.nan, p)), "non_finite"),
    (lambda d, p: lp.encode_osc_landmarks(p + 1000), "out_of_range"),
])
def test_bad_osc_is_a_typed_error_with_reason(pts, mutate, reason):
    with pytest.raises(lp.ProtocolError) as info:
        lp.decode_osc_landmarks(mutate(lp.encode_osc_landmarks(pts), pts), 256)
    assert info.value.reason == reason
    assert isinstance(info.value, InputDataError)


def test_msgpack_message_binary_and_list_forms(pts):
    for binary in (True, False):
        msg = lp.decode_landmark_message(lp.encode_landmark_message(pts, 7, t=12.5, binary=binary), 256)
        assert msg["seq"] == 7 and msg["t"] == 12.5
        np.testing.assert_array_equal(msg["landmarks"], pts)
        assert msg["landmarks"].dtype == np.float32 and msg["landmarks"].shape == (70, 2)


def _pk(o):
    return msgpack.packb(o, use_bin_type=True)


@pytest.mark.parametrize("body,reason", [
    (b"\xc1", "bad_msgpack"),                                              # never-used byte
    (_pk({"v": 1, "landmarks": b"\0" * 556}), "wrong_length"),
    (_pk({"v": 1, "landmarks": [0.0] * 139}), "wrong_length"),
    (_pk({"v": 1, "landmarks": [0.0] * 141}), "bad_msgpack"),             # over max_array_len
    (_pk({"v": 1, "landmarks": b"\0" * 5000}), "bad_msgpack"),             # over max_bin_len
    (_pk({"v": 1, "landmarks": ["a"] * 140}), "wrong_type"),
    (_pk({"v": 1, "landmarks": [True] * 140}), "wrong_type"),
    (_pk({"v": 1, "landmarks": 5}), "wrong_type"),
    (_pk({"v": 1, "seq": -1, "landmarks": [0.0] * 140}), "wrong_type"),
    (_pk({"v": 1, "t": float("nan"), "landmarks": [0.0] * 140}), "wrong_type"),
    (_pk({"v": 1, "landmarks": [float("nan")] * 140}), "non_finite"),
    (_pk({"v": 3, "landmarks": [0.0] * 140}), "wrong_version"),
    (_pk([1, 2]), "wrong_type"),
    (_pk({1: 1}), "bad_msgpack"),                                          # strict_map_key
    (_pk({"v": 1, "landmarks": [0.0] * 140}) + b"\0", "bad_msgpack"),      # extra data
    (b"\0" * (lp.MAX_LANDMARK_MESSAGE + 1), "oversized"),
])
def test_bad_msgpack_is_a_typed_error_with_reason(body, reason):
    with pytest.raises(lp.ProtocolError) as info:
        lp.decode_landmark_message(body, 256)
    assert info.value.reason == reason


def test_random_bytes_never_escape_as_other_errors():
    rng = np.random.default_rng(5)
    for _ in range(500):
        data = rng.bytes(int(rng.integers(0, 800)))
        for fn in (lp.decode_osc_landmarks, lp.decode_landmark_message):
            try:
                fn(data, 256)
            except lp.ProtocolError:
                pass


def test_stream_decoder_splits_partial_reads_and_refuses_huge_prefixes():
    msgs = [b"a" * 3, b"", b"xyz" * 100]
    stream = b"".join(lp.frame_bytes(m) for m in msgs)
    dec = lp.StreamDecoder(1000)
    got = []
    for i in range(0, len(stream), 7):  # arbitrary TCP segmentation
        got += dec.feed(stream[i:i + 7])
    assert got == msgs
    with pytest.raises(lp.ProtocolError) as info:
        lp.StreamDecoder(1000).feed(struct.pack(">I", 1001))
    assert info.value.reason == "oversized"


def test_rgbd_frame_roundtrip_with_points(pts):
    rng = np.random.default_rng(1)
    out = rng.uniform(-1, 1, (4, 32, 32)).astype(np.float32)
    out[3, :8] = -1.0  # background rows
    out = ro.masked_output(out[None])
    assert (out[:, :8] == -1).all()
    rgb, depth = ro.to_rgbd(out, 600.0, 80.0)
    assert depth[:8].max() == 0 and depth[8:].min() >= 5800 and depth.max() <= 6800
    meta = {"d0_mm": 600.0, "face_depth_mm": 80.0, "crop_mm": 200.0}
    cloud = ro.points_xyzrgb(rgb, depth * np.float32(0.1), meta)
    assert cloud.shape == (int((depth > 0).sum()), 6)
    data = lp.encode_frame(rgb, depth, seq=3, source="osc", t_recv=1.0, depth_unit_mm=0.1,
                           landmarks=pts, points=cloud, extra={"gen_ms": 2.0})
    f = lp.decode_frame(data)
    assert f["seq"] == 3 and f["source"] == "osc" and f["size"] == [32, 32] and f["gen_ms"] == 2.0
    np.testing.assert_array_equal(f["rgb"], rgb)
    np.testing.assert_array_equal(f["depth"], depth)
    np.testing.assert_allclose(f["depth_mm"], depth * 0.1, rtol=1e-6)
    np.testing.assert_array_equal(f["points"], cloud)
    np.testing.assert_array_equal(f["landmarks"], pts)
    assert ro.points_xyzrgb(rgb, depth * 0.1, {"d0_mm": 600.0}) is None  # no crop size: no metric xy
    with pytest.raises(lp.ProtocolError):
        lp.decode_frame(data[:-10])


def test_shipped_live_graph_is_valid_and_never_queues_stale_frames():
    from pathlib import Path

    from facesynth.graph.checks import load_graph
    from facesynth.runtime.plan import build_plan

    path = Path(__file__).resolve().parents[2] / "graphs" / "live_inference.yaml"
    loaded = load_graph(str(path))
    plan = build_plan(loaded.spec, 2)
    assert {n.spec.kind for n in plan.nodes.values()} == {
        "live.osc_in", "live.msgpack_in", "live.generator", "live.msgpack_out"}
    assert [(e.src, e.dst) for e in plan.edges] == [
        ("osc/landmarks", "generator/landmarks"), ("net/landmarks", "generator/landmarks"),
        ("generator/rgbd", "out/rgbd")]
    assert all(e.policy == "latest" and e.bound == 1 for e in plan.edges)
    hosts = {n.spec.params.get("host") for n in plan.nodes.values() if "host" in n.spec.params}
    assert hosts == {"127.0.0.1"}
    assert plan.nodes["generator"].replicas == 2  # frames may finish out of order: msgpack_out drops late ones
