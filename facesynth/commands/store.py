"""`facesynth store info|check PATH`: what a frame store holds, and whether it is intact."""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from facesynth.errors import StoreError
from facesynth.store.frame_store import FrameStore
from facesynth.store.marker import marker_problem, read_marker
from facesynth.store.progress import Progress
from facesynth.terminal_text import echo


def store_info(path: str) -> dict:
    """Arrays, ok-frame counts, progress and attributes; damage is a StoreError, never a traceback.
    A marker that cannot be read does not stop it (reads do not need it): it is named in `warnings`."""
    store = FrameStore.open(path, mode="r")
    warnings = []
    try:
        problem = marker_problem(path) if read_marker(path) is not None else None
    except StoreError as exc:
        problem = str(exc)
    if problem:
        warnings.append(f"{problem}; runs will not write to this store until `facesynth store check {path}` "
                        "repairs it")
    arrays = {}
    for name in store.names():
        arr = store.array(name)
        arrays[name] = {"shape": list(arr.shape), "dtype": str(arr.dtype), "chunks": list(arr.chunks)}
        if name.endswith("/ok"):
            arrays[name]["frames_ok"] = int(np.count_nonzero(store.read(name)))
    attrs = {k: v for k, v in store.attrs.items() if k != "calibration"}
    return {"path": str(path), "chunk_frames": store.chunk_frames, "arrays": arrays,
            "progress_chunks": Progress(path).summary(), "attrs": attrs, "warnings": warnings}


def cmd_info(args: argparse.Namespace) -> int:
    info = store_info(args.path)
    for warning in info["warnings"]:
        echo(f"warning: {warning}", file=sys.stderr)
    if args.json:
        echo(json.dumps(info, indent=2, default=str))
        return 0
    echo(f"store {info['path']}  (chunks of {info['chunk_frames']} frames)")
    if "depth_source" in info["attrs"]:
        source = info["attrs"]["depth_source"]
        text = source if isinstance(source, str) and source.isidentifier() else json.dumps(source, default=str)
        echo(f"depth source: {text}" + (" (estimated from the face mesh, not measured)" if source == "face_mesh" else ""))
    for name, a in info["arrays"].items():
        ok = f"  ok frames: {a['frames_ok']}" if "frames_ok" in a else ""
        echo(f"  {name:28s} {str(tuple(a['shape'])):22s} {a['dtype']:8s}{ok}")
    echo("progress (finished chunks per node):")
    for node, n in info["progress_chunks"].items():
        echo(f"  {node:20s} {n}")
    for k, v in info["attrs"].items():
        echo(f"  attr {k}: {json.dumps(v, default=str)[:160]}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Exit 0 when the store is intact, 1 when damage was found (its progress cleared for a rerun)."""
    from facesynth.store.check import check_store

    report = check_store(args.path, repair=not args.dry_run,
                         say=lambda line: echo(f"  ... {line}", file=sys.stderr))
    if args.json:
        echo(json.dumps(report.to_dict(), indent=2, default=str))
        return 0 if report.clean else 1
    echo(f"store {report.path}: {report.arrays_checked} arrays, {report.chunks_checked} chunks checked")
    for note in report.notes:
        echo(f"  note: {note}")
    if report.clean:
        echo("  ok: every chunk decodes and agrees with the ok flags and the progress log")
        return 0
    echo(f"  {len(report.problems)} problem(s):")
    for p in report.problems:
        echo(f"  - {p.message}")
    if report.repaired:
        for f in report.deleted_files:
            echo(f"  deleted damaged {f}")
        for node, keys in report.cleared.items():
            echo(f"  cleared progress of node '{node}': {', '.join(keys) if keys else 'damaged lines only'}")
        echo(f"  to repair, run (with the same --set options as the run that made the store):\n"
              f"    {report.repair_command}")
    elif args.dry_run:
        echo("  (--dry-run: nothing changed; run without it to clear the damaged chunks' progress)")
    return 1


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("store", help="inspect and check a frame store")
    ssub = s.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    p = ssub.add_parser("info", help="arrays, frame counts and progress of a store")
    p.add_argument("path")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)
    c = ssub.add_parser("check", help="verify every chunk; clear the progress of damaged ones so a rerun redoes them")
    c.add_argument("path")
    c.add_argument("--json", action="store_true", help="the report as JSON")
    c.add_argument("--dry-run", action="store_true", help="report only; change nothing")
    c.set_defaults(func=cmd_check)
