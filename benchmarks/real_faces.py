"""What facesynth learns of a real person: the whole product path on real captures, the default
recipe next to `recipe: original`, the same data and the same number of steps.

Data sets (`--sets`):
- `truedepth`: the real iPhone TrueDepth sequence (../shared/realdata/truedepth_face_sequence, one man
  turning his head; depth measured by the phone), every 5th frame held out (28 train / 6 eval);
- `video`: the expressions video (../shared/realdata/face_videos, one woman crying, hiding her face,
  laughing) through capture.video: colour only, its depth ESTIMATED from the face mesh, so every
  depth figure of it is against that estimate (the JSON says so: `depth_source`). Two held-out
  protocols on the same frames: `interleaved` (every 7th captured frame, as the original's capture)
  and `tail` (the last ~15 % of the frames: expressions in new combinations).

Each set: one graph run captures -> landmarks -> crop -> fill into a store; then per recipe the same
graph with model.pix2pix (its own model directory, `steps` + `decay_steps`: a budget in steps, so the
result does not depend on the machine's load) trains, exports, and `facesynth model eval`'s
evaluate_exported measures the export on the held-out frames next to the mean-image baseline. The
curves come from the trainer's own evaluations (`train.epoch` events). On the video's tail, the
tail's real landmarks also drive the trained model through the live path (live.condition's
Conditioner -> live.generator's LiveGenerator) and the output is compared with the real frames.

    .venv/bin/python benchmarks/real_faces.py --steps 1500 --out /tmp/real_faces
    .venv/bin/python benchmarks/real_faces.py --sets truedepth --steps 40 --frames 12   # small

Prints one JSON object and writes real_faces.json + real_faces.png (learning curves and, per set, a
sample grid: driver drawing, each recipe's colour and depth, the truth's colour and depth).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
# Spinning OpenMP threads that wait for a descheduled sibling cost up to 6x the wall time of a step
# on a shared, loaded machine (measured here: 2.5-3 CPU s per 128 px step spinning, 0.4-0.7 s
# passive); results do not depend on it. The training process inherits the setting.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from real_faces_parts import live_reenactment, load_held_out, run_log_events, samples_of, write_png  # noqa: E402

from facesynth.depth.testdata_realdepth import realdata_root  # noqa: E402
from facesynth.model.evaluate_exported import depth_source_words  # noqa: E402

REALDATA = realdata_root()
TRUEDEPTH = REALDATA / "truedepth_face_sequence"
VIDEO = REALDATA / "face_videos" / "pexels_wolfganglanger_expressions.mp4"
MAIN_GRAPH = ROOT / "graphs" / "capture_to_model.yaml"
TAIL_SHARE = 0.15


def default_recipe() -> dict:
    """The main job's training settings (graphs/capture_to_model.yaml), read from the graph file
    so this benchmark measures what the product ships."""
    import yaml

    graph = yaml.safe_load(MAIN_GRAPH.read_text())
    train = next(n for n in graph["nodes"] if n["kind"] == "model.pix2pix")
    return {k: v for k, v in train["params"].items() if k not in ("epochs", "decay_epochs")}


def original_recipe(default: dict) -> dict:
    """`recipe: original` as published (pix2pix / pix2pixHD: Adam 2e-4, beta1 0.5, GAN + feature
    matching + L1 + LPIPS from step 0) at the default's size, widths and batch."""
    return {"recipe": "original", **{k: default[k] for k in ("size", "ngf", "ndf", "batch_size")}, "lr": 2e-4}


def camera_node(name: str, frames: int | None) -> dict:
    """The capture node of a set: capture.folder reads the TrueDepth sequence as published (depth at
    its own 360x640, units and intrinsics from its info.json); capture.video the video."""
    limit = {"frames": {"train": frames, "eval": max(1, frames // 4)}} if frames else {}
    if name == "truedepth":
        return {"kind": "capture.folder", "params": {"path": str(TRUEDEPTH), **limit, "eval_every": 5}}
    return {"kind": "capture.video", "params": {"path": str(VIDEO), **limit, "eval_every": 7}}


def graph_text(store: Path, camera: dict, train: dict | None) -> str:
    """The main job's stages with another camera (and `train`, when given, as model.pix2pix)."""
    nodes = [{"id": "camera", **camera},
             {"id": "landmarks", "kind": "face.landmarks", "inputs": {"rgbd": "camera/rgbd"}},
             {"id": "crop", "kind": "face.crop", "params": {"size": 256, "face_depth_mm": 80},
              "inputs": {"landmarks": "landmarks/landmarks"}},
             {"id": "fill", "kind": "depth.fill", "inputs": {"face": "crop/face"}}]
    if train is not None:
        nodes.append({"id": "train", "kind": "model.pix2pix", "params": train, "inputs": {"pairs": "fill/filled"}})
    graph = {"version": 1, "name": "real_faces", "store": {"path": str(store), "chunk_frames": 8},
             "defaults": {"queue": 4, "policy": "block", "max_restarts": 1}, "nodes": nodes}
    return json.dumps(graph, indent=1)  # JSON is YAML


def run(graph: Path) -> tuple[object, list[dict]]:
    from facesynth.runtime.api import run_graph

    records: list[dict] = []
    res = run_graph(str(graph), backend="local", on_record=records.append)
    if res.status != "ok":
        raise SystemExit(f"{graph}: the run ended {res.status}")
    return res, records


def tail_split(store: Path, share: float) -> dict:
    """Hold out the last `share` of the accepted frames instead of every n-th (a copy's raw/split)."""
    import numpy as np

    from facesynth.store.frame_store import FrameStore

    fs = FrameStore.open(str(store), mode="a")
    ok = np.asarray(fs.read("crop/ok"), bool) & np.asarray(fs.read("fill/ok"), bool)
    split = np.zeros(len(ok), np.uint8)
    kept = np.flatnonzero(ok)
    split[kept[int(round(len(kept) * (1 - share))):]] = 1
    fs.write("raw/split", 0, split)
    return {"train": int((ok & (split == 0)).sum()), "eval": int((ok & (split == 1)).sum())}


def train_and_eval(work: Path, store: Path, camera: dict, name: str, params: dict, lpips, tag: str = "") -> dict:
    """One recipe on one store through the product graph, then `model eval` on its export."""
    from facesynth.model.evaluate_exported import evaluate_exported

    model_dir = work / f"{store.stem}.{name}{tag}.model"
    graph = work / f"{store.stem}.{name}{tag}.yaml"
    done = work / f"{store.stem}.{name}{tag}.result.json"
    earlier = json.loads(done.read_text()) if done.exists() else {}
    if earlier.get("params") == params:
        return earlier  # this recipe already ran on this store in --work
    graph.write_text(graph_text(store, camera, {**params, "out_dir": str(model_dir), "onnx": False}))
    t = time.perf_counter()
    res, records = run(graph)
    wall = time.perf_counter() - t
    start, evals = run_log_events(records)
    export = Path(res.sink["train"][0]["dir"])
    ev = evaluate_exported(export, store, lpips=lpips is not None)
    train_s = sum(e.get("epoch_s", 0.0) for e in evals)
    result = {"params": params, "steps": evals[-1]["step"] if evals else 0, "train_s": round(train_s, 1),
              "eval_and_bookkeeping_s": round(sum(e.get("eval_s", 0.0) for e in evals), 1),
              "run_wall_s": round(wall, 1), "threads": start.get("threads"),
              "train_frames": start.get("train_frames"), "eval_frames": start.get("eval_frames"),
              "eval": ev["model_metrics"], "baseline": ev["baseline"], "beats_baseline": ev["beats_baseline"],
              "curve": [{"step": e["step"], **{k: e["eval"].get(k) for k in ("depth_mae_mm", "face_ssim", "face_lpips",
                                                                               "face_psnr", "depth_roughness_ratio")}}
                        for e in evals],
              "export": str(export)}
    done.write_text(json.dumps(result, default=float))
    return result


def better_on_every_face_metric(a: dict, b: dict) -> dict:
    from facesynth.model.metrics import beats_baseline

    return beats_baseline(a["eval"], b["eval"])


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", nargs="+", default=["truedepth", "video"], choices=["truedepth", "video"])
    ap.add_argument("--steps", type=int, required=True, help="training steps per recipe (steps + decay_steps)")
    ap.add_argument("--decay-share", type=float, default=0.5, help="share of the steps with the LR decaying")
    ap.add_argument("--evals", type=int, default=10, help="evaluations along each run (curve points)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--frames", type=int, default=0, help="capture only this many train frames (small runs)")
    ap.add_argument("--recipes", nargs="+", default=["default", "original"], choices=["default", "original"])
    ap.add_argument("--set", dest="sets_", action="append", default=[], metavar="KEY=VALUE",
                    help="override a model.pix2pix param of the default recipe (YAML value); repeatable")
    ap.add_argument("--tag", default="", help="suffix of the model directories (runs side by side in one --work)")
    ap.add_argument("--no-lpips", action="store_true")
    ap.add_argument("--samples", type=int, default=2)
    ap.add_argument("--work", type=Path, help="keep stores, models and each recipe's result here (a recipe that already "
                    "ran there with the same params is not trained again; default: a temporary folder)")
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "facesynth_real_faces")
    args = ap.parse_args(argv)
    default = default_recipe()
    decay = int(round(args.steps * args.decay_share))
    budget = {"steps": args.steps - decay, "decay_steps": decay, "eval_every_steps": max(1, args.steps // args.evals),
              "eval_every_s": 0, "checkpoint_every_s": 10 ** 6, "threads": args.threads,
              **({"lpips": False} if args.no_lpips else {})}
    import yaml
    overrides = {k: yaml.safe_load(v) for k, _, v in (s.partition("=") for s in args.sets_)}
    recipes = {"default": {**default, **overrides, **budget}, "original": {**original_recipe(default), **budget}}
    lpips = None
    if not args.no_lpips:
        from facesynth.model.lpips import LPIPS
        lpips = LPIPS("alexnet")
    report: dict = {"budget": budget, "recipes": {k: recipes[k] for k in args.recipes}, "load_before": os.getloadavg(),
                    "cpus": len(os.sched_getaffinity(0)), "sets": {}}
    work = args.work or Path(tempfile.mkdtemp(prefix="real_faces_"))
    work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    panels = []
    try:
        for name in args.sets:
            camera = camera_node(name, args.frames)
            store = work / f"{name}.zarr"
            if not store.exists():
                (work / f"{name}.capture.yaml").write_text(graph_text(store, camera, None))
                run(work / f"{name}.capture.yaml")
            protocols = {"interleaved": store}
            if name == "video":
                tail = work / f"{name}_tail.zarr"
                if not tail.exists():
                    shutil.copytree(store, tail)
                protocols["tail"] = tail
            for protocol, st in protocols.items():
                counts = tail_split(st, TAIL_SHARE) if protocol == "tail" else None
                key = name if protocol == "interleaved" and name == "truedepth" else f"{name}_{protocol}"
                entry: dict = {"store": str(st), "protocol": protocol, "camera": camera,
                               **({"tail_split": counts} if counts else {})}
                from facesynth.store.frame_store import FrameStore
                source = FrameStore.open(str(st), mode="r").attrs.get("depth_source")
                entry["depth_source"] = source
                entry["depth_figures"] = depth_source_words(source)
                entry["recipes"] = {r: train_and_eval(work, st, camera, r, recipes[r], lpips, args.tag)
                                   for r in args.recipes}
                if {"default", "original"} <= set(entry["recipes"]):
                    entry["default_better_than_original"] = better_on_every_face_metric(
                        entry["recipes"]["default"], entry["recipes"]["original"])
                if protocol == "tail" and "default" in entry["recipes"]:
                    entry["self_reenactment"] = live_reenactment(entry["recipes"]["default"]["export"], st, lpips)
                held = load_held_out(st, default["size"], args.samples)
                panels.append((key, entry, samples_of(entry["recipes"], held)))
                report["sets"][key] = entry
    finally:
        report["load_after"] = os.getloadavg()
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    png = args.out / "real_faces.png"
    if panels:
        write_png(png, panels)
        report["png"] = str(png)
    (args.out / "real_faces.json").write_text(json.dumps(report, indent=1, default=float))
    print(json.dumps(report, default=float))
    return report


if __name__ == "__main__":
    main()
