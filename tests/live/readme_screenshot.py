"""Take the README's viewer screenshot (docs/live_viewer.png) the way the browser test does: run
graphs/live_demo.yaml on a trained export, load the viewer page in a real headless Chromium over
CDP (tests/live/cdp_browser.py), and capture the camera's view and an orbit around the point
cloud side by side. Not a test (pytest does not collect it); run it after the main job:

  .venv/bin/python tests/live/readme_screenshot.py            # the main job's store and export
  .venv/bin/python tests/live/readme_screenshot.py --store S --model DIR --out docs/live_viewer.png
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cdp_browser import Chromium, stop, wait_for  # noqa: E402
from live_helpers import free_port  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
ORBIT = """(() => {  // as a mouse would: turn `deg` degrees around the face's centre, `k` times as far
  const {camera, controls} = window.viewer, t = controls.target, a = %f * Math.PI / 180, k = %f;
  const x = camera.position.x - t.x, z = camera.position.z - t.z;
  camera.position.set(t.x + k * (x * Math.cos(a) + z * Math.sin(a)), camera.position.y,
                      t.z + k * (z * Math.cos(a) - x * Math.sin(a)));
  controls.update();
  return true;
})()"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", default="data_store/capture_to_model.zarr")
    ap.add_argument("--model", default="data_store/capture_to_model.zarr.model/export")
    ap.add_argument("--out", default=str(REPO / "docs" / "live_viewer.png"))
    ap.add_argument("--width", type=int, default=600)
    ap.add_argument("--height", type=int, default=520)
    ap.add_argument("--orbit-deg", type=float, default=35.0)
    ap.add_argument("--zoom-out", type=float, default=1.4, help="camera distance / the crop camera's (1: the crop fills the view)")
    a = ap.parse_args()
    store, model = str(Path(a.store).resolve()), str(Path(a.model).resolve())
    port = free_port()
    sets = [f"nodes.track.params.store={store}", f"nodes.condition.params.store={store}",
            f"nodes.condition.params.model={model}", f"nodes.generator.params.model={model}",
            f"nodes.viewer.params.port={port}"]
    cmd = [sys.executable, "-m", "facesynth.cli", "graph", "run", str(REPO / "graphs/live_demo.yaml"), "--local",
           "--quiet"] + [x for s in sets for x in ("--set", s)]
    graph = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    browser = None
    shots = []
    try:
        browser = Chromium(a.width, a.height, timeout_s=60)

        def page_up():
            if graph.poll() is not None:
                raise RuntimeError(f"the demo graph exited: {graph.stdout.read().decode()[-2000:]}")
            try:
                browser.goto(f"http://127.0.0.1:{port}/")
                time.sleep(1.0)
                return (browser.js("window.viewerStats ? window.viewerStats.frames : 0") or 0) >= 1
            except RuntimeError:
                return False

        wait_for(page_up, 120, "the viewer page with frames")
        wait_for(lambda: (browser.js("window.viewerStats.frames") or 0) >= 40, 60, "40 frames on the page")
        browser.js(ORBIT % (0.0, a.zoom_out))
        time.sleep(1.0)
        shots.append(browser.screenshot_png())
        browser.js(ORBIT % (a.orbit_deg, 1.0))
        time.sleep(1.5)
        shots.append(browser.screenshot_png())
        stats = browser.js("JSON.stringify(window.viewerStats)")
    finally:
        stop(browser, graph)
    images = [cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR) for png in shots]
    cv2.imwrite(a.out, np.hstack(images))
    print(f"{a.out}: {images[0].shape[1] * 2}x{images[0].shape[0]}, viewer stats {stats}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
