"""Acceptance: graphs/live_demo.yaml runs (a tiny model, a replayed landmark track) while a real
headless Chromium loads the viewer page; the screenshot shows the generator's frame as points
(the non-background area and colours of the frame computed directly), and the counter grows."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from cdp_browser import Chromium, find_chromium, stop, wait_for
from live_helpers import SIZE, expected_rgbd, export_tiny_model, free_port

from facesynth.face import testdata_ibug
from facesynth.live.conditioning import align_to, frame_to_network_px
from facesynth.model.landmark_stats import landmark_stats

REPO = Path(__file__).resolve().parents[2]
BACKGROUND = np.array([0x10, 0x14, 0x18])  # viewer.js scene.background
VIEW = 512

pytestmark = pytest.mark.skipif(find_chromium() is None,
                                reason="chromium is not installed (apt-get install -y chromium; .ci/run installs it)")


def lenna70() -> np.ndarray:
    face = next(f for f in testdata_ibug.load_all() if f.name == "lenna")
    return frame_to_network_px(np.concatenate([face.points, face.pupils]), SIZE)


def test_demo_graph_in_headless_chromium(tmp_path, capsys):
    track = lenna70()[None]
    np.save(tmp_path / "track.npy", track)
    model = export_tiny_model(tmp_path / "model", {"landmark_stats": landmark_stats(track, SIZE)})
    port = free_port()
    sets = [f"nodes.track.params.npy={tmp_path / 'track.npy'}", "nodes.track.params.rate_hz=15",
            "nodes.track.params.frames=3000", f"nodes.condition.params.model={model}",
            f"nodes.generator.params.model={model}", "nodes.generator.params.threads=1",
            f"nodes.viewer.params.port={port}"]
    cmd = [sys.executable, "-m", "facesynth.cli", "graph", "run", str(REPO / "graphs/live_demo.yaml"), "--local",
           "--quiet"] + [a for s in sets for a in ("--set", s)]
    graph = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    browser = None
    try:
        from facesynth.cli import main

        def url_of_running_viewer():
            if graph.poll() is not None:
                raise AssertionError(f"the demo graph exited: {graph.stdout.read().decode()[-2000:]}")
            try:
                rc = main(["view", "--print", str(tmp_path / "data_store/runs")])
            except SystemExit as exc:  # no viewer yet
                rc = exc.code
            out = capsys.readouterr().out.strip()
            return out if rc == 0 and out else None

        url = wait_for(url_of_running_viewer, 90, "the viewer's URL from `facesynth view`")
        assert url == f"http://127.0.0.1:{port}/"
        browser = Chromium(VIEW, VIEW)
        browser.goto(url)
        wait_for(lambda: (browser.js("window.viewerStats ? window.viewerStats.frames : 0") or 0) >= 3, 60,
                 "frames on the page")
        browser.js("document.getElementById('hud').style.display = 'none'")
        time.sleep(0.5)
        counter = "parseInt(document.getElementById('frames').textContent)"  # the page's own counter
        before = browser.js(counter)
        png = browser.screenshot_png()
        time.sleep(1.5)
        after = browser.js(counter)
        assert after > before, "the page's frame counter does not grow"
        stats = browser.js("JSON.stringify(window.viewerStats)")
    finally:
        stop(browser, graph)
    (tmp_path / "viewer.png").write_bytes(png)  # kept in pytest's tmp dir for a look
    shot = cv2.cvtColor(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    assert shot.shape[:2] == (VIEW, VIEW)

    # what the page should show: the generator's frame for the aligned landmarks, seen from the
    # crop's virtual camera (the page's first view), each crop pixel a VIEW/SIZE-px square
    rgb, depth = expected_rgbd(model, align_to(track[0], track[0]))
    want = depth > 0
    assert 0.1 < want.mean() < 0.9, "the tiny model should give a mixed mask"
    block = VIEW // SIZE
    drawn_px = np.abs(shot.astype(int) - BACKGROUND).max(-1) > 10
    drawn = drawn_px.reshape(SIZE, block, SIZE, block).mean((1, 3)) > 0.5
    iou = (drawn & want).sum() / (drawn | want).sum()
    assert iou > 0.85, f"drawn area differs from the frame's face area (IoU {iou:.2f}; {stats})"
    assert abs(drawn.sum() - want.sum()) < 0.1 * want.sum()
    # colours: the median screen colour of each crop pixel's square vs the frame's colour
    blocks = shot.reshape(SIZE, block, SIZE, block, 3).transpose(0, 2, 1, 3, 4).reshape(SIZE, SIZE, -1, 3)
    both = drawn & want
    screen = np.median(blocks[both], axis=1)
    err = np.abs(screen - rgb[both].astype(float))
    assert np.median(err) < 12, f"colours differ: median error {np.median(err):.1f} levels"
