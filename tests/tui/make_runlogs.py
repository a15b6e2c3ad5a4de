"""Writes the recorded run logs in tests/tui/runlogs/ (normal, failing, training, live).

They follow docs/architecture.md "Metrics and the run log" record for record, with fixed
timestamps so the dashboard shows the same thing every time. Run it again after a format
change: `.venv/bin/python tests/tui/make_runlogs.py`.
"""
from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).parent / "runlogs"
T0 = 1795580000.0
STATS_DT = 0.5

TRACEBACK = """Traceback (most recent call last):
  File "facesynth/runtime/host.py", line 61, in process
    outs = await self.node.process(port, item)
  File "facesynth/nodes/crop.py", line 88, in process
    crop = crop_face(color, depth, pts, self.params.size)
  File "facesynth/vision/crop.py", line 142, in crop_face
    raise ValueError(f"nose depth {d0} mm outside the sensor range")
ValueError: nose depth 0 mm outside the sensor range"""


class Writer:
    def __init__(self, name: str):
        self.lines: list[dict] = []
        self.name = name

    def add(self, elapsed: float, rec: dict) -> None:
        self.lines.append({**rec, "t": round(T0 + elapsed, 3)})

    def save(self) -> None:
        OUT.mkdir(exist_ok=True)
        with open(OUT / f"{self.name}.jsonl", "w") as fh:
            for rec in self.lines:
                fh.write(json.dumps(rec, separators=(",", ":")) + "\n")


def start(w: Writer, graph: str, nodes: list[tuple[str, str, int, dict]], policy: dict[str, str] | None = None,
          store: str | None = "data_store/capture_to_model.zarr") -> list[dict]:
    edges = []
    for nid, _kind, _r, inputs in nodes:
        for port, srcs in inputs.items():
            for src in srcs:
                edges.append({"id": f"{src}->{nid}/{port}", "src": src, "dst": f"{nid}/{port}", "queue": 4,
                              "policy": (policy or {}).get(nid, "block")})
    w.add(0.0, {"type": "run_start", "run_id": f"20261125-0600{len(w.name):02d}-000", "graph": graph,
                "file": f"graphs/{graph}.yaml", "store": store, "backend": "ray",
                "nodes": [{"id": n, "kind": k, "replicas": r, "inputs": i} for n, k, r, i in nodes],
                "edges": edges})
    return edges


def node_stats(state: str, replicas: int, items: int, total: int | None, elapsed: float, busy_s: float,
               errors: int = 0, restarts: int = 0, skipped: int = 0) -> dict:
    return {"state": state, "replicas": replicas, "items": items, "total": total,
            "rate": round(items / elapsed, 3) if elapsed > 0 else 0.0, "busy_s": round(busy_s, 4),
            "busy_pct": round(min(100.0, 100.0 * busy_s / (elapsed * replicas)), 1) if elapsed > 0 else 0.0,
            "errors": errors, "restarts": restarts, "skipped": skipped}


BATCH = [("camera", "capture.synthetic", 1, {}),
         ("landmarks", "face.landmarks", 1, {"rgbd": ["camera/rgbd"]}),
         ("crop", "face.crop", 1, {"frames": ["landmarks/frames"]}),
         ("fill", "depth.fill", 2, {"face": ["crop/face"]})]
CHUNKS = 35  # 280 frames of 8


def batch_progress(elapsed: float, speed: list[float], lag: list[float]) -> list[int]:
    """Chunks done per stage at `elapsed`: each stage trails the one before it."""
    done = []
    for i, (v, d) in enumerate(zip(speed, lag)):
        n = int(max(0.0, elapsed - d) * v)
        n = min(CHUNKS, n, done[i - 1] if i else CHUNKS)
        done.append(n)
    return done


def write_batch(name: str, fail_at: float | None = None) -> None:
    w = Writer(name)
    edges = start(w, "capture_to_model", BATCH)
    speed, lag = [6.0, 4.0, 3.5, 2.0], [0.0, 0.6, 1.1, 1.6]
    ids = [n[0] for n in BATCH]
    errors = {"crop": 0}
    elapsed, ended = 0.0, False
    w.add(0.2, {"type": "event", "name": "plan", "node": "camera", "replica": 0, "total": CHUNKS})
    while not ended:
        elapsed = round(elapsed + STATS_DT, 3)
        done = batch_progress(elapsed, speed, lag)
        if fail_at is not None and elapsed >= fail_at:
            done[2] = min(done[2], 12)
            done[3] = min(done[3], 12)
            if errors["crop"] < 3:
                errors["crop"] += 1
                fatal = errors["crop"] == 3
                w.add(elapsed - 0.1, {"type": "error", "node": "crop", "chunk": "raw:96-104",
                                      "error": "ValueError: nose depth 0 mm outside the sensor range",
                                      "traceback": TRACEBACK, "restart": errors["crop"], "fatal": fatal})
        states, nodes = [], {}
        for i, nid in enumerate(ids):
            prev_done = i == 0 or states[i - 1] == "done"
            st = "done" if done[i] >= CHUNKS and prev_done else ("running" if elapsed >= lag[i] else "waiting")
            if fail_at is not None and errors["crop"] >= 3 and nid == "crop":
                st = "failed"
            states.append(st)
            total = CHUNKS if (i == 0 or states[i - 1] == "done") else None
            nodes[nid] = node_stats(st, BATCH[i][2], done[i], total, elapsed, done[i] / speed[i] * 0.9,
                                    errors=errors.get(nid, 0), restarts=min(errors.get(nid, 0), 2))
        if nodes["camera"]["rate"] and elapsed == 1.0:
            w.add(elapsed - 0.05, {"type": "event", "name": "capture.rejects", "node": "camera", "replica": 0,
                                   "accepted": 8, "no_face": 1, "pose": 2})
        est = {}
        for e in edges:
            s, d = ids.index(e["src"].split("/")[0]), ids.index(e["dst"].split("/")[0])
            depth = max(0, min(4, done[s] - done[d]))
            est[e["id"]] = {"depth": depth, "bound": 4, "blocked_s": round(max(0.0, elapsed - 2.0) * 0.3 * (d == 3), 4),
                            "drops": 0, "sent": done[s], "max_depth": max(depth, 4 if elapsed > 2 else depth)}
        w.add(elapsed, {"type": "stats", "elapsed_s": elapsed, "nodes": nodes, "edges": est})
        if fail_at is not None and errors["crop"] >= 3:
            w.add(elapsed + 0.01, {"type": "run_end", "status": "failed",
                                   "error": "node 'crop' failed on chunk raw:96-104: ValueError: nose depth 0 mm "
                                            "outside the sensor range", "elapsed_s": elapsed + 0.01})
            ended = True
        elif all(s == "done" for s in states):
            w.add(elapsed + 0.01, {"type": "run_end", "status": "ok", "error": None, "elapsed_s": elapsed + 0.01})
            ended = True
    w.save()


def write_training() -> None:
    w = Writer("training")
    nodes = [("pairs", "store.pairs", 1, {}), ("train", "model.pix2pix", 1, {"pairs": ["pairs/pairs"]})]
    start(w, "train_only", nodes, store="data_store/alice.zarr")
    epochs, steps = 3, 30
    elapsed = 0.0
    for epoch in range(1, epochs + 1):
        for step in range(5, steps + 1, 5):
            elapsed = round(elapsed + 0.5, 3)
            k = (epoch - 1) * steps + step
            losses = {"g_gan": round(0.9 - 0.004 * k + 0.05 * ((k * 7) % 5) / 5, 4),
                      "g_l1": round(0.35 * 0.985 ** k, 4), "g_feat": round(1.8 * 0.99 ** k, 4),
                      "g_lpips": round(0.6 * 0.993 ** k, 4), "d_real": round(0.25 + 0.01 * (k % 3), 4),
                      "d_fake": round(0.24 - 0.01 * (k % 2), 4)}
            w.add(elapsed - 0.01, {"type": "event", "name": "train.step", "node": "train", "replica": 0,
                                   "epoch": epoch, "epochs": epochs, "step": step, "steps": steps,
                                   "global_step": k, "lr": 0.0002, "losses": losses})
            w.add(elapsed, {"type": "stats", "elapsed_s": elapsed,
                            "nodes": {"pairs": node_stats("done", 1, 1, 1, elapsed, 0.2),
                                      "train": node_stats("running", 1, 0, 1, elapsed, elapsed - 0.2)},
                            "edges": {"pairs/pairs->train/pairs": {"depth": 0, "bound": 4, "blocked_s": 0.0,
                                                                   "drops": 0, "sent": 1, "max_depth": 1}}})
        if epoch < epochs:
            w.add(elapsed + 0.2, {"type": "event", "name": "train.epoch", "node": "train", "replica": 0,
                                  "epoch": epoch, "epochs": epochs,
                                  "eval": {"depth_mae_mm": round(9.5 / epoch, 3), "psnr": round(14.0 + 2.1 * epoch, 3),
                                           "ssim": round(0.42 + 0.08 * epoch, 4), "lpips": round(0.52 - 0.05 * epoch, 4)},
                                  "baseline": {"depth_mae_mm": 11.2, "psnr": 13.1, "ssim": 0.40, "lpips": 0.55},
                                  "preview": f"data_store/alice.zarr.runs/train/previews/epoch_{epoch:04d}.png",
                                  "checkpoint": f"data_store/alice.zarr.runs/train/checkpoints/epoch_{epoch:04d}.pt",
                                  "epoch_s": 5.0, "steps_per_s": 6.0})
    # the run is still training (epoch 3 of 3, no run_end): the "in progress" training view
    w.save()


def write_live() -> None:
    w = Writer("live")
    nodes = [("osc", "landmarks.osc", 1, {}), ("generator", "infer.generator", 1, {"landmarks": ["osc/landmarks"]}),
             ("viewer", "sink.stream", 1, {"rgbd": ["generator/rgbd"]})]
    start(w, "live_inference", nodes, policy={"generator": "latest", "viewer": "latest"}, store=None)
    elapsed, frames, drops = 0.0, 0, 0
    for i in range(1, 13):
        elapsed = round(elapsed + 0.5, 3)
        fps = [0.0, 41.0, 58.5, 60.2, 59.8, 60.1, 57.9, 60.0, 59.6, 60.3, 48.2, 60.0][i - 1]
        frames += int(fps * 0.5)
        drops += 1 if fps < 55 and i > 2 else 0
        w.add(elapsed - 0.02, {"type": "event", "name": "live.stats", "node": "generator", "replica": 0, "fps": fps,
                               "latency_ms": {"min": 9.8, "p50": round(14.0 + (i % 3) * 0.4, 2), "p99": 31.5 + (i % 2)},
                               "generator_ms": 7.9, "drops": drops})
        st = {"osc": node_stats("running", 1, frames + drops, None, elapsed, elapsed * 0.05),
              "generator": node_stats("running", 1, frames, None, elapsed, elapsed * 0.47),
              "viewer": node_stats("running", 1, frames, None, elapsed, elapsed * 0.12)}
        w.add(elapsed, {"type": "stats", "elapsed_s": elapsed, "nodes": st, "edges": {
            "osc/landmarks->generator/landmarks": {"depth": 1, "bound": 1, "blocked_s": 0.0, "drops": drops,
                                                   "sent": frames + drops, "max_depth": 1},
            "generator/rgbd->viewer/rgbd": {"depth": 0, "bound": 1, "blocked_s": 0.0, "drops": 0, "sent": frames,
                                            "max_depth": 1}}})
    w.add(elapsed + 0.1, {"type": "run_end", "status": "interrupted", "error": None, "elapsed_s": elapsed + 0.1})
    w.save()


if __name__ == "__main__":
    write_batch("normal")
    write_batch("failing", fail_at=4.0)
    write_training()
    write_live()
    for f in sorted(OUT.glob("*.jsonl")):
        print(f, sum(1 for _ in open(f)))
