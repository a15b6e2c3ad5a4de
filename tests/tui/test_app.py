"""Pilot tests: the dashboard driven against recorded run logs, asserting on what it shows."""
from __future__ import annotations

import json
import threading
import time

from conftest import load

from facesynth.tui.app import Dashboard, make_app, run_dashboard_for_run
from facesynth.tui.detail import NodeScreen
from facesynth.tui.panels import ErrorPanel, LivePanel, StageProgress, StatusBar, TrainingPanel
from facesynth.tui.sources import ReplaySource, TailSource
from facesynth.tui.tables import EdgeTable, NodeTable


def shown(app: Dashboard, widget_type) -> str:
    """The plain text a panel shows right now."""
    w = app.query_one(widget_type)
    return w.render().plain if w.display else ""


def row(table, key: str) -> list[str]:
    return [getattr(c, "plain", str(c)) for c in table.get_row(key)]


async def test_normal_run_shows_every_stage_done(runlogs):
    app = make_app(ReplaySource(runlogs / "normal.jsonl"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        status = shown(app, StatusBar)
        assert "capture_to_model" in status and " ok " in status and "4/4 nodes done" in status
        nodes = app.query_one(NodeTable)
        assert nodes.row_count == 4
        assert row(nodes, "camera")[:4] == ["camera", "done", "1", "35/35"]
        assert row(nodes, "fill")[:4] == ["fill", "done", "2", "35/35"]
        progress = shown(app, StageProgress).splitlines()
        assert len(progress) == 4 and all("100%" in ln and "done" in ln for ln in progress)
        edges = app.query_one(EdgeTable)
        assert row(edges, "crop/face->fill/face")[:2] == ["crop→fill", "0/4"]
        assert not app.query_one(ErrorPanel).display
        assert not app.query_one(TrainingPanel).display and not app.query_one(LivePanel).display


async def test_failing_run_shows_the_failing_node_and_its_traceback(runlogs):
    app = make_app(ReplaySource(runlogs / "failing.jsonl"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert " failed " in shown(app, StatusBar) and "3 errors" in shown(app, StatusBar)
        crop = row(app.query_one(NodeTable), "crop")
        assert crop[1] == "failed" and crop[3] == "12/~35" and crop[-2:] == ["3", "2"]
        err = shown(app, ErrorPanel)
        assert err.startswith("crop on raw:96-104 (fatal): ValueError: nose depth 0 mm")
        assert 'File "facesynth/vision/crop.py", line 142, in crop_face' in err
        assert "(+2 more)" in err
        lines = {ln.split()[0]: ln for ln in shown(app, StageProgress).splitlines()}
        assert "FAILED" in lines["crop"] and "ETA" in lines["landmarks"] and "86%" in lines["camera"]


async def test_training_run_shows_epochs_losses_eval_and_preview(runlogs):
    app = make_app(ReplaySource(runlogs / "training.jsonl"))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        text = shown(app, TrainingPanel)
        assert "epoch 3/3" in text and "step 30/30" in text
        losses = {ln.split()[0]: ln.split()[1] for ln in text.splitlines() if ln.startswith(("g_", "d_"))}
        assert losses == {"g_gan": "0.5400", "g_l1": "0.0898", "g_feat": "0.7285", "g_lpips": "0.3188",
                          "d_real": "0.2500", "d_fake": "0.2400"}
        assert "eval (epoch 2): depth_mae_mm 4.75  psnr 18.2  ssim 0.58  lpips 0.42" in " ".join(text.split("\n"))
        assert "epoch_0002.png" in text and "epoch_0002.pt" in text
        train_line = next(ln for ln in shown(app, StageProgress).splitlines() if ln.startswith("train"))
        assert "100%" in train_line and "ep 3/3" in train_line


async def test_live_run_shows_fps_latency_and_drops(runlogs):
    app = make_app(ReplaySource(runlogs / "live.jsonl"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        text = shown(app, LivePanel)
        assert text.startswith("fps   60.0")
        assert "latency ms  min 9.8  p50 14.0  p99 31.5" in text
        assert "generator 7.9 ms" in text and "drops 1" in text
        assert " interrupted " in shown(app, StatusBar)
        assert row(app.query_one(EdgeTable), "osc/landmarks->generator/landmarks")[1:4] == ["1/1", "0.0s", "1"]


async def test_enter_opens_the_selected_node_and_escape_returns(runlogs):
    app = make_app(ReplaySource(runlogs / "failing.jsonl"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        app.query_one(NodeTable).focus()
        await pilot.press("down", "down", "enter")
        await pilot.pause()
        assert isinstance(app.screen, NodeScreen) and app.screen.node_id == "crop"
        detail = app.screen.query_one("#detail").render().plain
        assert detail.startswith("crop  face.crop  ×1  failed")
        assert "in  frames <- landmarks/frames" in detail
        assert "last error on raw:96-104" in detail and "ValueError: nose depth 0 mm" in detail
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, NodeScreen)


def write(path, recs):
    with open(path, "a") as fh:
        for r in recs:
            fh.write(json.dumps(r) + "\n")


async def test_following_a_live_log_pause_cut_off_line_and_end(tmp_path):
    path = tmp_path / "run.jsonl"
    recs = load("normal")
    write(path, recs[:5])
    app = make_app(TailSource(path), poll_s=0.05, exit_on_end=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        assert " running " in shown(app, StatusBar)
        items_before = row(app.query_one(NodeTable), "camera")[3]
        await pilot.press("p")
        assert "PAUSED" in shown(app, StatusBar)
        write(path, recs[5:20])
        await pilot.pause(0.3)
        assert row(app.query_one(NodeTable), "camera")[3] == items_before  # paused: no updates
        await pilot.press("p")
        await pilot.pause(0.3)
        assert "PAUSED" not in shown(app, StatusBar)
        assert row(app.query_one(NodeTable), "camera")[3] != items_before
        with open(path, "a") as fh:  # the writer dies mid-record
            fh.write(json.dumps(recs[20])[:30])
        await pilot.pause(0.3)
        assert " running " in shown(app, StatusBar)  # still up, nothing shown for the fragment
        with open(path, "a") as fh:
            fh.write("\n" + "".join(json.dumps(r) + "\n" for r in recs[21:]))
        await pilot.pause(0.3)
        assert " ok " in shown(app, StatusBar) and "1 bad line" in shown(app, StatusBar)


def test_run_dashboard_for_run_returns_when_the_run_ends(tmp_path):
    path = tmp_path / "later.jsonl"  # does not exist when the dashboard starts
    recs = load("normal")

    def writer():
        time.sleep(0.3)
        for i in range(0, len(recs), 10):
            write(path, recs[i:i + 10])
            time.sleep(0.05)

    th = threading.Thread(target=writer)
    th.start()
    state = run_dashboard_for_run(path, linger_s=0.1, poll_s=0.05, headless=True)
    th.join()
    assert state.status == "ok" and state.overall() == (4, 4)


def test_run_dashboard_for_run_stops_when_until_is_set(tmp_path):
    path = tmp_path / "died.jsonl"
    write(path, load("normal")[:6])  # the run died without run_end
    gone = threading.Event()
    threading.Timer(0.4, gone.set).start()
    state = run_dashboard_for_run(path, until=gone, linger_s=0.05, poll_s=0.05, headless=True)
    assert state.status == "running" and state.nodes["camera"].items > 0


class BrokenSource:
    bad_lines = 0
    finished = False

    def poll(self):
        raise ConnectionError("cluster went away")

    def describe(self):
        return "watching a cluster"


async def test_a_broken_source_is_shown_not_fatal():
    app = make_app(BrokenSource(), poll_s=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        status = shown(app, StatusBar)
        assert "waiting" in status and "ConnectionError: cluster went away" in status
        assert "waiting for the run to start" in shown(app, StageProgress)


async def test_replay_of_a_cut_off_log_shows_the_last_whole_state(tmp_path, runlogs):
    data = (runlogs / "failing.jsonl").read_bytes()
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(data[: data.rindex(b'{"type":"run_end"') + 20])  # died while writing run_end
    app = make_app(ReplaySource(cut))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        status = shown(app, StatusBar)
        assert " running " in status and "1 bad line" in status and "3 errors" in status
        assert row(app.query_one(NodeTable), "crop")[1] == "failed"
        assert shown(app, ErrorPanel).startswith("crop on raw:96-104 (fatal)")


async def test_node_detail_follows_a_live_log(tmp_path):
    path = tmp_path / "run.jsonl"
    recs = load("normal")
    write(path, recs[:4])
    app = make_app(TailSource(path), poll_s=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        await pilot.press("enter")  # the first node: camera
        await pilot.pause(0.1)
        assert isinstance(app.screen, NodeScreen)
        first = app.screen.query_one("#detail").render().plain.splitlines()[1]
        write(path, recs[4:])
        await pilot.pause(0.4)
        now = app.screen.query_one("#detail").render().plain.splitlines()[1]
        assert first.startswith("items ") and first != now and now.startswith("items 35/35")
        assert " ok " in shown(app, StatusBar)  # the main screen kept updating under the modal


async def test_tiny_and_resized_terminals_do_not_crash(runlogs):
    app = make_app(ReplaySource(runlogs / "training.jsonl"))
    async with app.run_test(size=(40, 12)) as pilot:
        await pilot.pause()
        assert "epoch 3/3" in shown(app, TrainingPanel)
        await pilot.resize_terminal(130, 45)
        await pilot.pause()
        assert app.query_one("#body").has_class("-wide")
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert not app.query_one("#body").has_class("-wide")
        assert "g_l1" in shown(app, TrainingPanel)
