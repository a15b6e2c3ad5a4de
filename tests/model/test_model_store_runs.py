"""model.pix2pix through the real runtime (local backend) on a toy store: a resumed run trains on
every finished pair (issue 13, item 1); a model trained on another store is refused, never
resumed or re-exported (item 2); a full disk during a checkpoint save fails the run cleanly
and the rerun continues from the last intact checkpoint (item 10)."""
from __future__ import annotations

import errno
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from model_graph_helpers import events, ok_counts, read_json, run_end, run_tiny, write_graph

from facesynth.model.toy_data import write_toy_store
from facesynth.store.marker import read_marker
from facesynth.store.progress import Progress

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]  # each runs the graph (local backend) one to three times, ~7 s a run


STEPS_PER_EPOCH = 4  # 13 accepted train frames, batch 4: evaluations (and checkpoints) at epoch ends


def _toy(store: Path, seed: int = 0):
    s = write_toy_store(store, n_train=14, n_eval=6, size=32, seed=seed, chunk_frames=4)
    ok = np.ones(20, bool)
    ok[[1, 17]] = False  # frames the crop stage rejected: never trained or evaluated on
    s.write("crop/ok", 0, ok)
    return s


def _digest(folder: Path) -> dict[str, str]:
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(folder.iterdir()) if f.is_file()}


def test_resumed_run_trains_on_every_finished_pair(tmp_path):
    store = tmp_path / "s.zarr"
    _toy(store)
    # what a run killed after model.pix2pix received two chunks leaves: those two recorded done
    progress = Progress(store)
    progress.mark("train", "crop:0-4", [])
    progress.mark("train", "crop:4-8", [])
    status, rec = run_tiny(write_graph(tmp_path, store, epochs=1))
    assert status == "ok", status
    stats = [r for r in rec if r.get("type") == "stats"][-1]["nodes"]["train"]
    assert stats["skipped"] == 2  # the rerun did skip them...
    start = events(rec, "train.start")[0]
    # ...and still trained and evaluated on every ok frame of each split (13 + 5, counted by zarr)
    assert (start["train_frames"], start["eval_frames"]) == ok_counts(store) == (13, 5)
    epoch = events(rec, "train.epoch")[-1]
    assert epoch["eval"]["frames"] == 5


def test_model_of_a_deleted_store_is_refused_and_never_reexported(tmp_path):
    store = tmp_path / "s.zarr"
    _toy(store, seed=0)
    graph = write_graph(tmp_path, store, epochs=1)
    status, _ = run_tiny(graph)
    assert status == "ok", status
    model = tmp_path / "s.zarr.model"
    export = model / "export"
    first_id = read_marker(store)["store_id"]
    assert read_json(export / "generator.json")["store_identity"]["store_id"] == first_id
    before = _digest(export)

    shutil.rmtree(store)  # another capture at the same path (another seed: other faces)
    _toy(store, seed=1)
    assert read_marker(store)["store_id"] != first_id
    status, rec = run_tiny(graph)
    end = run_end(rec)
    text = status + json.dumps(end)
    assert end["status"] == "failed"
    assert "another store" in text and first_id[:12] in text and read_marker(store)["store_id"][:12] in text
    assert "--restart" in text and "out_dir" in text and "weights_only" not in text
    assert not events(rec, "train.start")  # refused before anything was loaded or trained
    assert _digest(export) == before  # the stale weights were not exported again

    # a model directory without its marker (made before markers): the checkpoint itself is checked
    (model / "facesynth_model.json").unlink()
    status, rec = run_tiny(graph)
    end = run_end(rec)
    text = status + json.dumps(end)
    assert end["status"] == "failed" and "does not belong to this store" in text and "--restart" in text
    assert _digest(export) == before


def test_full_disk_during_a_checkpoint_fails_the_run_and_the_rerun_resumes(tmp_path, monkeypatch):
    import facesynth.model.checkpoint as ck

    store = tmp_path / "s.zarr"
    _toy(store)
    graph = write_graph(tmp_path, store, epochs=3, eval_every=STEPS_PER_EPOCH)
    real_write = ck._write

    def disk_fills_in_epoch_2(fh, data):
        if f"step_{2 * STEPS_PER_EPOCH:08d}" in fh.name:  # half of it reaches the disk, then no space is left
            real_write(fh, bytes(data)[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fh, data)

    monkeypatch.setattr(ck, "_write", disk_fills_in_epoch_2)
    status, rec = run_tiny(graph)
    end = run_end(rec)
    assert end["status"] == "failed" and "disk is full" in status + json.dumps(end)
    ckpts = tmp_path / "s.zarr.model" / "checkpoints"
    assert not list(ckpts.glob(".tmp-*")) and not (ckpts / f"step_{2 * STEPS_PER_EPOCH:08d}.pt").exists()
    latest = torch.load(ckpts / "latest.pt", weights_only=True)
    assert latest["epoch"] == 1  # the previous checkpoint, intact

    monkeypatch.setattr(ck, "_write", real_write)  # space freed
    status, rec = run_tiny(graph)
    assert status == "ok", status
    start = events(rec, "train.start")[0]
    assert start["resumed"] is True and start["epoch"] == 1  # not from epoch 0
    assert [e["epoch"] for e in events(rec, "train.epoch")] == [2, 3]
