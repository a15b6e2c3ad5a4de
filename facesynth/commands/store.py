"""`facesynth store info PATH`: what a frame store holds and how far each stage got."""
from __future__ import annotations

import argparse
import json

import numpy as np

from facesynth.store.frame_store import FrameStore
from facesynth.store.progress import Progress


def store_info(path: str) -> dict:
    store = FrameStore.open(path, mode="r")
    arrays = {}
    for name in store.names():
        arr = store.array(name)
        arrays[name] = {"shape": list(arr.shape), "dtype": str(arr.dtype), "chunks": list(arr.chunks)}
        group = name.split("/")[0]
        if name == f"{group}/ok" or (name.endswith("/ok")):
            arrays[name]["frames_ok"] = int(np.count_nonzero(store.read(name)))
    attrs = {k: v for k, v in store.attrs.items() if k != "calibration"}
    return {"path": str(path), "chunk_frames": store.chunk_frames, "arrays": arrays,
            "progress_chunks": Progress(path).summary(), "attrs": attrs}


def cmd_info(args: argparse.Namespace) -> int:
    info = store_info(args.path)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    print(f"store {info['path']}  (chunks of {info['chunk_frames']} frames)")
    for name, a in info["arrays"].items():
        ok = f"  ok frames: {a['frames_ok']}" if "frames_ok" in a else ""
        print(f"  {name:28s} {str(tuple(a['shape'])):22s} {a['dtype']:8s}{ok}")
    print("progress (finished chunks per node):")
    for node, n in info["progress_chunks"].items():
        print(f"  {node:20s} {n}")
    for k, v in info["attrs"].items():
        print(f"  attr {k}: {json.dumps(v, default=str)[:160]}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("store", help="inspect a frame store")
    ssub = s.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    p = ssub.add_parser("info", help="arrays, frame counts and progress of a store")
    p.add_argument("path")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)
