"""RunState: run-log records folded into what the dashboard shows (no Textual here)."""
from __future__ import annotations

from conftest import load

from facesynth.tui.state import RunState, fmt_duration, sparkline


def fold(records: list[dict]) -> RunState:
    st = RunState()
    st.apply_all(records)
    return st


def test_sparkline_scales_to_its_own_range():
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7]) == "▁▂▃▄▅▆▇█"
    assert sparkline([5, 5, 5]) == "███"  # bars start at zero: a steady rate is a full bar
    assert sparkline([0, 0]) == "▁▁"
    assert sparkline([]) == ""
    assert sparkline(range(100), width=4) == "████"  # only the last 4, all near the top
    assert len(sparkline(range(100), width=12)) == 12


def test_fmt_duration():
    assert [fmt_duration(s) for s in (None, 0, 12.4, 65, 3725, float("inf"), -1)] == \
        ["-", "0s", "12s", "1m05s", "1h02m", "-", "-"]


def test_normal_run_ends_ok_with_every_stage_done():
    st = fold(load("normal"))
    assert st.status == "ok" and st.ended
    assert st.graph == "capture_to_model" and st.backend == "ray"
    assert list(st.nodes) == ["camera", "landmarks", "crop", "fill"]
    assert {n.state for n in st.nodes.values()} == {"done"}
    assert [(n.items, n.total) for n in st.nodes.values()] == [(35, 35)] * 4
    assert st.nodes["fill"].replicas == 2
    assert st.nodes["landmarks"].inputs == {"rgbd": ["camera/rgbd"]}
    assert st.overall() == (4, 4)
    assert set(st.edges) == {"camera/rgbd->landmarks/rgbd", "landmarks/frames->crop/frames", "crop/face->fill/face"}
    assert st.edges["crop/face->fill/face"].sent == 35
    assert st.rejects["camera"] == {"accepted": 8, "no_face": 1, "pose": 2}
    assert st.errors == [] and st.train is None and st.live is None


def test_mid_run_rates_etas_and_estimated_totals():
    recs = load("normal")
    # cut after the stats record at elapsed 3.0 s
    cut = next(i for i, r in enumerate(recs) if r["type"] == "stats" and r["elapsed_s"] == 3.0)
    st = fold(recs[: cut + 1])
    assert st.status == "running" and not st.ended
    cam, lm = st.nodes["camera"], st.nodes["landmarks"]
    assert cam.items == 18 and cam.total == 35
    assert abs(cam.recent_rate() - 6.0) < 1e-9  # 6 chunks/s in the recording
    assert abs(cam.eta_s() - 17 / 6.0) < 1e-9
    assert lm.total is None and lm.estimate == 35  # from its producer, chunks are aligned
    assert abs(lm.fraction() - lm.items / 35) < 1e-9
    assert st.nodes["fill"].estimate == 35  # along the whole chain
    assert st.eta_s() == max(n.eta_s() for n in st.nodes.values())  # the slowest stage
    assert st.eta_s() > cam.eta_s()


def test_failing_run_keeps_the_fatal_error_and_traceback():
    st = fold(load("failing"))
    assert st.status == "failed" and "crop" in st.end_error
    assert st.nodes["crop"].state == "failed"
    assert st.nodes["crop"].errors == 3 and st.nodes["crop"].restarts == 2
    assert len(st.errors) == 3
    err = st.failing_error()
    assert err["fatal"] is True and err["chunk"] == "raw:96-104"
    assert err["traceback"].splitlines()[-1] == "ValueError: nose depth 0 mm outside the sensor range"
    assert st.nodes["crop"].last_error is err


def test_training_run_progress_losses_eval_and_preview():
    st = fold(load("training"))
    tv = st.train
    assert tv is not None and tv.node == "train"
    assert (tv.epoch, tv.epochs, tv.step, tv.steps) == (3, 3, 30, 30)
    assert tv.fraction == 1.0
    assert set(tv.losses) == {"g_gan", "g_l1", "g_feat", "g_lpips", "d_real", "d_fake"}
    assert len(tv.losses["g_l1"]) == 18  # 6 logged steps x 3 epochs
    assert tv.losses["g_l1"][-1] == round(0.35 * 0.985 ** 90, 4)
    assert tv.eval_epoch == 2 and tv.eval["depth_mae_mm"] == 4.75 and tv.eval["ssim"] == 0.58
    assert tv.preview.endswith("previews/epoch_0002.png")
    assert tv.checkpoint.endswith("checkpoints/epoch_0002.pt")
    assert st.status == "running"  # the recording stops mid-run: no run_end


def test_training_fraction_and_eta_mid_epoch():
    recs = [r for r in load("training") if r.get("name") == "train.step"]
    st = fold(recs[:8])  # epoch 2, step 10 of 30
    assert (st.train.epoch, st.train.step) == (2, 10)
    assert abs(st.train.fraction - (1 + 10 / 30) / 3) < 1e-9
    # recorded pace: 5 of 90 steps every 0.5 s -> 50 steps left take 5 s
    assert abs(st.train.eta_s() - 5.0) < 1e-6
    full = fold(load("training")[:20])
    full.nodes["train"].state = "running"
    assert full.node_eta_s("train") == full.train.eta_s() is not None


def test_edge_labels_name_ports_only_when_needed():
    from facesynth.tui.state import EdgeView
    from facesynth.tui.tables import edge_labels

    edges = {"a/x->b/y": EdgeView("a/x->b/y", "a/x", "b/y"), "a/z->b/w": EdgeView("a/z->b/w", "a/z", "b/w"),
             "b/out->c/in": EdgeView("b/out->c/in", "b/out", "c/in")}
    assert edge_labels(edges) == {"a/x->b/y": "a.x→b.y", "a/z->b/w": "a.z→b.w", "b/out->c/in": "b→c"}


def test_live_run_fps_latency_and_drops():
    st = fold(load("live"))
    lv = st.live
    assert lv.fps == 60.0 and lv.latency_ms == {"min": 9.8, "p50": 14.0, "p99": 31.5}
    assert lv.generator_ms == 7.9 and lv.drops == 1 and len(lv.fps_history) == 12
    assert st.status == "interrupted"
    assert st.edges["osc/landmarks->generator/landmarks"].drops == 1


def test_malformed_records_are_counted_not_fatal():
    st = RunState()
    st.apply("not a dict")
    st.apply({"type": "stats", "nodes": {"a": "oops"}})
    st.apply({"type": "stats", "elapsed_s": "x", "nodes": {"b": {"items": "many", "state": "running"}}})
    st.apply({"type": "event", "name": "train.step", "losses": {"l1": "nan?"}})
    st.apply({"type": "unknown-kind"})
    assert st.bad_lines == 2
    assert st.nodes["b"].state == "running" and st.nodes["b"].items == 0
    assert st.train is not None and st.train.losses["l1"][-1] == 0.0


def test_new_run_start_resets_the_view():
    st = fold(load("failing") + load("normal"))
    assert st.status == "ok" and st.errors == [] and st.nodes["crop"].state == "done"
