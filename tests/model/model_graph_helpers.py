"""A tiny training graph over a toy store (store.chunks -> model.pix2pix) run on the local backend,
and independent counts read straight from the store's Zarr arrays."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import zarr

GRAPH = """\
version: 1
name: tiny_train
store: {{path: {store}, chunk_frames: 4}}
nodes:
  - id: chunks
    kind: store.chunks
    params: {{group: crop}}
  - id: train
    kind: model.pix2pix
    params: {{size: 32, ngf: 4, ndf: 4, epochs: {epochs}, decay_epochs: 0, batch_size: 4, lpips: false,
             device: cpu, onnx: false, keep_last: 2, threads: 1,
             eval_every_steps: {eval_every}, eval_every_s: 0, checkpoint_every_s: 0}}
    inputs: {{pairs: chunks/chunks}}
"""


def write_graph(tmp_path: Path, store: Path, epochs: int = 2, eval_every: int = 0) -> Path:
    """`eval_every` steps between evaluations, each with a checkpoint (0: only at the end)."""
    g = tmp_path / "tiny_train.yaml"
    g.write_text(GRAPH.format(store=store, epochs=epochs, eval_every=eval_every))
    return g


def run_tiny(graph: Path, restart: bool = False):
    """(status, records of the run log); a failed run is returned, not raised."""
    from facesynth.errors import FacesynthError
    from facesynth.runtime.api import run_graph

    records: list[dict] = []
    try:
        res = run_graph(str(graph), backend="local", restart=restart, on_record=records.append)
        status = res.status
    except FacesynthError as e:
        status = f"error: {e}"
    return status, records


def events(records: list[dict], name: str) -> list[dict]:
    return [r for r in records if r.get("name") == name]


def ok_counts(store: Path) -> tuple[int, int]:
    """(train, eval) frames with crop/ok True, read with zarr directly (not through facesynth)."""
    root = zarr.open_group(str(store), mode="r")
    ok = np.asarray(root["crop/ok"][:], bool)
    split = np.asarray(root["raw/split"][:])
    return int((ok & (split == 0)).sum()), int((ok & (split == 1)).sum())


def run_end(records: list[dict]) -> dict:
    ends = [r for r in records if r.get("type") == "run_end"]
    assert len(ends) == 1, [r.get("type") for r in records]
    return ends[0]


def read_json(p: Path) -> dict:
    return json.loads(p.read_text())
